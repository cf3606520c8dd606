"""VGG's conv kernels (lower_cnn.py, templates/c/conv_winograd*.j2): the Winograd F(4x4, 3x3)
forward and input gradient (GRAPHC_WINOGRAD_TILE=4) and the F(3x3, 2x2) weight gradient give the py reference's result up
to float rounding, in both dtypes, on sizes that end mid-tile (output sizes not a multiple of the
tile: clipped tiles; images narrower than a tile; every padding), in ragged chunks of a symbolic
batch and on two threads; their gradients match finite differences; and the lowering picks them
where they were measured to pay."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import graphc as G

from program_cases import program_of

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> (padding, x shape, w shape)
GRAD_WEIGHTS = {
    "pad1_odd_out": ((1, 1), (3, 5, 7, 9), (4, 5, 3, 3)),
    "pad0_even_out": ((0, 0), (2, 3, 6, 8), (2, 3, 3, 3)),
    "pad2_wider_out": ((2, 2), (2, 2, 5, 6), (3, 2, 3, 3)),
    "mixed_pad_one_row_out": ((0, 2), (2, 3, 3, 2), (5, 3, 3, 3)),
    "one_pixel_out": ((0, 0), (1, 2, 3, 3), (2, 2, 3, 3)),
}


def _grad_weights(x, w, padding):
    y = G.conv2d(x, w, padding=padding)
    r = np.random.RandomState(3).uniform(0.5, 1.5, [int(d) for d in y.type.shape]).astype(y.dtype)
    return G.grad((y * r).sum(), w)


def _conv_kinds(f):
    return [k.kind for k in f.program.program.kernels if k.kind.startswith("conv")]


@pytest.mark.parametrize("name", sorted(GRAD_WEIGHTS))
def test_winograd_weight_gradient_equals_reference(name, dtype, monkeypatch):
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "winograd")
    padding, xs, ws = GRAD_WEIGHTS[name]
    rng = np.random.RandomState(0)
    xv, wv = rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)
    x, w = G.tensor("x", xs, dtype), G.tensor("w", ws, dtype)
    gw = _grad_weights(x, w, padding)
    f = G.function([x, w], gw)
    assert _conv_kinds(f) == ["conv_winograd_grad_weights"]
    want = G.function([x, w], gw, backend="py", opt_level="O0")(xv, wv)
    tol = 5e-5 if dtype == "float32" else 1e-11
    np.testing.assert_allclose(f(xv, wv), want, rtol=tol, atol=tol * np.abs(want).max())


def test_winograd_weight_gradient_in_ragged_chunks_of_a_symbolic_batch(monkeypatch):
    """A budget of about two images' tiles: chunks of two that add into the transformed sum, a
    ragged last chunk, sizes bound per call; a batch of one is the first chunk alone."""
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "winograd")
    monkeypatch.setenv("GRAPHC_CONV_WORKSPACE", str(2 * 16 * (3 + 4) * 4 * 5 * 8))
    x = G.tensor4("x", dtype="float64")
    w = G.tensor("w", (4, 3, 3, 3), "float64")
    y = G.conv2d(x, w, padding=(1, 1))
    gw = G.grad((y * y).sum(), w)
    f = G.function([x, w], gw)
    assert "conv_winograd_grad_weights" in _conv_kinds(f)
    ref = G.function([x, w], gw, backend="py", opt_level="O0")
    rng = np.random.RandomState(1)
    wv = rng.standard_normal((4, 3, 3, 3))
    for n in (1, 2, 5):
        xv = rng.standard_normal((n, 3, 7, 9))
        np.testing.assert_allclose(f(xv, wv), ref(xv, wv), rtol=1e-11, atol=1e-11)


def test_winograd_weight_gradient_of_an_empty_batch_is_zero(monkeypatch):
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "winograd")
    x = G.tensor4("x", dtype="float64")
    w = G.tensor("w", (2, 3, 3, 3), "float64")
    f = G.function([x, w], G.grad(G.conv2d(x, w, padding=(1, 1)).sum(), w))
    assert "conv_winograd_grad_weights" in _conv_kinds(f)
    got = f(np.zeros((0, 3, 5, 5)), np.ones((2, 3, 3, 3)))
    np.testing.assert_array_equal(got, np.zeros((2, 3, 3, 3)))


def test_winograd_weight_gradient_matches_finite_differences(monkeypatch):
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "winograd")
    rng = np.random.RandomState(2)
    xv, wv = rng.standard_normal((2, 3, 5, 4)), rng.standard_normal((2, 3, 3, 3))
    G.testing.verify_grad(lambda w: G.conv2d(G.constant(xv), w, padding=(2, 1)), [wv], backend="c")


def test_winograd_weight_gradient_on_two_threads(tmp_path):
    """Two OpenMP threads: the transforms split over images and channels, the 16 products over
    the threads; repeated calls give the same bits. (A fresh process: the thread count is fixed
    at its start.)"""
    script = textwrap.dedent("""
        import numpy as np, graphc as G
        for n in (1, 3):
            x = G.tensor("x", (n, 64, 9, 7), "float32"); w = G.tensor("w", (65, 64, 3, 3), "float32")
            gw = G.grad((G.conv2d(x, w, padding=(1, 1)) ** 2).sum(), w)
            f = G.function([x, w], gw)
            assert "conv_winograd_grad_weights" in [k.kind for k in f.program.program.kernels]
            ref = G.function([x, w], gw, backend="py", opt_level="O0")
            rng = np.random.RandomState(n)
            xv = rng.standard_normal((n, 64, 9, 7)).astype("float32")
            wv = (0.1 * rng.standard_normal((65, 64, 3, 3))).astype("float32")
            got, want = f(xv, wv), ref(xv, wv)
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
            assert np.array_equal(got, f(xv, wv))
        print("ok")
    """)
    env = dict(os.environ, OMP_NUM_THREADS="2",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("GRAPHC_CONV_ALGO", None)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ok" in proc.stdout


# name -> (padding, x shape, w shape): outputs 4k, 4k + 1..3 wide and high (whole and clipped 4x4
# tiles), interior tiles (a 13x14 image), images smaller than a 6x6 tile, paddings 0..2
WINOGRAD4 = {
    "pad1_13x14": ((1, 1), (2, 3, 13, 14), (4, 3, 3, 3)),
    "pad0_odd": ((0, 0), (2, 5, 9, 7), (3, 5, 3, 3)),
    "pad2_small": ((2, 2), (1, 2, 3, 5), (3, 2, 3, 3)),
    "mixed_pad_one_row_out": ((0, 2), (2, 3, 3, 6), (2, 3, 3, 3)),
    "pad1_8x8": ((1, 1), (2, 4, 8, 8), (5, 4, 3, 3)),
}


def _conv_and_grads(x, w, padding):
    y = G.conv2d(x, w, padding=padding)
    r = np.random.RandomState(3).uniform(0.5, 1.5, [int(d) for d in y.type.shape]).astype(y.dtype)
    return [y] + G.grad((y * r).sum(), [x, w])


@pytest.mark.parametrize("name", sorted(WINOGRAD4))
def test_winograd_4x4_equals_reference(name, dtype, monkeypatch):
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "winograd")
    monkeypatch.setenv("GRAPHC_WINOGRAD_TILE", "4")
    padding, xs, ws = WINOGRAD4[name]
    rng = np.random.RandomState(0)
    xv, wv = rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)
    x, w = G.tensor("x", xs, dtype), G.tensor("w", ws, dtype)
    outs = _conv_and_grads(x, w, padding)
    f = G.function([x, w], outs)
    assert sorted(_conv_kinds(f)) == ["conv_winograd4", "conv_winograd4", "conv_winograd_grad_weights"]
    ref = G.function([x, w], outs, backend="py", opt_level="O0")(xv, wv)
    # (F(4x4, 3x3)'s transforms multiply by up to 8 and 1/576: a few more ulps than F(2x2))
    tol = 2e-5 if dtype == "float32" else 1e-11
    for got, want in zip(f(xv, wv), ref):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())


def test_winograd_4x4_gradients_match_finite_differences(monkeypatch):
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "winograd")
    monkeypatch.setenv("GRAPHC_WINOGRAD_TILE", "4")
    rng = np.random.RandomState(2)
    xv, wv = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((2, 3, 3, 3))
    G.testing.verify_grad(lambda x, w: G.conv2d(x, w, padding=(1, 2)), [xv, wv], backend="c")


def test_winograd_tile_setting_is_checked(monkeypatch):
    monkeypatch.setenv("GRAPHC_WINOGRAD_TILE", "3")
    x, w = G.tensor("x", (1, 64, 4, 4)), G.tensor("w", (128, 64, 3, 3))
    with pytest.raises(G.GraphcError, match="GRAPHC_WINOGRAD_TILE must be 2 or 4"):
        G.function([x, w], G.conv2d(x, w, padding=(1, 1)))


def _lowered_kinds(xs, ws, **kw):
    x, w = G.tensor("x", xs), G.tensor("w", ws)
    y = G.conv2d(x, w, **kw)
    program = program_of([x, w], [y] + G.grad(y.sum(), [x, w]))
    return [k.kind for k in program.kernels if k.kind.startswith("conv")]


@pytest.mark.parametrize("xs, ws, kw, want", [
    # 64 -> 128 and 256 -> 256: the Winograd weight gradient (bench/README.md, "VGG's step")
    ((2, 64, 8, 8), (128, 64, 3, 3), {"padding": 1}, "conv_winograd_grad_weights"),
    # 64 -> 64: blocked, as its forward (capabilities.winograd_pays)
    ((2, 64, 8, 8), (64, 64, 3, 3), {"padding": 1}, "conv_blocked_grad_weights"),
    ((2, 256, 4, 4), (256, 256, 3, 3), {"padding": 1}, "conv_winograd_grad_weights"),
    # 32 channels: the blocked direct weight gradient (1.4x faster there)
    ((2, 32, 8, 8), (32, 32, 3, 3), {"padding": 1}, "conv_blocked_grad_weights"),
    # stride 2 or 5x5: no Winograd
    ((2, 64, 9, 9), (64, 64, 3, 3), {"padding": 1, "stride": 2}, "conv_blocked_grad_weights"),
    ((2, 128, 9, 9), (128, 128, 5, 5), {"padding": 2}, "conv_chunked_grad_weights"),
])
def test_weight_gradient_choice_by_the_measured_rule(xs, ws, kw, want, monkeypatch):
    monkeypatch.delenv("GRAPHC_CONV_ALGO", raising=False)
    kinds = _lowered_kinds(xs, ws, **kw)
    assert want in kinds and sum(k.endswith("grad_weights") for k in kinds) == 1


def test_winograd_tile_by_default_and_by_setting(monkeypatch):
    """F(2x2, 3x3) by default (F(4x4) was no faster in VGG's whole step), F(4x4) when asked."""
    monkeypatch.delenv("GRAPHC_CONV_ALGO", raising=False)
    monkeypatch.delenv("GRAPHC_WINOGRAD_TILE", raising=False)
    kinds = _lowered_kinds((2, 64, 8, 8), (128, 64, 3, 3), padding=1)
    assert sorted(kinds) == ["conv_winograd", "conv_winograd", "conv_winograd_grad_weights"]
    monkeypatch.setenv("GRAPHC_WINOGRAD_TILE", "4")
    kinds = _lowered_kinds((2, 64, 8, 8), (128, 64, 3, 3), padding=1)
    assert sorted(kinds) == ["conv_winograd4", "conv_winograd4", "conv_winograd_grad_weights"]


def test_planner_orders_a_degree_one_quotient_payer_beside_an_atom_payer():
    """ResNet-20's step with the Winograd weight gradient planned a slot whose size proof had a
    degree-1 quotient payer and an atom payer for one debt: their sort keys compared a list with
    a tuple (TypeError in memplan_sizes._payers)."""
    import sympy

    from graphc.codegen.memplan_sizes import provably_ge

    d2, d3 = sympy.symbols("_d2 _d3", integer=True, positive=True)
    half = sympy.Rational(1, 2)
    h, w = sympy.floor(d2 / 2 - half), sympy.floor(sympy.floor(d3 / 2 - half) / 2)
    hh = sympy.floor(h / 2)
    size = (64 * sympy.ceiling(67 * hh * w / 8 + 67 * hh / 8 + 259 * w / 8 + sympy.Rational(381011, 8))
            + 512 * h * w + 17792 * h)
    assert provably_ge(size, 262144)
