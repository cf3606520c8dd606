"""graphc.profile: the profiling build (timers only there), the report's structure, the restore of
parameters, the Chrome trace's format, the cached peak read as hostile input, watched functions
and GRAPHC_PROFILE=1. Timing values are not asserted beyond what holds on a loaded machine (the
nesting of each call's measured intervals); README and the branch note give measured tables."""
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import graphc as G
from graphc.profiler import Peak, ProfileError, watch
from graphc.profiler import peak as peak_mod
from graphc.targets.c.cache_trust import private_dir

FIXED_PEAK = Peak({"float32": 50.0, "float64": 25.0},
                  {8 * n: 10.0 for n in peak_mod.COPY_ELEMENTS}, "test machine", "never")


def _train_step(name="prof_step", n_in=16, n_hidden=32):
    rng = np.random.RandomState(0)
    batch = G.dim("batch")
    x = G.tensor("x", (batch, n_in))
    y = G.tensor("y", (batch,), "int64")
    w1 = G.shared(rng.randn(n_in, n_hidden).astype("float32") * 0.3, name="fc1.W")
    b1 = G.shared(np.zeros(n_hidden, "float32"), name="fc1.b")
    w2 = G.shared(rng.randn(n_hidden, 3).astype("float32") * 0.3, name="fc2.W")
    h = G.relu(G.dot(x, w1) + b1)
    loss = G.softmax_cross_entropy(G.dot(h, w2), y).mean()
    params = [w1, b1, w2]
    updates = {p: p - 0.5 * g for p, g in zip(params, G.grad(loss, params))}
    return G.function([x, y], loss, updates=updates, name=name), params


def _data(batch=8, n_in=16):
    rng = np.random.RandomState(1)
    return rng.randn(batch, n_in).astype("float32"), rng.randint(0, 3, batch).astype("int64")


@pytest.fixture(scope="module")
def step():
    return _train_step()


@pytest.fixture(scope="module")
def report(step):
    f, _ = step
    return G.profile(f, *_data(), repeat=4, warmup=1, peak=FIXED_PEAK)


def test_the_normal_build_has_no_timers_and_the_profiling_build_times_each_kernel(step):
    f, _ = step
    assert "gc_prof" not in f.program.source and "clock_gettime" not in f.program.source
    twin = f.__dict__["_profiling_twin"] if "_profiling_twin" in f.__dict__ else \
        G.profiler.ProfiledFunction(f)
    n = len(f.program.program.kernels)
    assert len(re.findall(r"gc_prof_t(\d+) = gc_prof_now\(\)", twin.program.source)) == n
    assert twin.program.lib_path != f.program.lib_path


def test_report_has_one_row_per_kernel_in_execution_order(step, report):
    f, _ = step
    kernels = f.program.program.kernels
    assert report.function == "prof_step" and report.statistic == "median"
    assert report.calls == 4 and report.dims == {"batch": 8}
    assert [r.index for r in report.kernels] == list(range(len(kernels)))
    assert [r.kind for r in report.kernels] == [k.kind for k in kernels]
    assert [r.ops for r in report.kernels] == [k.label for k in kernels]
    for r in report.kernels:
        assert r.seconds >= 0 and r.bytes > 0 and r.bound in ("compute", "memory")
        assert r.share == pytest.approx(r.seconds / report.call_seconds)
        assert r.min_seconds <= r.seconds + 1e-12
    # FLOPs of the first product: batch x n_in x n_hidden multiply-adds.
    gemm = next(r for r in report.kernels if r.kind == "gemm")
    assert gemm.flops == 2 * 8 * 16 * 32 and gemm.dtype == "float32"
    assert "x" in gemm.names and "fc1.W" in gemm.names  # the user's names, layer's parameter
    # The fraction is of the fixed peak given: the rate over the bound's peak.
    for r in report.kernels:
        if r.seconds > 0 and r.peak_fraction is not None:
            top = 50.0 if r.bound == "compute" else 10.0
            assert r.peak_fraction == pytest.approx(r.rate / top)
    kinds = {kind: (n, s) for kind, n, s, _ in report.by_kind()}
    assert sum(n for n, _ in kinds.values()) == len(kernels)
    assert kinds["gemm"][1] == pytest.approx(sum(r.seconds for r in report.kernels
                                                 if r.kind == "gemm"))
    assert report.overhead_seconds == pytest.approx(report.c_overhead_seconds
                                                    + report.python_overhead_seconds)
    assert report.python_overhead_seconds > 0


