"""The conv kernel choices of the C target (lower_cnn.py, templates/c/conv_*.j2): every path
must give the py reference's result up to float rounding, in both dtypes, on odd sizes."""
import numpy as np
import pytest
import sympy

import graphc as G

from program_cases import program_of


def test_chunk_holds_one_image_when_one_image_exceeds_the_budget(monkeypatch):
    """Symbolic image sizes and a budget smaller than one image: the chunk is one image. sympy
    folded Max(1, floor(budget / size)) into the floor, so NB was 0 and the chunk loop never
    advanced (the call hung)."""
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "gemm")
    monkeypatch.setenv("GRAPHC_CONV_WORKSPACE", "4096")
    x = G.tensor4("x", dtype="float64")
    w = G.shared(np.random.RandomState(0).standard_normal((4, 3, 3, 3)), name="w")
    y = G.conv2d(x, w, padding=(1, 1))
    outs = [y] + G.grad((y * y).sum(), [x, w])
    f = G.function([x], outs)
    chunked = [k for k in f.program.program.kernels if k.kind.startswith("conv_chunked")]
    assert len(chunked) == 3
    xv = np.random.RandomState(1).standard_normal((3, 3, 9, 7))
    dims = {s: 1 for k in chunked for s in sympy.sympify(k.params["NB"]).free_symbols}
    for k in chunked:  # every symbol at its smallest value still gives a chunk of >= 1 image
        for name in ("NB", "NB1"):
            nb = sympy.sympify(k.params[name]).subs({s: v for s, v in dims.items()})
            assert nb >= 1
            big = sympy.sympify(k.params[name]).subs({s: 1000 for s in dims})
            assert big >= 1, f"{name} = {k.params[name]} is {big} for large images"
    ref = G.function([x], outs, backend="py", opt_level="O0")
    for got, want in zip(f(xv), ref(xv)):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11)


# --- Winograd F(2x2, 3x3): forward and input gradient of 3x3 stride-1 convs -----------------------

# name -> (padding, x shape, w shape): odd and even output sizes (whole and clipped 2x2 tiles),
# images narrower than a tile, every padding the input gradient allows
WINOGRAD = {
    "pad1_odd": ((1, 1), (3, 5, 7, 9), (4, 5, 3, 3)),
    "pad0_even": ((0, 0), (2, 3, 6, 5), (2, 3, 3, 3)),
    "pad2": ((2, 2), (2, 2, 5, 6), (3, 2, 3, 3)),
    "mixed_pad_tiny": ((0, 2), (2, 3, 3, 2), (5, 3, 3, 3)),
}


def _conv_and_grads(x, w, padding):
    y = G.conv2d(x, w, padding=padding)
    r = np.random.RandomState(3).uniform(0.5, 1.5, [int(d) for d in y.type.shape]).astype(y.dtype)
    return [y] + G.grad((y * r).sum(), [x, w])


def _kinds(f):
    return [k.kind for k in f.program.program.kernels if k.kind.startswith("conv")]


@pytest.mark.parametrize("name", sorted(WINOGRAD))
def test_winograd_equals_reference(name, dtype, monkeypatch):
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "winograd")
    monkeypatch.setenv("GRAPHC_WINOGRAD_TILE", "2")  # (F(4x4, 3x3): test_cnn_kernels_vgg.py)
    padding, xs, ws = WINOGRAD[name]
    rng = np.random.RandomState(0)
    xv, wv = rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)
    x, w = G.tensor("x", xs, dtype), G.tensor("w", ws, dtype)
    outs = _conv_and_grads(x, w, padding)
    f = G.function([x, w], outs)
    assert _kinds(f).count("conv_winograd") == 2  # forward and input gradient
    ref = G.function([x, w], outs, backend="py", opt_level="O0")(xv, wv)
    tol = 5e-5 if dtype == "float32" else 1e-11
    for got, want in zip(f(xv, wv), ref):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())


@pytest.mark.parametrize("tile, budget, kind", [
    (2, 2 * 16 * (3 + 4) * 4 * 5 * 8, "conv_winograd"),    # F(2x2, 3x3): 4x5 tiles of 4x4
    (4, 2 * 36 * (3 + 4) * 8 * 6, "conv_winograd4")])      # F(4x4, 3x3): 2x3 tiles of 6x6
