"""How the suite runs in parallel (pytest-xdist; pyproject's addopts give `-n auto --dist
worksteal`, so README's `python -m pytest -q` runs one worker process per CPU). A pytest plugin,
loaded by conftest.py (`pytest_plugins`):

- One directory per run (GRAPHC_TEST_SESSION_DIR), made by xdist's controller (or the only
  process of a serial run) and inherited by its workers through the environment: it holds the
  run's build cache (GRAPHC_CACHE_DIR, unless one is given), so a library one worker
  built is a cache hit in the others (the cache is content-addressed and takes a file lock per
  key: two workers building the same graph at once build it once), and the locks below. The
  process that made it removes it when the run ends.
- `@pytest.mark.alone`: the test runs while no other test of the run does (it measures wall time
  or the machine's load). Every test holds a shared lock on the run's lock file and an `alone`
  test an exclusive one; a turnstile lets a waiting `alone` test in before tests that came later.
  (Not xdist_group: grouping needs `--dist loadgroup`, and in xdist 3.8 a loadgroup run hangs
  after a worker crashes, where CI would wait out its 90 minutes for a segfaulting test.)
- `--shuffle SEED` (an integer, or `random`): test files in a shuffled order and the tests of
  each file shuffled, to flush out tests that depend on what ran before them (each file's tests
  stay together, so module fixtures are still built once). Every worker shuffles alike.
- `--cpu-report PATH`: each process writes the CPU seconds of every test (its own and its
  children's, gcc included: a measure the machine's load does not inflate the way it does wall
  time) to PATH.<worker>.jsonl, and the run ends with the files that took the most.
- Without pytest-xdist (not installed, or `-p no:xdist`) pyproject's `-n`/`--dist` are accepted
  and ignored: the suite runs in one process, `alone` tests included, as before.

conftest.py imports this module before pytest loads it as a plugin; it has no asserts to rewrite
(PYTEST_DONT_REWRITE, which also keeps pytest from warning about that import).
"""
import fcntl
import glob
import json
import os
import random
import resource
import time
import shutil
import tempfile
from contextlib import contextmanager

import pytest

SESSION_ENV = "GRAPHC_TEST_SESSION_DIR"
SHUFFLE_ENV = "GRAPHC_TEST_SHUFFLE_SEED"  # `--shuffle random` resolved once, for every worker
_made_here = None  # the session directory, when this process made it (and so removes it)


def start_session():
    """Called by conftest.py before graphc reads its settings: the run's build cache. A worker
    inherits its controller's; a cache given in GRAPHC_CACHE_DIR is used as it is."""
    if "GRAPHC_CACHE_DIR" not in os.environ:
        os.environ["GRAPHC_CACHE_DIR"] = os.path.join(_own_session_dir(), "cache")
    return os.environ["GRAPHC_CACHE_DIR"]


def _own_session_dir():
    """The run's directory, made by this process (a controller, or a serial run) for itself and
    its workers. Never one inherited from the environment: a pytest run that a test starts is a
    run of its own and must not take the outer run's locks."""
    global _made_here
    if _made_here is None:
        _made_here = os.environ[SESSION_ENV] = tempfile.mkdtemp(prefix="graphc-test-session-")
    return _made_here


def pytest_addoption(parser, pluginmanager):
    parser.addoption("--shuffle", metavar="SEED", default=None,
                     help="run test files, and the tests in each, in an order shuffled by SEED "
                          "(an integer, or 'random')")
    parser.addoption("--cpu-report", metavar="PATH", default=None,
                     help="write each test's CPU seconds (with its subprocesses') to "
                          "PATH.<worker>.jsonl and summarize them by file at the end")
    if not pluginmanager.has_plugin("xdist"):
        # pyproject's addopts name xdist's options: accepted, and the run is serial.
        group = parser.getgroup("xdist", "pytest-xdist is not active: these are ignored")
        group._addoption("-n", "--numprocesses", dest="numprocesses", default=None)
        group.addoption("--dist", dest="dist", default="no")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "alone: run while no other test of the run does (measures time or load)")
    seed = config.getoption("--shuffle")
    if seed == "random":
        seed = os.environ.setdefault(SHUFFLE_ENV, str(random.SystemRandom().randrange(10 ** 6)))
    if seed is not None:
        try:
            config._graphc_shuffle_seed = int(seed)
        except ValueError:
            raise pytest.UsageError(f"--shuffle takes an integer or 'random', not {seed!r}")
    if hasattr(config, "workerinput"):  # an xdist worker: its controller made the directory
        config._graphc_locks = _RunLocks(os.environ[SESSION_ENV])
    else:
        _own_session_dir()