def test_report_prints_a_table_and_round_trips_json(report):
    text = str(report)
    assert text.splitlines()[0].startswith("graphc profile of prof_step: median of 4 calls")
    for r in report.kernels:
        assert re.search(rf"^k{r.index}\s+{r.kind}\s", text, re.M)
    assert "totals per kernel kind:" in text and "outside kernels" in text
    short = report.table(top=2)
    slowest = sorted(report.kernels, key=lambda k: -k.seconds)[:2]
    assert [int(m) for m in re.findall(r"^k(\d+)\s", short, re.M)] == \
        sorted(k.index for k in slowest)
    assert f"... {len(report.kernels) - 2} more kernels" in short
    d = json.loads(report.to_json())
    assert d["function"] == "prof_step" and len(d["kernels"]) == len(report.kernels)
    assert set(d["kernels"][0]) >= {"index", "kind", "ops", "names", "seconds", "share", "flops",
                                    "bytes", "rate", "peak_fraction", "bound"}
    assert d["peak"]["gemm_gflops"] == {"float32": 50.0, "float64": 25.0}


def test_each_call_nests_kernels_inside_the_run_inside_the_python_call(report):
    """What holds however loaded the machine: per call, the kernels run in order, inside the
    compiled program's run, inside the Python call (one clock: CLOCK_MONOTONIC)."""
    assert len(report.trace) == 4
    for call in report.trace:
        assert call["t0"] <= call["run_t0"]
        assert call["run_t0"] + call["run_s"] <= call["t1"] + 1e-9
        end = call["run_t0"]
        for start, dur in zip(call["starts"], call["durations"]):
            assert start >= end - 1e-9 and dur >= 0
            end = start + dur
        assert end <= call["run_t0"] + call["run_s"] + 1e-9
        assert sum(call["durations"]) <= call["t1"] - call["t0"]


def test_chrome_trace_format(report, tmp_path):
    path = report.to_chrome_trace(str(tmp_path / "trace.json"))
    with open(path) as fh:
        trace = json.load(fh)
    events = trace["traceEvents"]
    meta = [e for e in events if e["ph"] == "M"]
    spans = [e for e in events if e["ph"] == "X"]
    assert {e["name"] for e in meta} == {"process_name", "thread_name"}
    n = len(report.kernels)
    assert len(spans) == report.calls * (2 + n)
    for e in spans:
        assert set(e) >= {"name", "cat", "ph", "ts", "dur", "pid", "tid", "args"}
        assert isinstance(e["ts"], (int, float)) and e["dur"] >= 0
    calls = [e for e in spans if e["cat"] == "call"]
    kernels = [e for e in spans if e["cat"] not in ("call", "run")]
    assert [e["name"] for e in kernels[:n]] == [f"k{r.index} {r.kind}" for r in report.kernels]
    assert min(e["ts"] for e in spans) == 0 == calls[0]["ts"]
    assert kernels[0]["args"]["flops"] == report.kernels[0].flops


def test_profiling_leaves_parameters_as_they_were(step):
    """A training step profiled 5 times does not train: every updated variable holds the same
    values in the same array (in-place updates wrote into it) as before."""
    f, params = step
    before = [p.get_value() for p in params]
    arrays = [p.get_value(borrow=True) for p in params]
    G.profile(f, *_data(), repeat=5, warmup=1, peak=False)
    for p, b, a in zip(params, before, arrays):
        assert p.get_value(borrow=True) is a
        assert np.array_equal(p.get_value(), b)
    f(*_data())  # and the function itself still trains
    assert not all(np.array_equal(p.get_value(), b) for p, b in zip(params, before))
    for p, b in zip(params, before):
        p.set_value(b)


def test_profiling_restores_after_a_failed_call(step):
    f, params = step
    before = [p.get_value() for p in params]
    x, y = _data()
    with pytest.raises(G.GraphcError):
        G.profile(f, x, y + 100, repeat=2, warmup=0, peak=False)  # labels out of range
    for p, b in zip(params, before):
        assert np.array_equal(p.get_value(), b)


