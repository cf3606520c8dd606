"""Slices whose step is a graph scalar (issue 14): `x[a:b:s]` with `s` known only at run time,
either sign, clipped as numpy clips; s == 0 raises at call time naming the slice. Gradients,
warm compiles, the C and py targets, CUDA emulated, and AOT's refusal."""
import shutil

import numpy as np
import pytest

import graphc as G
from graphc.errors import CompileError, GraphcTypeError, InputError
from graphc.testing import verify_grad

DATA = np.arange(50, dtype="float32").reshape(10, 5)
CASES = ((0, 10, 1), (1, 9, 3), (8, 1, -2), (-1, -100, -3), (100, -100, -1), (3, 3, 2),
         (0, 10, 20), (-3, 100, 2), (9, 0, -20))


def _slices(d, a, b, s):
    return [d[a:b:s], d[::s, 1:], d[a:b:s, ::-2], d[1:, a:b:s]]


def _want(lo, hi, st):
    return [DATA[lo:hi:st], DATA[::st, 1:], DATA[lo:hi:st, ::-2], DATA[1:, lo:hi:st]]


@pytest.mark.parametrize("backend", ["py", "c"])
def test_run_time_step_slices_as_numpy(backend):
    d = G.shared(DATA, name="d")
    a, b, s = G.lscalar("a"), G.lscalar("b"), G.lscalar("s")
    f = G.function([a, b, s], _slices(d, a, b, s), backend=backend)
    for lo, hi, st in CASES:
        for got, want in zip(f(lo, hi, st), _want(lo, hi, st)):
            assert got.shape == want.shape, (lo, hi, st)
            np.testing.assert_array_equal(got, want)
    with pytest.raises(InputError, match=r"slice d\[a:b:s\] \(axis 0\) has step 0"):
        f(0, 3, 0)
    assert s.type.ndim == 0  # (the failed call changed nothing: the next one works)
    np.testing.assert_array_equal(f(0, 3, 1)[0], DATA[0:3])


def test_step_must_be_an_integer_scalar():
    d = G.shared(DATA, name="d")
    with pytest.raises(GraphcTypeError, match="slice step must be an integer scalar"):
        d[::G.scalar("f")]
    with pytest.raises(GraphcTypeError, match="zero"):
        d[::0]
    i32 = G.iscalar("k")  # int32 steps, and a step from a shape
    f = G.function([i32], [d[::i32], d[::d.shape[0] // 3]])
    np.testing.assert_array_equal(f(np.int32(-4))[0], DATA[::-4])
    np.testing.assert_array_equal(f(np.int32(1))[1], DATA[::3])


def test_gradient_through_a_run_time_step():
    def fn(x, a, b, s):
        y = x[a:b:s]
        return (G.tanh(y) * y).sum()
    rs = np.random.RandomState(0)
    for a, b, s in ((1, 8, 2), (8, 0, -3)):
        verify_grad(fn, [rs.randn(9, 3), np.int64(a), np.int64(b), np.int64(s)])
    x, s = G.matrix("x"), G.lscalar("s")
    gx = G.function([x, s], G.grad((x[::s] * 2).sum(), x))(np.ones((5, 2), "float32"), -2)
    want = np.zeros((5, 2), "float32")
    want[::-2] = 2
    np.testing.assert_array_equal(gx, want)


def test_run_time_steps_compile_warm_the_second_time():
    def build():
        d = G.shared(DATA, name="d")
        a, s = G.lscalar("a"), G.lscalar("s")
        return G.function([a, s], d[a::s].sum(axis=1))
    build()
    f = build()  # new start/length/step dims, the same graph: the cached program serves
    assert f.timings.get("artifact_hit")
    np.testing.assert_array_equal(f(9, -4), DATA[9::-4].sum(axis=1))


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")
def test_run_time_steps_on_cuda_emulated(monkeypatch):
    monkeypatch.setenv("GRAPHC_CUDA_EMULATE", "1")
    d = G.shared(DATA, name="d")
    a, b, s = G.lscalar("a"), G.lscalar("b"), G.lscalar("s")
    f = G.function([a, b, s], [d[a:b:s] * 2], target="cuda")
    for lo, hi, st in ((8, 1, -3), (0, 10, 4), (5, 5, 1)):
        np.testing.assert_array_equal(f(lo, hi, st)[0], DATA[lo:hi:st] * 2)
    with pytest.raises(InputError, match="step 0"):
        f(0, 3, 0)


def test_aot_export_refuses_run_time_steps(tmp_path):
    d = G.shared(DATA, name="d")
    s = G.lscalar("s")
    f = G.function([s], d[::s] * 2)
    with pytest.raises(CompileError, match="known only at run time"):
        G.aot.export({"f": f}, str(tmp_path / "out"), name="st")