def test_winograd_in_chunks_with_a_symbolic_batch(tile, budget, kind, monkeypatch):
    """A budget of about two images' tiles: chunks of two, a ragged last chunk, sizes bound per call."""
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "winograd")
    monkeypatch.setenv("GRAPHC_WINOGRAD_TILE", str(tile))
    monkeypatch.setenv("GRAPHC_CONV_WORKSPACE", str(budget))
    x = G.tensor4("x", dtype="float64")
    w = G.tensor("w", (4, 3, 3, 3), "float64")
    y = G.conv2d(x, w, padding=(1, 1))
    outs = [y] + G.grad((y * y).sum(), [x, w])
    f = G.function([x, w], outs)
    assert _kinds(f).count(kind) == 2
    ref = G.function([x, w], outs, backend="py", opt_level="O0")
    rng = np.random.RandomState(1)
    wv = rng.standard_normal((4, 3, 3, 3))
    for n in (1, 2, 5):
        xv = rng.standard_normal((n, 3, 7, 9))
        for got, want in zip(f(xv, wv), ref(xv, wv)):
            np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11)


def test_winograd_gradients_match_finite_differences(monkeypatch):
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "winograd")
    monkeypatch.setenv("GRAPHC_WINOGRAD_TILE", "2")  # (F(4x4, 3x3): test_cnn_kernels_vgg.py)
    rng = np.random.RandomState(2)
    xv, wv = rng.standard_normal((2, 3, 5, 4)), rng.standard_normal((2, 3, 3, 3))
    G.testing.verify_grad(lambda x, w: G.conv2d(x, w, padding=(1, 2)), [xv, wv], backend="c")


def _lowered_kinds(xs, ws, **kw):
    x, w = G.tensor("x", xs), G.tensor("w", ws)
    y = G.conv2d(x, w, **kw)
    program = program_of([x, w], [y] + G.grad(y.sum(), [x, w]))
    return [k.kind for k in program.kernels if k.kind.startswith("conv")]


def test_winograd_is_chosen_from_64_channels_for_3x3_stride_1(monkeypatch):
    """(64 -> 64 channels and fewer run the blocked direct conv: test_cnn_kernels_blocked.py)"""
    monkeypatch.delenv("GRAPHC_CONV_ALGO", raising=False)
    assert _lowered_kinds((2, 64, 8, 8), (128, 64, 3, 3), padding=1).count("conv_winograd") == 2
    assert "conv_winograd" not in _lowered_kinds((2, 32, 8, 8), (32, 32, 3, 3), padding=1)


@pytest.mark.parametrize("kw, ws", [({"stride": 2}, (32, 32, 3, 3)), ({"dilation": 2}, (32, 32, 3, 3)),
                                    ({"groups": 2}, (32, 16, 3, 3)), ({}, (32, 32, 5, 5))])
def test_winograd_only_where_its_shape_allows(kw, ws, monkeypatch):
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "winograd")
    monkeypatch.setenv("GRAPHC_WINOGRAD_TILE", "2")  # (F(4x4, 3x3): test_cnn_kernels_vgg.py)
    assert "conv_winograd" not in _lowered_kinds((2, 32, 9, 9), ws, **kw)


def test_winograd_input_gradient_needs_padding_at_most_2(monkeypatch):
    """Padding 3: the input gradient would need padding -1; it stays im2col + gemm."""
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "winograd")
    monkeypatch.setenv("GRAPHC_WINOGRAD_TILE", "2")  # (F(4x4, 3x3): test_cnn_kernels_vgg.py)
    assert _lowered_kinds((2, 32, 4, 4), (32, 32, 3, 3), padding=3).count("conv_winograd") == 1


def test_one_thread_chunk_is_cache_sized_within_the_memory_chunk(monkeypatch):
    """cifar-quick's conv2 at batch 100 (as im2col + gemm): the memory budget holds 39 images,
    the one-thread chunk (CONV_CHUNK_CACHE_BYTES) one image (852 KB of im2col)."""
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "gemm")
    x = G.tensor("x", (100, 32, 16, 16))
    w = G.shared(np.zeros((32, 32, 5, 5), np.float32), name="w")
    y = G.conv2d(x, w, padding=2)
    program = program_of([x], [y] + G.grad(y.sum(), [x, w]))
    kernels = [k for k in program.kernels if k.kind.startswith("conv_chunked")]
    assert len(kernels) == 3
    assert all(k.params["NB"] == 39 and k.params["NB1"] == 1 for k in kernels)
