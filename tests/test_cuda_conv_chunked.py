"""Chunked convolution on the CUDA target (templates/cuda/conv_chunked*.cu.j2: the chunk loop in
the host launcher, im2col / col2im / layout kernels and a cuBLAS gemm per chunk), emulated
(GRAPHC_CUDA_EMULATE=1): forward and both gradients against the py reference and against central
differences of the CUDA forward, with a budget (GRAPHC_CONV_WORKSPACE) of two images per chunk,
so a batch of 5 runs as 3 chunks with a ragged last one, and batches of 1 and 2 take the
one-chunk paths (the gemm writing the output directly at one image)."""
import shutil

import numpy as np
import pytest
import sympy

import graphc as G
from graphc.codegen.program import DTYPE_BYTES

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")

# groups, stride, padding: every index of the chunk kernels is exercised
X_SHAPE, W_SHAPE, STRIDE, PAD, GROUPS = (4, 6, 5), (6, 2, 3, 2), (2, 1), 1, 2
P = 3 * 6  # output pixels per image: (6 + 2 - 3) // 2 + 1 rows, (5 + 2 - 2) + 1 columns


def _conv_graph(dtype):
    x = G.tensor("x", (None,) + X_SHAPE, dtype)
    w = G.tensor("w", W_SHAPE, dtype)
    y = G.conv2d(x, w, stride=STRIDE, padding=PAD, groups=GROUPS)
    return [x, w], [y] + G.grad(G.sum(y * y), [x, w])


def _two_images_per_chunk(monkeypatch, dtype):
    """A budget of 2.5 images' scratch (the column matrix and the (C_out, NB, P) matrix)."""
    per_image = (GROUPS * (W_SHAPE[1] * W_SHAPE[2] * W_SHAPE[3]) + W_SHAPE[0]) * P * DTYPE_BYTES[dtype]
    monkeypatch.setenv("GRAPHC_CONV_WORKSPACE", str(per_image * 5 // 2))
    return per_image


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_chunked_conv_matches_the_reference_over_ragged_chunks(monkeypatch, dtype):
    monkeypatch.setenv("GRAPHC_CUDA_EMULATE", "1")
    per_image = _two_images_per_chunk(monkeypatch, dtype)
    inputs, outputs = _conv_graph(dtype)
    f = G.function(inputs, outputs, target="cuda", name=f"conv_chunks_{dtype}")
    program = f.program.program
    conv = [k for k in program.kernels if k.kind.startswith("conv")]
    assert sorted(k.kind for k in conv) == ["conv_chunked", "conv_chunked_grad_input",
                                            "conv_chunked_grad_weights"]
    assert all(int(k.params["NB"].subs(k.params["N"], 5)) == 2 for k in conv)
    # the scratch is two images' worth whatever the batch
    assert all(int(sympy.sympify(sum(b.nbytes for b in k.scratch)).subs(k.params["N"], 5)) == 2 * per_image
               for k in conv)
    ref = G.function(inputs, outputs, backend="py")
    rng = np.random.RandomState(0)
    wv = rng.standard_normal(W_SHAPE).astype(dtype)
    tol = 2e-5 if dtype == "float32" else 1e-12
    for n in (5, 2, 1):  # 3 chunks (2, 2, 1); one full chunk; one image
        xv = rng.standard_normal((n,) + X_SHAPE).astype(dtype)
        for j, (got, want) in enumerate(zip(f(xv, wv), ref(xv, wv))):
            scale = 1.0 + float(np.abs(want).max())
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale,
                                       err_msg=f"batch {n}, output {j}")


def test_chunked_conv_gradients_match_central_differences(monkeypatch):
    monkeypatch.setenv("GRAPHC_CUDA_EMULATE", "1")
    _two_images_per_chunk(monkeypatch, "float64")
    inputs, (y, gx, gw) = _conv_graph("float64")
    f = G.function(inputs, [G.sum(y * y), gx, gw], target="cuda", name="conv_chunks_fd")
    rng = np.random.RandomState(1)
    point = [rng.standard_normal((5,) + X_SHAPE), rng.standard_normal(W_SHAPE)]
    _, *grads = f(*point)
    eps = 1e-6
    for k, g in enumerate(grads):
        d = rng.standard_normal(point[k].shape)
        plus, minus = list(point), list(point)
        plus[k], minus[k] = point[k] + eps * d, point[k] - eps * d
        numeric = (float(f(*plus)[0]) - float(f(*minus)[0])) / (2 * eps)
        assert np.isclose(float(np.sum(g * d)), numeric, rtol=1e-6, atol=1e-8), f"input {k}"