def test_profile_rejects_what_it_cannot_time():
    x = G.vector("x")
    f = G.function([x], G.exp(x), backend="py")
    with pytest.raises(ProfileError, match="backend='c'"):
        G.profile(f, np.ones(3, "float32"))
    with pytest.raises(ProfileError, match="compiled function"):
        G.profile(lambda v: v, np.ones(3, "float32"))
    g = G.function([x], G.exp(x))
    with pytest.raises(ProfileError, match="repeat"):
        G.profile(g, np.ones(3, "float32"), repeat=0)


def test_watched_function_trains_like_the_original_and_reports_means():
    f, params = _train_step("prof_watched")
    start = [p.get_value() for p in params]
    expected = [float(f(*_data(batch=b))) for b in (8, 8, 4)]
    trained = [p.get_value() for p in params]
    for p, v in zip(params, start):
        p.set_value(v)
    g = watch(f, at_exit=False)
    assert [float(g(*_data(batch=b))) for b in (8, 8, 4)] == pytest.approx(expected, rel=1e-6)
    for p, v in zip(params, trained):
        np.testing.assert_allclose(p.get_value(), v, rtol=1e-6)
    r = g.report(peak=False)
    assert r.calls == 3 and r.statistic == "mean" and r.dims == {"batch": 8}
    gemm = next(k for k in r.kernels if k.kind == "gemm")
    assert gemm.flops == round((2 * 2 * 8 * 16 * 32 + 2 * 4 * 16 * 32) / 3)  # mean of the calls
    assert r.run_seconds <= r.call_seconds
    assert len(r.trace) == 1 and len(r.chrome_trace()["traceEvents"]) == 2 + 2 + len(r.kernels)
    g.reset()
    assert g.report(peak=False) is None


def _write_peak(data):
    path = os.path.join(private_dir("profile"), "peak.json")
    with open(path, "wb") as fh:
        fh.write(data)
    return path


def _record(**changes):
    record = {"machine": peak_mod.machine_key(), "gemm_gflops": {"float32": 40.0},
              "copy_gbps": {str(8 * n): 5.0 for n in peak_mod.COPY_ELEMENTS},
              "measured": "2026-01-01"}
    record.update(changes)
    return json.dumps({peak_mod.machine_key(): record}).encode()


@pytest.mark.parametrize("data", [
    b"\xff\xfe not json", b"[1, 2]", b"{" * 100000, b'{"machine": 1}',
    _record(machine="another machine"), _record(copy_gbps={"1": 5.0}),
    json.dumps({"another machine": {"machine": "another machine"}}).encode(),
    _record(copy_gbps={str(8 * n): -1.0 for n in peak_mod.COPY_ELEMENTS}),
    _record(copy_gbps=float("nan")),
])
def test_a_damaged_or_foreign_peak_file_is_not_used(data):
    _write_peak(data)
    assert peak_mod.machine_peak(measure=False) is None


def test_the_cached_peak_is_read_back(monkeypatch):
    _write_peak(_record(gemm_gflops={"float32": 40.0, "float64": float("inf"), "x": 3}))
    peak = peak_mod.machine_peak(measure=False)
    assert peak.gemm_gflops == {"float32": 40.0} and peak.bandwidth(1) == 5.0
    # A float type the file lacks is measured and added (measurement stubbed: seconds of work).
    monkeypatch.setattr(peak_mod, "measure_gemm", lambda dtype: 7.0)
    peak = peak_mod.machine_peak(("float64",))
    assert peak.gemm_gflops == {"float32": 40.0, "float64": 7.0}
    assert peak_mod.machine_peak(("float64",), measure=False).gemm_gflops["float64"] == 7.0
    # Another machine's record (a shared home directory) is kept beside this one's.
    records = json.loads(_record())  # this machine's, without float64
    records["other"] = json.loads(_record(machine="other")).popitem()[1]
    path = _write_peak(json.dumps(records).encode())
    assert peak_mod.machine_peak(("float64",)).gemm_gflops["float64"] == 7.0  # measured
    with open(path) as fh:
        assert set(json.load(fh)) == {peak_mod.machine_key(), "other"}


