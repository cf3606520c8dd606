"""Whole-tensor and few-row reductions over many blocks (two passes through the context's
partials buffer), emulated: the same numbers as numpy for float32/float64, odd sizes, every
reduction kind, fused bodies, sizes known only at the call and sizes known at compile time. The
emulator's slices are 256 elements (the device's 16384), so a 513-element row splits in three."""
import shutil

import numpy as np
import pytest

import graphc as G

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")


@pytest.fixture(autouse=True)
def emulate(monkeypatch):
    monkeypatch.setenv("GRAPHC_CUDA_EMULATE", "1")


def _rand(shape, dtype, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_whole_tensor_reductions_of_any_length_match_numpy(dtype):
    x = G.vector("x", dtype=dtype)
    f = G.function([x], [x.sum(), x.max(), x.min(), (x * x).sum(), (1 + x * 1e-3).prod()],
                   target="cuda")
    assert f.program.source.count("_part, gc_grid(A * gc_slices * 256, 256)") == 5
    tol = dict(rtol=2e-5 if dtype == "float32" else 1e-12)
    for n in (1, 255, 511, 512, 513, 1000, 4099):
        v = _rand(n, dtype, n)
        s, hi, lo, sq, pr = f(v)
        np.testing.assert_allclose(s, v.sum(dtype="float64"), atol=1e-4 if dtype == "float32" else 1e-12, **tol)
        assert hi == v.max() and lo == v.min()
        np.testing.assert_allclose(sq, (v.astype("float64") ** 2).sum(), **tol)
        np.testing.assert_allclose(pr, np.prod(1 + v.astype("float64") * 1e-3), **tol)
        assert s.dtype == dtype


def test_a_few_long_rows_split_and_nan_survives_the_second_pass():
    x = G.matrix("x", dtype="float64")
    f = G.function([x], [x.sum(axis=1), x.max(axis=1)], target="cuda")
    v = _rand((3, 2049), "float64")
    v[1, 1700] = np.nan  # in the last slices of row 1
    s, m = f(v)
    np.testing.assert_allclose(s, v.sum(axis=1), rtol=1e-12)
    np.testing.assert_array_equal(m, v.max(axis=1))
    assert np.isnan(m[1]) and not np.isnan(m[0])
    # many short rows keep one block per row
    w = _rand((70, 600), "float64", 1)
    np.testing.assert_allclose(f(w)[0], w.sum(axis=1), rtol=1e-12)


def test_integer_and_bool_reductions_over_many_blocks():
    x = G.vector("x", dtype="int64")
    b = x > 0
    f = G.function([x], [x.sum(), x.max(), b.max()], target="cuda")
    v = np.random.default_rng(3).integers(-1000, 1000, 3001)
    s, m, anyp = f(v)
    assert s == v.sum() and m == v.max() and bool(anyp) == bool((v > 0).any())


def test_a_static_length_reduction_gets_the_two_pass_kernels():
    x = G.vector("x", shape=(40001,), dtype="float32")
    f = G.function([x], x.sum(), target="cuda")
    assert "gc_reduce_slices(A, R)" in f.program.source
    v = _rand(40001, "float32", 5)
    np.testing.assert_allclose(f(v), v.sum(dtype="float64"), rtol=1e-5, atol=1e-4)
    y = G.vector("y", shape=(1000,), dtype="float32")  # short: never split, no extra kernels
    assert "gc_reduce_slices(A, R)" not in G.function([y], y.sum(), target="cuda").program.source
