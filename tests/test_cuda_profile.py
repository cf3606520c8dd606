"""graphc.profile and profile=True on target="cuda" (templates/cuda/_profile.cu.j2: a cudaEvent
pair around each kernel's launches, read after the step), emulated (GRAPHC_CUDA_EMULATE=1: the
emulator's events read the host clock): the C target's report rows, a top-level loop's body rows,
a profiled call trains as the normal one, and the normal build carries no timers. nvcc compiles
the profiling build in test_cuda_target_compile.py and test_cuda_kernels_loop.py."""
import shutil

import numpy as np
import pytest

import graphc as G
from graphc.profiler import watch

from test_profile import _check_loop_rows

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")


@pytest.fixture(autouse=True)
def emulate(monkeypatch):
    monkeypatch.setenv("GRAPHC_CUDA_EMULATE", "1")


def _train_step(name):
    x = G.matrix("x")
    w = G.shared(np.linspace(-1, 1, 12).reshape(3, 4).astype("float32"), name=f"{name}.w")
    cost = G.sum(G.tanh(x @ w) ** 2)
    return G.function([x], cost, updates=[(w, w - 0.1 * G.grad(cost, w))], target="cuda",
                      name=name), w


def test_profile_times_each_cuda_kernel_and_leaves_the_parameters_as_they_were():
    f, w = _train_step("cuda_prof")
    assert "cudaEventRecord" not in f.program.source  # the normal build has no timers
    xv = np.random.RandomState(0).randn(5, 3).astype("float32")
    f(xv)  # the parameter lives on the device now
    before = w.get_value()
    r = G.profile(f, xv, repeat=3, warmup=1)
    np.testing.assert_array_equal(w.get_value(), before)
    program = f.program.program
    assert [k.kind for k in r.kernels] == [k.kind for k in program.kernels]
    assert {"gemm", "elemwise", "reduce"} <= {k.kind for k in r.kernels}
    assert all(k.seconds >= 0 for k in r.kernels) and sum(k.seconds for k in r.kernels) > 0
    # (medians need not add up; the means over the same calls do)
    assert sum(k.mean_seconds for k in r.kernels) <= r.mean_call_seconds * 1.000001
    assert r.run_seconds <= r.call_seconds and r.unprofiled_call_seconds > 0
    assert all(k.peak_fraction is None for k in r.kernels)  # no device peak measured
    # the trace places each kernel inside its Python call (the host clock at the first event)
    call = r.trace[-1]
    starts = [s for s, d in zip(call["starts"], call["durations"])]
    assert all(call["t0"] <= s <= call["t1"] for s in starts)
    assert starts == sorted(starts)
    assert str(r).startswith("graphc profile of cuda_prof: median of 3 calls")


def test_a_watched_cuda_function_trains_as_the_normal_one():
    f, w = _train_step("cuda_watch_a")
    g_fn, v = _train_step("cuda_watch_b")
    g = watch(g_fn, at_exit=False)
    assert "cudaEventRecord" in g.program.source
    rng = np.random.RandomState(1)
    for _ in range(3):
        xv = rng.randn(4, 3).astype("float32")
        np.testing.assert_allclose(g(xv), f(xv), rtol=1e-6)
    np.testing.assert_allclose(v.get_value(), w.get_value(), rtol=1e-6)
    r = g.report()
    assert r.calls == 3 and len(r.kernels) == len(g_fn.program.program.kernels)
    g.reset()
    assert g.report() is None


def test_a_cuda_scan_breaks_out_its_body_kernels():
    """G.scan on CUDA is a host loop of launches: each body kernel's events, read per iteration."""
    rng = np.random.RandomState(2)
    X = G.tensor("X", (G.dim("T"), 4, 3))
    W = G.shared(rng.randn(3, 5).astype("float32") * 0.3, name="crnn.W")
    U = G.shared(rng.randn(5, 5).astype("float32") * 0.3, name="crnn.U")
    hs, _ = G.scan(lambda x, h: G.tanh(G.dot(x, W) + G.dot(h, U)), sequences=X,
                   outputs_info=G.zeros((4, 5)), name="crnn")
    loss = G.mean(hs[-1] * hs[-1])
    f = G.function([X], loss, updates={p: p - 0.1 * g for p, g in zip([W, U], G.grad(loss, [W, U]))},
                   target="cuda", name="cuda_prof_rnn")
    r = G.profile(f, rng.randn(5, 4, 3).astype("float32"), repeat=2, warmup=1)
    loops = _check_loop_rows(r, 5)
    assert len(loops) == 2  # the forward scan and its gradient's reverse loop
    g = watch(f, at_exit=False)
    for T in (5, 1):
        g(rng.randn(T, 4, 3).astype("float32"))
    _check_loop_rows(g.report(peak=False), 3)
