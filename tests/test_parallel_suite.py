"""The suite in parallel (tests/suite_parallel.py): builders in several processes at once share
one cache and build each library once; `alone` tests exclude every other test; --shuffle keeps
each file's tests together; a failing or crashing test fails a parallel run with its name in the
summary (and does not hang it); without xdist pyproject's options are accepted."""
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
import types

import pytest

import suite_parallel

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

_BUILDER = textwrap.dedent("""
    import json, os, sys, time
    import numpy as np
    import graphc as G
    x = G.vector("x")
    graphs = {"a": lambda: G.tanh(x) * 3 + x, "b": lambda: G.exp(-x * x) + 1}
    order = sys.argv[2].split(",")
    open(sys.argv[1] + ".ready." + str(os.getpid()), "w").close()
    while not os.path.exists(sys.argv[1]):
        time.sleep(0.001)
    out = {}
    for name in order:
        f = G.function([x], graphs[name]())
        out[name] = [f.timings["cache_hit"], f.program.lib_path,
                     f(np.linspace(-1, 1, 5).astype("float32")).tolist()]
    print(json.dumps(out))
""")


def test_builders_in_four_processes_at_once_build_each_library_once(tmp_path):
    cache, go = tmp_path / "cache", tmp_path / "go"
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(cache), PYTHONPATH=ROOT)
    env.pop("GRAPHC_DUMP", None)
    procs = [subprocess.Popen([sys.executable, "-c", _BUILDER, str(go), order], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for order in ("a,b", "b,a", "a,b", "b,a")]
    deadline = time.monotonic() + 240
    while len(list(tmp_path.glob("go.ready.*"))) < len(procs):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), \
            [p.communicate() for p in procs]
        time.sleep(0.01)
    go.write_text("go")  # all four compile both graphs from here on, at once
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    for name in "ab":
        runs = [r[name] for r in results]
        assert sorted(hit for hit, _, _ in runs) == [False, True, True, True]  # one built it
        assert len({lib for _, lib, _ in runs}) == 1 and len({str(v) for _, _, v in runs}) == 1
    programs = [p for p in cache.rglob("*.so") if "runtime" not in p.relative_to(cache).parts
                and p.parent.name != "dispatch"]
    assert len(programs) == 2
    assert [p for p in cache.rglob("*") if p.name.endswith(".tmp")] == []


def test_an_alone_test_waits_for_the_others_and_holds_off_later_ones(tmp_path):
    """flock locks belong to an open file, so two _RunLocks in one process act as two workers."""
    reader, writer, late = (suite_parallel._RunLocks(str(tmp_path)) for _ in range(3))
    events = []

    def hold(locks, alone, name, started=None, seconds=0.0):
        with locks.held(alone=alone):
            events.append(name + " in")
            if started:
                started.set()
            time.sleep(seconds)
            events.append(name + " out")

    inside = threading.Event()
    first = threading.Thread(target=hold, args=(reader, False, "reader", inside, 0.5))
    first.start()
    assert inside.wait(30)
    second = threading.Thread(target=hold, args=(writer, True, "alone", None, 0.3))
    second.start()
    time.sleep(0.2)  # the alone test now waits at the room, holding the gate
    third = threading.Thread(target=hold, args=(late, False, "late"))
    third.start()
    for t in (first, second, third):
        t.join(30)
    assert events == ["reader in", "reader out", "alone in", "alone out", "late in", "late out"]


def _item(nodeid):
    return types.SimpleNamespace(nodeid=nodeid)


def test_shuffle_keeps_each_files_tests_together_and_is_the_same_for_every_worker():
    items = [_item(f"tests/test_{f}.py::test_{i}") for f in "abcdef" for i in range(6)]
    config = types.SimpleNamespace(_graphc_shuffle_seed=7)
    orders = []
    for _ in range(2):  # two workers
        shuffled = list(items)
        suite_parallel.pytest_collection_modifyitems(None, config, shuffled)
        orders.append([i.nodeid for i in shuffled])
    assert orders[0] == orders[1] and sorted(orders[0]) == sorted(i.nodeid for i in items)
    assert orders[0] != [i.nodeid for i in items]
    files = [n.split("::")[0] for n in orders[0]]
    assert len([f for k, f in enumerate(files) if k == 0 or f != files[k - 1]]) == 6  # contiguous


_PROBE = textwrap.dedent("""
    import os
    import pytest

    def test_passes():
        pass

    def test_fails():
        assert 1 + 1 == 3, "the probe's failure"

    def test_crashes():
        os._exit(3)  # a segfault in compiled code ends a worker the same way

    @pytest.mark.alone
    def test_alone():
        pass
""")


def _probe_run(tmp_path, *args):
    """pytest on a probe project with this suite's plugin and pyproject's addopts."""
    addopts = re.search(r'^addopts = "(.*)"$', open(os.path.join(ROOT, "pyproject.toml")).read(),
                        re.M).group(1)
    (tmp_path / "pytest.ini").write_text(f"[pytest]\naddopts = {addopts}\n")
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["suite_parallel"]\n')
    (tmp_path / "test_probe.py").write_text(_PROBE)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "GRAPHC_TEST_")) and k != "GRAPHC_CACHE_DIR"}
    (tmp_path / "tmp").mkdir()
    env.update(PYTHONPATH=HERE, GRAPHC_CACHE_DIR=str(tmp_path / "cache"), TMPDIR=str(tmp_path / "tmp"))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "no:benchmark", *args], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)


def test_a_failing_or_crashing_test_fails_a_parallel_run_by_name(tmp_path):
    pytest.importorskip("xdist")
    proc = _probe_run(tmp_path, "-n", "2")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "FAILED test_probe.py::test_fails - AssertionError: the probe's failure" in out
    assert re.search(r"FAILED test_probe.py::test_crashes - worker 'gw\d' crashed", out), out
    assert "2 failed, 2 passed" in out
    assert not list((tmp_path / "tmp").glob("graphc-test-session-*"))  # removed at the end


def test_without_xdist_the_suite_runs_in_one_process(tmp_path):
    proc = _probe_run(tmp_path, "-p", "no:xdist", "-k", "passes or alone")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "2 passed" in out, out
    assert not list((tmp_path / "tmp").glob("graphc-test-session-*"))
