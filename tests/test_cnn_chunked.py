"""Convolutions in chunks of images (the conv_chunked* kernels, lower_cnn.py): a small im2col budget
(GRAPHC_CONV_WORKSPACE) cuts the batch into chunks of one, two or three images, with a ragged last
chunk, and every result (output and both gradients) must equal the unchunked numpy reference on
odd sizes, strides, padding, dilation and groups, in both dtypes. The budget bounds the planned
workspace whatever the batch."""
import numpy as np
import pytest
import sympy

import graphc as G
from graphc.errors import CompileError

from program_cases import program_of

# name -> (conv keywords, x shape, w shape)
GEOMETRIES = {
    "odd": ({}, (5, 3, 7, 9), (4, 3, 3, 2)),
    "stride_pad": ({"stride": (2, 3), "padding": (1, 2)}, (5, 2, 9, 8), (3, 2, 3, 3)),
    "dilation": ({"dilation": 2, "padding": 1}, (4, 2, 7, 7), (3, 2, 3, 3)),
    "groups": ({"groups": 2, "stride": 2}, (5, 4, 7, 6), (6, 2, 3, 2)),
}


def _per_image_bytes(kw, xs, ws, dtype):
    g = kw.get("groups", 1)
    y = G.conv2d(G.tensor("x", xs, dtype), G.tensor("w", ws, dtype), **kw)
    p = y.type.shape[2] * y.type.shape[3]
    k = ws[1] * ws[2] * ws[3]
    return (g * k + ws[0]) * p * np.dtype(dtype).itemsize


def _outputs_and_grads(kw, x, w):
    y = G.conv2d(x, w, **kw)
    r = np.random.RandomState(3).uniform(0.5, 1.5, [int(d) for d in y.type.shape]).astype(y.dtype)
    return [y] + G.grad((y * r).sum(), [x, w])


@pytest.mark.parametrize("images", [1, 2, 3])
@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_chunked_equals_reference(name, images, dtype, monkeypatch):
    kw, xs, ws = GEOMETRIES[name]
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "gemm")
    monkeypatch.setenv("GRAPHC_CONV_WORKSPACE", str(images * _per_image_bytes(kw, xs, ws, dtype)))
    rng = np.random.RandomState(0)
    xv, wv = rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)
    x, w = G.tensor("x", xs, dtype), G.tensor("w", ws, dtype)
    outs = _outputs_and_grads(kw, x, w)
    f = G.function([x, w], outs)
    chunked = [k for k in f.program.program.kernels if k.kind.startswith("conv_chunked")]
    assert len(chunked) == 3 and all(k.params["NB"] == images for k in chunked)
    ref = G.function([x, w], outs, backend="py", opt_level="O0")(xv, wv)
    tol = 5e-5 if dtype == "float32" else 1e-11
    for got, want in zip(f(xv, wv), ref):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_chunked_symbolic_batch_binds_the_chunk_at_call(monkeypatch):
    """A symbolic batch: the chunk size is an expression of the dims, evaluated per call."""
    kw, xs, ws = GEOMETRIES["stride_pad"]
    monkeypatch.setenv("GRAPHC_CONV_WORKSPACE", str(2 * _per_image_bytes(kw, xs, ws, "float64")))
    x, w = G.tensor4("x", dtype="float64"), G.tensor("w", ws, "float64")
    y = G.conv2d(x, w, **kw)
    outs = [y] + G.grad((y * y).sum(), [x, w])
    f = G.function([x, w], outs)
    ref = G.function([x, w], outs, backend="py", opt_level="O0")
    rng = np.random.RandomState(1)
    wv = rng.standard_normal(ws)
    for n in (1, 2, 5):
        xv = rng.standard_normal((n,) + xs[1:])
        for got, want in zip(f(xv, wv), ref(xv, wv)):
            np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11)


def test_gradients_match_finite_differences_when_chunked(monkeypatch):
    kw, xs, ws = GEOMETRIES["groups"]
    monkeypatch.setenv("GRAPHC_CONV_WORKSPACE", str(2 * _per_image_bytes(kw, xs, ws, "float64")))
    rng = np.random.RandomState(2)
    xv, wv = rng.standard_normal(xs), rng.standard_normal(ws)
    G.testing.verify_grad(lambda x, w: G.conv2d(x, w, **kw), [xv, wv], backend="c")


def test_alexnet_conv1_workspace_is_bounded_at_batch_128():
    """AlexNet's conv1 and its gradients at batch 128: ~560 MB of im2col unchunked; the default
    budget (32 MB) holds the whole step's planned workspace to the activations plus one chunk."""
    x = G.tensor("x", (128, 3, 227, 227))
    w = G.shared(np.zeros((96, 3, 11, 11), np.float32), name="w")
    y = G.conv2d(x, w, stride=4)
    gw = G.grad(y.sum(), [w])[0]
    program = program_of([x], [y, gw])
    activations = 128 * 96 * 55 * 55 * 4
    assert int(sympy.sympify(program.workspace_bytes)) <= 2 * activations + 40 * 2 ** 20
    kernels = [k for k in program.kernels if k.kind.startswith("conv_chunked")]
    assert kernels and all(k.params["NB"] < 128 for k in kernels)


def test_bad_workspace_setting_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("GRAPHC_CONV_WORKSPACE", "lots")
    x, w = G.tensor("x", (2, 3, 5, 5)), G.tensor("w", (4, 3, 3, 3))
    with pytest.raises(CompileError, match="GRAPHC_CONV_WORKSPACE"):
        G.function([x, w], G.conv2d(x, w))