def test_graphc_profile_environment_prints_a_report_at_exit():
    _write_peak(_record())  # (the subprocess shares this session's cache: nothing to measure)
    code = textwrap.dedent("""
        import numpy as np, graphc as G
        x = G.matrix("x"); w = G.shared(np.ones((4, 3), "float32"), name="w")
        f = G.function([x], G.dot(x, w).sum(), updates={w: w * 0.5}, name="env_fn")
        for _ in range(3):
            f(np.ones((2, 4), "float32"))
        print("value", float(w.get_value()[0, 0]))
    """)
    env = dict(os.environ, GRAPHC_PROFILE="1")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "value 0.125" in proc.stdout  # watched calls train as usual
    assert "graphc profile of env_fn: mean of 3 calls" in proc.stderr, proc.stderr
    assert re.search(r"^k0\s+gemm\s", proc.stderr, re.M)


def test_graphc_profile_command(tmp_path, capsys):
    """`graphc profile script.py:build`: the table of each function, inputs generated for one
    given without args (--dim for its symbolic dims), JSON and a trace per function."""
    from graphc.cli import main
    _write_peak(_record())
    script = tmp_path / "steps.py"
    script.write_text(textwrap.dedent("""
        import numpy as np, graphc as G
        def build():
            x = G.tensor("x", (G.dim("rows"), 3)); i = G.tensor("i", (G.dim("rows"),), "int64")
            f = G.function([x, i], (G.exp(x).sum(axis=1) * G.cast(i, "float32")).sum(),
                           name="cli_fn")
            g = G.function([x], G.tanh(x), name="cli_given")
            return {"f": f, "g": (g, (np.ones((2, 3), "float32"),))}
    """))
    rc = main(["profile", f"{script}:build", "--repeat", "2", "--dim", "rows=5",
               "--json", str(tmp_path / "r.json"), "--trace", str(tmp_path / "t.json")])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "graphc profile of cli_fn: median of 2 calls (rows=5)" in out.out
    assert "graphc profile of cli_given: median of 2 calls (rows=2)" in out.out
    reports = json.loads((tmp_path / "r.json").read_text())
    assert set(reports) == {"f", "g"} and reports["f"]["dims"] == {"rows": 5}
    for name in ("f", "g"):
        assert json.loads((tmp_path / f"t.{name}.json").read_text())["traceEvents"]
    with pytest.raises(SystemExit, match="NAME=SIZE"):
        main(["profile", f"{script}:build", "--dim", "rows"])
    with pytest.raises(SystemExit, match="has no function nothing"):
        main(["profile", f"{script}:nothing"])


def test_bandwidth_of_a_kernel_is_the_copy_of_its_size():
    peak = Peak({"float32": 1.0}, {128 << 10: 5.0, 4 << 20: 1.0, 64 << 20: 2.0})
    assert peak.bandwidth(1000) == 5.0
    assert peak.bandwidth(1 << 20) == 2.0  # never below what a larger copy reached
    assert peak.bandwidth(1 << 30) == 2.0
    assert peak.gflops("float64") == 1.0  # (a float type not measured: float32's)



def test_function_profile_keyword_watches_the_function_and_reports_at_exit():
    """graphc.function(..., profile=True), Theano's keyword: every call timed (training as
    usual), the report printed at exit; a bad value refused before compiling."""
    _write_peak(_record())
    code = textwrap.dedent("""
        import os, numpy as np, graphc as G
        from graphc.profiler import ProfiledFunction, watched
        every = os.environ["GRAPHC_PROFILE"] == "1"
        x = G.matrix("x"); w = G.shared(np.ones((4, 3), "float32"), name="w")
        f = G.function([x], G.dot(x, w).sum(), updates={w: w * 0.5}, name="kw_fn", profile=True)
        g = G.function([x], G.dot(x, w).sum(), name="plain_fn", profile=False)
        assert isinstance(f, ProfiledFunction) and isinstance(g, ProfiledFunction) == every
        assert [fn.name for fn in watched()] == ["kw_fn"] + ["plain_fn"] * every
        for _ in range(3):
            f(np.ones((2, 4), "float32"))
        print("value", float(w.get_value()[0, 0]), f.report(peak=False).calls)
    """)
    for env_profile in ("0", "1"):  # under GRAPHC_PROFILE=1 too: one watcher, one report
        env = dict(os.environ, GRAPHC_PROFILE=env_profile)
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert "value 0.125 3" in proc.stdout
        assert proc.stderr.count("graphc profile of kw_fn: mean of 3 calls") == 1, proc.stderr
        assert re.search(r"^k0\s+gemm\s", proc.stderr, re.M)
    x = G.vector("x")
    with pytest.raises(G.errors.CompileError, match="profile=True"):
        G.function([x], G.exp(x), profile="yes")
    with pytest.raises(ProfileError, match="backend='c'"):
        G.function([x], G.exp(x), backend="py", profile=True)


