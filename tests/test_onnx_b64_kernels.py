"""Kernels an imported model's inference runs outside the conv loops (issue 15, batch 64 vs
onnxruntime): the 2x2 max pool on rows its windows tile (_pool_lib.j2's pair-stream path, which
LeNet's 5- and 14-wide rows take) gives pool_max's values bit for bit (ties, signed zeros, NaN
payloads, infinities) at every row width, odd heights, rows wider than its scratch, and on
threads; the transposed weight pack of a dense layer (_gemm_packed.j2's register tiles) gives
the same panels as the untransposed one, so both products agree bit for bit at any size."""
import numpy as np
import pytest

import graphc as G
from graphc.ir.ops.blas import Matmul


def _kinds(f):
    return [k.kind for k in f.program.program.kernels]


def _hostile(rng, shape, dtype):
    """Few distinct values (ties everywhere), both zeros, NaNs with two payloads, infinities."""
    x = rng.integers(-2, 3, shape).astype(dtype)
    x[rng.random(shape) < 0.2] = -0.0
    x[rng.random(shape) < 0.03] = np.nan
    x[rng.random(shape) < 0.02] = -np.nan  # (another bit pattern: the first NaN must win)
    x[rng.random(shape) < 0.03] = -np.inf
    x[rng.random(shape) < 0.02] = np.inf
    return x


def _pool_functions(dtype, ceil=False):
    x = G.tensor4("x", dtype=dtype)
    infer = G.function([x], G.max_pool2d(x, (2, 2), ceil_mode=ceil))
    assert _kinds(infer) == ["pool_max_value"]
    y, arg = G.max_pool2d(x, (2, 2), return_argmax=True, ceil_mode=ceil)
    with_argmax = G.function([x], [y, arg])  # pool_max: the tap-by-tap loop
    assert "pool_max" in _kinds(with_argmax)
    reference = G.function([x], G.max_pool2d(x, (2, 2), ceil_mode=ceil), backend="py")
    return infer, with_argmax, reference


# (H, W): every output width from 1 to 17 (no vector, half vectors, whole ones with an overlapping
# last), LeNet's 10x10 and 28x28, odd heights (one segment per plane: the last row skipped),
# rows wider than the 512-element scratch (chunked), a single row pair
SHAPES = [(2 * wo, 2 * wo) for wo in range(1, 18)] + [
    (10, 10), (28, 28), (7, 10), (5, 16), (11, 34), (4, 600), (3, 1030), (2, 8)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_tiled_2x2_max_pool_gives_pool_maxs_bits(dtype):
    infer, with_argmax, reference = _pool_functions(dtype)
    rng = np.random.default_rng(7)
    for h, w in SHAPES:
        for n, c in [(3, 5), (1, 1)]:
            xv = _hostile(rng, (n, c, h, w), dtype)
            got = infer(xv)
            want = with_argmax(xv)[0]
            assert got.shape == want.shape == (n, c, h // 2, w // 2)
            assert got.tobytes() == want.tobytes(), (h, w, n, c)  # signs of zero, NaN payloads too
            np.testing.assert_array_equal(got, reference(xv))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_2x2_max_pool_off_the_tiling_keeps_the_general_loop(dtype):
    """Odd widths (the last column dropped), ceil mode on odd sizes (clipped windows): the same
    values as pool_max through the general path."""
    rng = np.random.default_rng(8)
    for ceil in (False, True):
        infer, with_argmax, reference = _pool_functions(dtype, ceil)
        for h, w in [(10, 11), (9, 9), (11, 10), (3, 5)]:
            xv = _hostile(rng, (2, 3, h, w), dtype)
            got = infer(xv)
            assert got.tobytes() == with_argmax(xv)[0].tobytes(), (h, w, ceil)
            np.testing.assert_array_equal(got, reference(xv))


def test_tiled_2x2_max_pool_on_threads_and_a_symbolic_batch():
    """Past the OpenMP threshold (blocks of rows across threads), one function at three batches,
    an odd height among them."""
    infer, with_argmax, reference = _pool_functions("float32")
    rng = np.random.default_rng(9)
    for shape in [(64, 16, 10, 10), (64, 6, 28, 28), (2, 16, 10, 10), (40, 16, 29, 28)]:
        xv = rng.standard_normal(shape).astype("float32")
        got = infer(xv)
        assert got.tobytes() == with_argmax(xv)[0].tobytes(), shape
        np.testing.assert_array_equal(got, reference(xv))


# (K, N): whole 8x8 tiles only, K and N both off the tile (rows and columns left over), a last
# panel narrower than one tile, N past two panels
DENSE = [(256, 64), (263, 70), (300, 129), (257, 250), (260, 68)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_transposed_weights_pack_as_the_untransposed_do(dtype):
    """Gemm's transB (B stored N x K, packed through register tiles) and the same weights stored
    K x N (packed row by row) make the same panels: the two products are equal bit for bit."""
    rng = np.random.default_rng(11)
    x = G.matrix("x", dtype=dtype)
    outs, tails = [], []
    for k, n in DENSE:
        wv = rng.standard_normal((n, k)).astype(dtype)
        outs.append(Matmul(False, True)(x[:, :k], G.shared(wv)))
        outs.append(Matmul(False, False)(x[:, :k], G.shared(np.ascontiguousarray(wv.T))))
        tails.append(wv)
    f = G.function([x], outs)
    assert _kinds(f).count("gemm_dense_packed") == 2 * len(DENSE)
    for rows in (32, 67):
        xv = rng.standard_normal((rows, 300)).astype(dtype)
        got = f(xv)
        for j, ((k, n), wv) in enumerate(zip(DENSE, tails)):
            trans, plain = got[2 * j], got[2 * j + 1]
            assert trans.tobytes() == plain.tobytes(), (k, n, rows)
            want = xv[:, :k].astype("float64") @ wv.T.astype("float64")
            tol = 1e-4 if dtype == "float32" else 1e-12
            np.testing.assert_allclose(trans, want, rtol=tol, atol=tol * np.abs(want).max())
