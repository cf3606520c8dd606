"""The blocked convolution at image edges (branch conv-edges, templates/c/_conv_blocked.j2):
- the flat layout of a stride-1 conv whose output rows do not fill whole vectors (LeNet's conv2:
  10-pixel rows): an image's outputs are one row of HO*WO, each (channel, kernel column) a plane
  WO wide, so a vector runs across output rows; tiles may span two images;
- padded rows no wider than the last vector's reach (the row layout's planes were a whole vector
  wider than any tap reads).
Compiled vs the py reference in both dtypes on sizes that hit the edges (rows narrower than a
vector, an image's last vector partly past its end, images of fewer vectors than a tile, padding
rows and columns, the bias / residual / ReLU epilogue in the flat stores, the input gradient through
the same kernel), the slot's room for the flat images (program level), finite differences."""
import numpy as np
import pytest

import graphc as G
from graphc.codegen.lower_cnn_blocked import _flat_image, _slot_image, flat_may_pay

from program_cases import program_of
from test_cnn_kernels_blocked import check_blocked_equals_reference, expected_blocked_kernels

# name -> (x shape, w shape, stride, padding); every one stride 1 with output rows that waste an
# eighth of their lanes or more in vectors of 8 floats (AVX), so the flat layout runs there.
FLAT = {
    # LeNet's conv2 (the ONNX model): 6 -> 16, 5x5 valid on 14x14, 10x10 outputs (13 float vectors
    # an image: groups of 3 images)
    "lenet_conv2_10px": ((5, 6, 14, 14), (16, 6, 5, 5), (1, 1), (0, 0)),
    # LeNet's conv1: 28-pixel rows, 5x5 pad 2 (98 float vectors an image, rows in the padding)
    "lenet_conv1_28px": ((2, 1, 28, 28), (6, 1, 5, 5), (1, 1), (2, 2)),
    # rows narrower than a vector (5 pixels): one vector holds parts of 2-3 rows; 7 images
    "rows_of_5": ((7, 3, 5, 5), (5, 3, 3, 3), (1, 1), (1, 1)),
    # 6x6 outputs (5 float vectors): tiles span two images; padding rows skipped per tile union
    "6x6_spanning": ((4, 2, 6, 6), (9, 2, 3, 3), (1, 1), (1, 1)),
    # a single output column, 3 rows; and a 1x1 output
    "one_column": ((3, 2, 5, 3), (3, 2, 3, 3), (1, 1), (1, 0)),
    "one_pixel": ((5, 3, 3, 3), (4, 3, 3, 3), (1, 1), (0, 0)),
    # non-square 5x3 kernel, padding past the kernel's reach on the rows (whole output rows and
    # the first / last vectors read only padding), 13-pixel rows
    "5x3_pad_3_1": ((3, 4, 6, 11), (6, 4, 5, 3), (1, 1), (3, 1)),
}


@pytest.mark.parametrize("name", sorted(FLAT))
def test_flat_layout_equals_reference(name, dtype, monkeypatch):
    kinds = check_blocked_equals_reference(FLAT[name], dtype, monkeypatch)
    assert kinds.count("conv_blocked") == expected_blocked_kernels(FLAT[name])


@pytest.mark.parametrize("form", ["bias_relu", "bias_residual_relu"])
def test_flat_layout_stores_through_the_epilogue(form, dtype):
    """The epilogue's bias and residual are indexed by the flat store's element index: 10x10
    outputs (flat), a residual input of the conv output's shape, a NaN and an infinity in it."""
    rng = np.random.default_rng(2)
    x, r = G.tensor("x", (4, 6, 12, 12), dtype), G.tensor("r", (4, 7, 10, 10), dtype)
    w = G.shared(rng.standard_normal((7, 6, 3, 3)).astype(dtype), name="w")
    b = G.shared(rng.standard_normal(7).astype(dtype), name="b")
    y = G.conv2d(x, w) + b.dimshuffle("x", 0, "x", "x")
    out = G.relu(y + r) if form == "bias_residual_relu" else G.relu(y)
    ins = [x, r] if form == "bias_residual_relu" else [x]
    f = G.function(ins, out)
    kernels = [k for k in f.program.program.kernels if k.kind.startswith("conv")]
    assert [k.kind for k in kernels] == ["conv_blocked"] and kernels[0].params["epilogue"]
    xv = rng.standard_normal((4, 6, 12, 12)).astype(dtype)
    rv = rng.standard_normal((4, 7, 10, 10)).astype(dtype)
    rv[1, 3, 9, 9], rv[3, 6, 0, 7] = np.nan, np.inf
    args = [xv, rv][:len(ins)]
    want = G.function(ins, out, backend="py", opt_level="O0")(*args)
    tol = 2e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(f(*args), want, rtol=tol, atol=tol * np.nanmax(np.abs(want[np.isfinite(want)])))