def pytest_unconfigure(config):
    if _made_here is not None:
        shutil.rmtree(_made_here, ignore_errors=True)


def pytest_report_header(config):
    seed = getattr(config, "_graphc_shuffle_seed", None)
    lines = [f"graphc build cache: {os.environ['GRAPHC_CACHE_DIR']}"]
    if seed is not None:
        lines.append(f"shuffled: --shuffle {seed}")
    return lines


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker per CPU this process may use (at least 2: most tests wait on gcc
    and its output files), unless PYTEST_XDIST_AUTO_NUM_WORKERS says otherwise."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own rule reads it
    return max(2, len(os.sched_getaffinity(0)))


def pytest_collection_modifyitems(session, config, items):
    seed = getattr(config, "_graphc_shuffle_seed", None)
    if seed is None:
        return
    rng = random.Random(seed)
    by_file = {}
    for item in items:
        by_file.setdefault(item.nodeid.split("::")[0], []).append(item)
    files = sorted(by_file)
    rng.shuffle(files)
    items[:] = []
    for name in files:
        tests = by_file[name]
        rng.shuffle(tests)
        items.extend(tests)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    locks = getattr(item.config, "_graphc_locks", None)
    report = item.config.getoption("--cpu-report")
    cpu0, wall0 = _cpu_seconds(), time.monotonic()
    if locks is None:
        yield
    else:
        with locks.held(alone=item.get_closest_marker("alone") is not None):
            yield
    if report:
        worker = getattr(item.config, "workerinput", {}).get("workerid", "main")
        with open(f"{report}.{worker}.jsonl", "a") as fh:
            fh.write(json.dumps({"test": item.nodeid, "cpu": round(_cpu_seconds() - cpu0, 3),
                                 "wall": round(time.monotonic() - wall0, 3)}) + "\n")


def _cpu_seconds():
    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def pytest_terminal_summary(terminalreporter, config):
    seed = getattr(config, "_graphc_shuffle_seed", None)
    if seed is not None and not hasattr(config, "workerinput"):  # -q hides the header
        terminalreporter.write_line(f"tests shuffled: rerun the order with --shuffle {seed}")
    report = config.getoption("--cpu-report")
    if not report or hasattr(config, "workerinput"):
        return
    by_file, total, wall = {}, 0.0, 0.0
    for path in glob.glob(glob.escape(report) + ".*.jsonl"):
        for line in open(path):
            row = json.loads(line)
            name = row["test"].split("::")[0]
            by_file[name] = by_file.get(name, 0.0) + row["cpu"]
            total, wall = total + row["cpu"], wall + row["wall"]
    terminalreporter.write_sep("=", f"CPU seconds by test file: {total:.0f} s in all "
                                    f"(tests' wall seconds summed: {wall:.0f} s)")
    for name, cpu in sorted(by_file.items(), key=lambda kv: -kv[1])[:15]:
        terminalreporter.write_line(f"{cpu:8.1f} s  {name}")


class _RunLocks:
    """A readers-writer lock over the workers of one run, on flock(2): every test reads, an
    `alone` test writes. Everyone passes the gate first; a writer keeps it shut while it waits for
    the readers inside to finish and while it runs, so it is not starved by later readers."""

    def __init__(self, directory):
        self.gate = open(os.path.join(directory, "gate.lock"), "a")
        self.room = open(os.path.join(directory, "room.lock"), "a")

    @contextmanager
    def held(self, alone):
        fcntl.flock(self.gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(self.room, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        except BaseException:
            fcntl.flock(self.gate, fcntl.LOCK_UN)
            raise
        if not alone:
            fcntl.flock(self.gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(self.room, fcntl.LOCK_UN)
            if alone:
                fcntl.flock(self.gate, fcntl.LOCK_UN)
