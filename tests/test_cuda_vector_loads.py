"""Vectorized loads in the CUDA elementwise kernels (templates/cuda/elemwise.cu.j2, decided by
graphc/targets/cuda/vectorize.py): where every operand is float32 (float64) and contiguous, a
float4 (double2) kernel with a scalar tail, taken when every pointer is 16-byte aligned. Emulated
(GRAPHC_CUDA_EMULATE=1): at odd sizes its results are bit for bit the scalar kernel's, which the
same function runs when an input is a device view 4 (8) bytes off alignment. nvcc compiles the
vector kernels in test_cuda_target_compile.py (float4 and double2)."""
import shutil

import numpy as np
import pytest

import graphc as G
from graphc.targets.cuda.device import DeviceArray
from graphc.targets.cuda.vectorize import vector_width

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")

SIZES = (1, 3, 5, 7, 13, 1027)  # below one vector, ragged tails of every length, several blocks


@pytest.fixture(autouse=True)
def emulate(monkeypatch):
    monkeypatch.setenv("GRAPHC_CUDA_EMULATE", "1")


def _misaligned(value):
    """`value` on the device, one element past a 16-byte boundary (the scalar kernel's case)."""
    base = DeviceArray((value.size + 1,), value.dtype)
    view = DeviceArray(value.shape, value.dtype, ptr=base.ptr + value.dtype.itemsize, owner=base)
    view.set(value)
    return view


def _vector_kernels(f):
    return f.program.source.count("_v(")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_vector_path_equals_the_scalar_path_at_odd_sizes(dtype):
    n = G.dim("n")
    x, y = G.tensor("x", (n,), dtype), G.tensor("y", (n,), dtype)
    # two fused kernels with two outputs: exp/tanh lanes, a constant, products
    f = G.function([x, y], [G.exp(x) * 2 + y, G.tanh(x) - y * y], target="cuda",
                   name=f"vec_{dtype}")
    assert _vector_kernels(f) >= 1
    for size in SIZES:
        rng = np.random.RandomState(size)
        xv, yv = rng.randn(size).astype(dtype), rng.randn(size).astype(dtype)
        vector = f(xv, yv)
        scalar = f(_misaligned(xv), yv)
        for j, (a, b) in enumerate(zip(vector, scalar)):
            np.testing.assert_array_equal(a, b, err_msg=f"size {size}, output {j}")
        tol = 1e-5 if dtype == "float32" else 1e-14  # (numpy's libm and the C one differ by an ulp)
        np.testing.assert_allclose(vector[0], np.exp(xv) * 2 + yv, rtol=tol, atol=tol)
        np.testing.assert_allclose(vector[1], np.tanh(xv) - yv * yv, rtol=tol, atol=tol)


def test_a_contiguous_matrix_and_an_in_place_update_take_the_vector_path():
    """(65, 65) matrices (4225 elements: 1056 vectors and a tail of 1): one vector kernel writes
    the output and updates a shared variable in place on the device, against the C target."""
    runs = {}
    for target in ("c", "cuda"):
        a, b = G.tensor("a", (None, None), "float32"), G.tensor("b", (None, None), "float32")
        w = G.shared(np.linspace(-1, 1, 65 * 65).reshape(65, 65).astype("float32"), name="vec.w")
        f = G.function([a, b], G.sigmoid(a) * b, updates=[(w, w * 0.5 - a * b)], target=target)
        rng = np.random.RandomState(4)
        av, bv = rng.randn(65, 65).astype("float32"), rng.randn(65, 65).astype("float32")
        runs[target] = [f(av, bv), f(bv, av), w.get_value()]
        if target == "cuda":
            assert any(vector_width(k) and {o.role for o in k.outputs} == {"shared", "output"}
                       for k in f.program.program.kernels if k.kind == "elemwise")
    for c, cuda in zip(runs["c"], runs["cuda"]):
        np.testing.assert_allclose(cuda, c, rtol=1e-6, atol=1e-7)


def test_broadcasts_mixed_dtypes_and_small_sizes_keep_only_the_scalar_kernel():
    x, v = G.matrix("x"), G.vector("v")
    i = G.vector("i", dtype="int64")
    s = G.tensor("s", (64, 63), "float32")  # known below MIN_VECTOR_ELEMENTS
    for inputs, outs in (([x, v], [x + v]), ([i], [G.cast(i, "float32") * 2]), ([x], [x > 0]),
                         ([s], [G.exp(s)])):
        f = G.function(inputs, outs, target="cuda")
        assert _vector_kernels(f) == 0, outs