def test_flat_layout_with_symbolic_batch(monkeypatch):
    """One compiled function over batches that leave 1, 2 or 3 images in the last group."""
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "blocked")
    x = G.tensor("x", (G.dim("n"), 3, 12, 12), "float64")
    w = G.tensor("w", (5, 3, 3, 3), "float64")
    y = G.conv2d(x, w)
    outs = [y] + G.grad((y * y).sum(), [x, w])
    f = G.function([x, w], outs)
    ref = G.function([x, w], outs, backend="py", opt_level="O0")
    rng = np.random.RandomState(7)
    wv = rng.standard_normal((5, 3, 3, 3))
    for n in (1, 2, 3, 4, 5):
        xv = rng.standard_normal((n, 3, 12, 12))
        for got, want in zip(f(xv, wv), ref(xv, wv)):
            np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11)


def _forward_slot(program):
    (conv,) = [k for k in program.kernels if k.kind == "conv_blocked"]
    return conv.params["SLOT_ELEMS"]


@pytest.mark.parametrize("dtype_, vl", [("float32", 16), ("float64", 8)])
def test_the_forward_slot_has_room_for_three_flat_images(dtype_, vl, monkeypatch):
    """Where the flat layout may run (stride 1, known sizes, rows that are not a multiple of the
    widest vector) the slot holds 3 flat images or 3 row images, the larger; elsewhere the row
    layout's, unchanged (strided, symbolic sizes)."""
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "blocked")
    x, w = G.tensor("x", (2, 6, 14, 14), dtype_), G.tensor("w", (16, 6, 5, 5), dtype_)
    slot = _forward_slot(program_of([x, w], [G.conv2d(x, w)]))
    flat, row = _flat_image(6, 14, 0, 5, 10, vl), _slot_image(6, 14, 14, 1, 0, 0, vl)
    assert flat > row and slot == 3 * flat == 3 * 6 * 5 * (14 * 10 + vl)
    # strided: the row layout's
    y = G.conv2d(x, w, stride=(2, 2))
    assert _forward_slot(program_of([x, w], [y])) == 3 * _slot_image(6, 14, 14, 2, 0, 0, vl)
    # 16-pixel rows fill every vector width: the row layout's
    x16 = G.tensor("x", (2, 6, 20, 20), dtype_)
    assert _forward_slot(program_of([x16, w], [G.conv2d(x16, w)])) == 3 * _slot_image(6, 20, 20, 1, 0, 0, vl)
    # symbolic image sizes: the row layout's expression
    xs = G.tensor4("x", dtype=dtype_)
    slot = _forward_slot(program_of([xs, w], [G.conv2d(xs, w)]))
    assert not isinstance(slot, int) and slot.free_symbols


def test_flat_layout_matches_finite_differences(monkeypatch):
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "blocked")
    rng = np.random.RandomState(8)
    xv, wv = rng.standard_normal((4, 2, 6, 5)), rng.standard_normal((3, 2, 3, 3))
    G.testing.verify_grad(lambda x, w: G.conv2d(x, w, padding=(1, 1)), [xv, wv], backend="c")


def test_flat_may_pay_where_rows_waste_an_eighth_of_their_lanes():
    """The lowering's mirror of the C's rule, for 64-, 32- and 16-byte vectors of float32 (16, 8,
    4 lanes): 10 of 16 lanes, 28 of 32, 5 of 8 pay; rows that fill every width, or waste less
    than an eighth at each (15 of 16, 100 of 112), keep the row layout's slot."""
    assert all(flat_may_pay(w, 16) for w in (1, 5, 6, 10, 13, 14, 28))
    assert not any(flat_may_pay(w, 16) for w in (15, 16, 32, 64, 100))
    assert flat_may_pay(24, 16) and not flat_may_pay(24, 8)  # 24 of 32 at 16 lanes