def _rnn_step():
    """A scan's C loop (T steps of h = tanh(x_t W + h U)) trained with its gradient."""
    rng = np.random.RandomState(2)
    X = G.tensor("X", (G.dim("T"), 4, 3))
    W = G.shared(rng.randn(3, 5).astype("float32") * 0.3, name="rnn.W")
    U = G.shared(rng.randn(5, 5).astype("float32") * 0.3, name="rnn.U")
    h0 = G.zeros((4, 5))
    hs, _ = G.scan(lambda x, h: G.tanh(G.dot(x, W) + G.dot(h, U)), sequences=X,
                   outputs_info=h0, name="rnn")
    loss = G.mean(hs[-1] * hs[-1])
    updates = {p: p - 0.1 * g for p, g in zip([W, U], G.grad(loss, [W, U]))}
    return G.function([X], loss, updates=updates, name="prof_rnn")


def _check_loop_rows(r, T):
    loops = [k for k in r.kernels if k.kind == "loop"]
    assert loops and all(k.iterations == T for k in loops)
    for k in loops:
        assert k.body and [b.index for b in k.body] == list(range(len(k.body)))
        body_kinds = {b.kind for b in k.body}
        assert "gemm" in body_kinds
        # the body's rows are inside the loop's time (means add up; medians need not); their
        # work is the loop's, kernel by kernel
        if r.statistic == "mean":
            assert sum(b.seconds for b in k.body) <= k.seconds * 1.000001
        assert sum(b.flops for b in k.body) == pytest.approx(k.flops, rel=1e-6)
        assert sum(b.bytes for b in k.body) == pytest.approx(k.bytes, rel=1e-6)
        gemm = next(b for b in k.body if b.kind == "gemm")
        assert gemm.flops % T == 0 and gemm.seconds > 0
    assert sum(1 for k in r.kernels if k.iterations is not None) == len(loops)
    return loops


def test_loop_kernels_break_out_their_body_kernels():
    """G.scan's C loop: one row per body kernel, its time and work summed over the iterations,
    with the iteration count; in the table, the JSON and watched functions' reports."""
    f = _rnn_step()
    X = np.random.RandomState(3).randn(6, 4, 3).astype("float32")
    r = G.profile(f, X, repeat=3, peak=FIXED_PEAK)
    loops = _check_loop_rows(r, 6)
    assert len(loops) == 2  # the forward scan and its gradient's reverse loop
    for k in loops:
        assert sum(b.mean_seconds for b in k.body) <= k.mean_seconds * 1.000001
    table = str(r)
    for k in loops:
        assert re.search(rf"^  k{k.index}\.0\s+\w", table, re.M)
        assert f"k{k.index} loop: 6 iterations a call" in table
    assert f"k{loops[0].index}.{len(loops[0].body) - 1}" in r.table(top=1) or \
        f"k{loops[1].index}.0" in r.table(top=1)  # a loop kept by top=N keeps its body
    d = json.loads(r.to_json())
    row = d["kernels"][loops[0].index]
    assert row["iterations"] == 6 and len(row["body"]) == len(loops[0].body)
    assert row["body"][0]["kind"] == loops[0].body[0].kind
    g = watch(f, at_exit=False)
    for T in (6, 2):  # the mean over calls of different lengths: (6 + 2) / 2 iterations
        g(np.random.RandomState(T).randn(T, 4, 3).astype("float32"))
    w = g.report(peak=False)
    _check_loop_rows(w, 4)
