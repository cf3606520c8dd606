"""Convolutional-net ops: conv2d, max/avg pooling, LRN, batch norm, random numbers and dropout,
channel concatenation. Compiled C against the numpy reference (outputs and gradients), symbolic
against numeric gradients, shape errors, and the RNG's bit-exactness."""
import numpy as np
import pytest

import graphc as G
from graphc.errors import GraphcShapeError, GraphcTypeError
from graphc.ir.ops import random as R
from graphc.testing import verify_grad

from op_cases import any_, distinct, pos


def conv(**kw):
    return lambda x, w: G.conv2d(x, w, **kw)


# name -> (builder, input makers, differentiable inputs are checked numerically)
CASES = {
    "conv_basic": (conv(), [any_(2, 3, 6, 7), any_(4, 3, 3, 3)]),
    "conv_stride_pad": (conv(stride=(2, 1), padding=(1, 2)), [any_(2, 3, 7, 6), any_(4, 3, 3, 2)]),
    "conv_dilation": (conv(dilation=2, padding=1), [any_(2, 2, 7, 8), any_(3, 2, 3, 3)]),
    "conv_groups": (conv(groups=2, stride=2), [any_(2, 4, 7, 6), any_(6, 2, 3, 2)]),
    "conv_depthwise": (conv(groups=3, padding=1), [any_(2, 3, 5, 5), any_(3, 1, 3, 3)]),
    "conv_1x1": (conv(), [any_(2, 3, 4, 5), any_(5, 3, 1, 1)]),
    "conv_batch1": (conv(padding=1), [any_(1, 2, 5, 4), any_(3, 2, 3, 3)]),
    "max_pool": (lambda x: G.max_pool2d(x, 2), [distinct(2, 3, 6, 6)]),
    "max_pool_ceil": (lambda x: G.max_pool2d(x, 3, 2), [distinct(2, 2, 6, 8)]),
    "max_pool_pad": (lambda x: G.max_pool2d(x, 3, 2, 1), [distinct(2, 2, 7, 7)]),
    "max_pool_overlap": (lambda x: G.max_pool2d(x, (3, 2), (1, 2)), [distinct(1, 2, 5, 6)]),
    "max_pool_floor": (lambda x: G.max_pool2d(x, 3, 2, ceil_mode=False), [distinct(1, 2, 6, 8)]),
    "avg_pool": (lambda x: G.avg_pool2d(x, 2), [any_(2, 3, 6, 6)]),
    "avg_pool_ceil_pad": (lambda x: G.avg_pool2d(x, 3, 2, 1), [any_(2, 2, 6, 7)]),
    "avg_pool_rect": (lambda x: G.avg_pool2d(x, (2, 3), (3, 1), (1, 0)), [any_(1, 2, 7, 5)]),
    "lrn5": (lambda x: G.lrn(x, 5, alpha=0.5, beta=0.75, k=2.0), [any_(2, 7, 3, 4)]),
    "lrn3_3d": (lambda x: G.lrn(x, 3, alpha=1.0, beta=0.5, k=1.0), [any_(3, 4, 5)]),
    "lrn_alexnet": (lambda x: G.lrn(x, 5, alpha=1e-4, beta=0.75), [any_(2, 6, 3, 3)]),
    "lrn_any_beta": (lambda x: G.lrn(x, 3, alpha=0.3, beta=0.6, k=1.5), [any_(2, 5, 2, 3)]),
    "bn_train4d": (lambda x, g, b: G.batch_norm_train(x, g, b)[0] * x,
                   [any_(4, 3, 3, 5), pos(3), any_(3)]),
    "bn_train2d": (lambda x, g, b: G.batch_norm_train(x, g, b, eps=1e-3)[0] ** 2,
                   [any_(6, 5), pos(5), any_(5)]),
    "bn_stats": (lambda x: G.concatenate(G.batch_norm_train(x, np.ones(3), np.zeros(3))[1:]) ** 2,
                 [any_(4, 3, 2, 2)]),
    "bn_inference": (lambda x, g, b, m, v: G.batch_norm_inference(x, g, b, m, v),
                     [any_(2, 3, 2, 2), pos(3), any_(3), any_(3), pos(3)]),
    # batch norm with its relu (and a residual add) folded in: passes/fuse_batch_norm.py
    "bn_relu": (lambda x, g, b: G.relu(G.batch_norm_train(x, g, b)[0]), [any_(3, 3, 2, 3), pos(3), any_(3)]),
    "bn_add_relu": (lambda x, g, b, r: G.relu(G.batch_norm_train(x, g, b)[0] + r),
                    [any_(3, 3, 2, 3), pos(3), any_(3), any_(3, 3, 2, 3)]),
    "concat_channels": (lambda a, b: G.concatenate([a, b], axis=1) * 1.5,
                        [any_(2, 3, 4, 5), any_(2, 2, 4, 5)]),
    "conv_pool_lrn_chain": (lambda x, w: G.lrn(G.max_pool2d(G.relu(G.conv2d(x, w, padding=1)), 2), 3),
                            [distinct(2, 2, 6, 6), any_(4, 2, 3, 3)]),
}


def _inputs(makers, dtype, seed=0):
    rng = np.random.RandomState(seed)
    return [m(rng, dtype) for m in makers]


def _with_grads(build, xs):
    """The output and d sum(out * R) / d each input: the gradient kernels get compiled too."""
    out = build(*xs)
    r = np.random.RandomState(3).uniform(0.5, 1.5, out.type.shape).astype(out.dtype)
    return [out] + G.grad((out * r).sum(), xs)


@pytest.mark.parametrize("name", sorted(CASES))
def test_compiled_matches_reference(name, dtype):
    build, makers = CASES[name]
    values = _inputs(makers, dtype)
    xs = [G.tensor(f"x{k}", v.shape, v.dtype.name) for k, v in enumerate(values)]
    outs = _with_grads(build, xs)
    ref = G.function(xs, outs, backend="py", opt_level="O0")(*values)
    got = G.function(xs, outs, backend="c")(*values)
    tol = 5e-5 if dtype == "float32" else 1e-11
    for g, r in zip(got, ref):
        assert g.dtype == r.dtype and g.shape == r.shape
        np.testing.assert_allclose(g, r, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradient_matches_finite_differences(name, dtype):
    build, makers = CASES[name]
    values = _inputs(makers, dtype, seed=1)
    tol = dict(rtol=2e-2, atol=2e-3) if dtype == "float32" else dict(rtol=1e-5, atol=1e-7)
    verify_grad(build, values, backend="c", **tol)


@pytest.mark.parametrize("algo", ["gemm", "direct"])
@pytest.mark.parametrize("name", ["conv_stride_pad", "conv_groups", "conv_dilation", "conv_batch1"])
def test_conv_algorithms(name, algo, monkeypatch):
    monkeypatch.setenv("GRAPHC_CONV_ALGO", algo)
    build, makers = CASES[name]
    values = _inputs(makers, "float64")
    xs = [G.tensor(f"x{k}", v.shape, v.dtype.name) for k, v in enumerate(values)]
    outs = _with_grads(build, xs)
    f = G.function(xs, outs, backend="c")
    kinds = {k.kind for k in f.program.program.kernels}
    assert ("conv_direct" in kinds) == (algo == "direct")
    for g, r in zip(f(*values), G.function(xs, outs, backend="py")(*values)):
        np.testing.assert_allclose(g, r, rtol=1e-11, atol=1e-11)


def test_conv_second_derivative():
    rng = np.random.RandomState(0)
    xv, wv = rng.randn(2, 2, 5, 5), rng.randn(3, 2, 3, 3)

    def gradnorm(x, w):  # d/dw of a function of dconv/dx: exercises the grads of the grad ops
        y = G.conv2d(x, w, stride=2, padding=1)
        gx = G.grad((y * y).sum(), x)
        return gx * gx
    verify_grad(gradnorm, [xv, wv], backend="c")


def test_conv_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.RandomState(0)
    xv, wv = rng.randn(2, 6, 9, 8), rng.randn(4, 3, 3, 2)
    kw = dict(stride=(2, 1), padding=(1, 1), dilation=(1, 2), groups=2)
    x, w = G.tensor("x", xv.shape, "float64"), G.tensor("w", wv.shape, "float64")
    y = G.conv2d(x, w, **kw)
    got = G.function([x, w], [y] + G.grad((y * y).sum(), [x, w]))(xv, wv)
    tx, tw = torch.tensor(xv, requires_grad=True), torch.tensor(wv, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, **kw)
    (ty * ty).sum().backward()
    for g, t in zip(got, [ty.detach(), tx.grad, tw.grad]):
        np.testing.assert_allclose(g, t.numpy(), rtol=1e-10, atol=1e-10)


def test_pool_and_lrn_match_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    xv = np.random.RandomState(0).randn(2, 5, 7, 9)
    x = G.tensor("x", xv.shape, "float64")
    ours = G.function([x], [G.max_pool2d(x, 3, 2, 1), G.avg_pool2d(x, 3, 2, 1),
                            G.max_pool2d(x, 2, 3, ceil_mode=False), G.lrn(x, 3, 0.2, 0.75, 2.0)])(xv)
    t = torch.tensor(xv)
    theirs = [F.max_pool2d(t, 3, 2, 1, ceil_mode=True), F.avg_pool2d(t, 3, 2, 1, ceil_mode=True),
              F.max_pool2d(t, 2, 3), F.local_response_norm(t, 3, 0.2, 0.75, 2.0)]
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-12, atol=1e-12)


def test_symbolic_batch():
    n = G.dim("n")
    x = G.tensor("x", (n, 2, 9, 9), "float64")
    w = G.shared(np.random.RandomState(0).randn(3, 2, 3, 3), name="w")
    y = G.avg_pool2d(G.lrn(G.max_pool2d(G.conv2d(x, w, padding=1, stride=2), 2, 2, 1), 3), 2)
    assert y.type.shape[1:] == (3, 2, 2)
    outs = [y, G.grad((y * y).sum(), w)]
    fc, fp = G.function([x], outs), G.function([x], outs, backend="py")
    for batch in (1, 5):
        xv = np.random.RandomState(batch).randn(batch, 2, 9, 9)
        for a, b in zip(fc(xv), fp(xv)):
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("op", ["conv", "max_pool"])
def test_symbolic_height(op):
    h = G.dim("h")
    x = G.tensor("x", (2, 2, h, 7), "float64")
    w = G.shared(np.random.RandomState(0).randn(3, 2, 3, 2), name="w")
    y = G.conv2d(x, w, padding=1, stride=2) if op == "conv" else G.max_pool2d(x, 2, 2, 1)
    outs = [y, G.grad((y * y).sum(), x)]
    fc, fp = G.function([x], outs), G.function([x], outs, backend="py")
    for height in (3, 8, 9):
        xv = np.random.RandomState(height).randn(2, 2, height, 7)
        got, want = fc(xv), fp(xv)
        assert got[0].shape == want[0].shape
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11)


def test_output_shapes_follow_caffe():
    x = G.tensor("x", (1, 1, 6, 6))
    assert G.max_pool2d(x, 3, 2).type.shape[2:] == (3, 3)  # ceil((6-3)/2)+1 = 3 (floor: 2)
    assert G.max_pool2d(x, 3, 2, ceil_mode=False).type.shape[2:] == (2, 2)
    assert G.avg_pool2d(x, 2, 2, 1).type.shape[2:] == (4, 4)  # ceil(6/2)+1 = 4, starts 0,2,4,6-1
    # the last window would start in the padding: clipped (Caffe): ceil((5+2-2)/2)+1 = 4 -> 3
    assert G.max_pool2d(G.tensor("y", (1, 1, 5, 5)), 2, 2, 1).type.shape[2:] == (3, 3)
    assert G.conv2d(x, G.tensor("w", (4, 1, 3, 3)), stride=2, padding=1).type.shape == (1, 4, 3, 3)


def test_max_pool_argmax_and_ties():
    xv = np.array([[[[1, 1, 0], [1, 1, 0], [2, 0, 2]]]], dtype="float32")
    x = G.tensor("x", xv.shape, "float32")
    y, arg = G.max_pool2d(x, 2, 1, return_argmax=True)
    g = G.grad(y.sum(), x)
    yv, av, gv = G.function([x], [y, arg, g])(xv)
    np.testing.assert_array_equal(av[0, 0], [[0, 1], [6, 8]])  # first maximum in window order
    np.testing.assert_array_equal(gv[0, 0], [[1, 1, 0], [0, 0, 0], [1, 0, 1]])


def test_shape_errors():
    x = G.tensor("x", (2, 3, 5, 5))
    with pytest.raises(GraphcShapeError, match=r"larger than the padded input"):
        G.conv2d(x, G.tensor("w", (4, 3, 7, 3)))
    with pytest.raises(GraphcShapeError, match=r"extent 7 with dilation 3"):
        G.conv2d(x, G.tensor("w", (4, 3, 3, 3)), dilation=3)
    with pytest.raises(GraphcShapeError, match=r"has 3 channels but filters \(4, 2, 3, 3\)"):
        G.conv2d(x, G.tensor("w", (4, 2, 3, 3)))
    with pytest.raises(GraphcShapeError, match=r"groups=2 does not divide the 3 input channels"):
        G.conv2d(x, G.tensor("w", (4, 1, 3, 3)), groups=2)
    with pytest.raises(GraphcShapeError, match=r"groups=3 does not divide the 4 output channels"):
        G.conv2d(x, G.tensor("w", (4, 1, 3, 3)), groups=3)
    with pytest.raises(GraphcShapeError, match=r"4-D"):
        G.conv2d(G.tensor("v", (3, 5, 5)), G.tensor("w", (4, 3, 3, 3)))
    assert G.conv2d(x, G.tensor("w", (4, 3, 3, 3), "float64")).dtype == "float64"  # as dot
    with pytest.raises(GraphcTypeError, match=r"stride"):
        G.conv2d(x, G.tensor("w", (4, 3, 3, 3)), stride=0)
    with pytest.raises(GraphcShapeError, match=r"window height 6 is larger than the padded input"):
        G.max_pool2d(x, (6, 2))
    with pytest.raises(GraphcShapeError, match=r"padding \(2, 2\) must be smaller than the window"):
        G.avg_pool2d(x, 2, padding=2)
    with pytest.raises(GraphcTypeError, match=r"odd"):
        G.lrn(x, 4)
    with pytest.raises(GraphcShapeError, match=r"gamma has 4 entries but the input"):
        G.batch_norm_train(x, np.ones(4, "float32"), np.zeros(3, "float32"))
    with pytest.raises(GraphcShapeError, match=r"2-D \(N, C\) or 4-D"):
        G.batch_norm_train(G.tensor("v", (2, 3, 4)), np.ones(3), np.zeros(3))


def test_conv_symbolic_channel_mismatch_is_caught_at_call():
    c = G.dim("c")
    x = G.tensor("x", (2, c, 5, 5), "float64")
    w = G.tensor("w", (4, 3, 3, 3), "float64")
    f = G.function([x, w], G.conv2d(x, w))
    assert f(np.zeros((2, 3, 5, 5)), np.zeros((4, 3, 3, 3))).shape == (2, 4, 3, 3)
    with pytest.raises(G.GraphcError):
        f(np.zeros((2, 2, 5, 5)), np.zeros((4, 3, 3, 3)))


# --- batch norm -----------------------------------------------------------------------------------

def test_batch_norm_train_statistics():
    rng = np.random.RandomState(0)
    xv = rng.randn(8, 3, 4, 5) * 3 + 2
    gv, bv = rng.rand(3) + 0.5, rng.randn(3)
    x = G.tensor("x", xv.shape, "float64")
    y, m, v = G.batch_norm_train(x, gv, bv, eps=1e-3)
    yv, mv, vv = G.function([x], [y, m, v])(xv)
    np.testing.assert_allclose(mv, xv.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(vv, xv.var(axis=(0, 2, 3)), rtol=1e-12)
    want = (xv - mv[:, None, None]) / np.sqrt(vv[:, None, None] + 1e-3) * gv[:, None, None] + bv[:, None, None]
    np.testing.assert_allclose(yv, want, rtol=1e-11, atol=1e-12)
    yi = G.function([x], G.batch_norm(x, gv, bv, m * 1, v * 1, eps=1e-3, training=False))(xv)
    np.testing.assert_allclose(yi, want, rtol=1e-11, atol=1e-12)


# --- random numbers and dropout -------------------------------------------------------------------

def test_philox_known_answers():
    """Random123's known-answer vectors for philox4x32-10."""
    kat = [((0, 0, 0, 0), (0, 0), (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)),
           ((0xffffffff,) * 4, (0xffffffff,) * 2, (0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd)),
           ((0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), (0xa4093822, 0x299f31d0),
            (0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1))]
    for ctr, key, want in kat:
        got = R.philox4x32_10(*[np.array([c], np.uint64) for c in ctr], *key)
        assert tuple(int(g[0]) for g in got) == want


@pytest.mark.parametrize("n", [37, 300007])  # the large one runs the kernel on several threads
def test_random_uniform_bit_identical(n, dtype):
    counter = G.shared(np.int64(2 ** 33 + 5), name="c")
    u = G.random_uniform((n,), seed=99, counter=counter, dtype=dtype)
    got = G.function([], u, updates={counter: counter + 1})()
    want = R.uniform_bits(n, R.stream_key(99, 0), 2 ** 33 + 5, dtype)
    assert got.dtype == dtype and np.array_equal(got, want)
    assert 0.0 <= got.min() and got.max() < 1.0
    if n > 1000:
        assert abs(got.mean() - 0.5) < 0.01 and abs(got.var() - 1 / 12) < 0.01
    assert counter.get_value() == 2 ** 33 + 6
    again = G.function([], u)()
    assert not np.array_equal(again, got)  # the counter moved on
    assert np.array_equal(again, R.uniform_bits(n, R.stream_key(99, 0), 2 ** 33 + 6, dtype))


def test_random_streams_replay_and_independence():
    n = G.dim("n")
    x = G.tensor("x", (n, 50), "float32")
    rng = G.RandomStreams(seed=7)
    u1, u2 = rng.uniform(x.shape), rng.uniform((n, 50))
    f = G.function([x], [u1 + x, u2], updates=rng.updates())
    xv = np.zeros((4, 50), "float32")
    first = f(xv)
    second = f(xv)
    assert not np.array_equal(first[0], first[1])  # two streams of one seed differ
    assert not np.array_equal(first[0], second[0])  # each call draws new numbers
    rng.counter.set_value(np.int64(0))
    np.testing.assert_array_equal(f(xv)[0], first[0])  # the seed replays the run
    other = G.RandomStreams(seed=8)
    assert not np.array_equal(G.function([x], other.uniform(x.shape))(xv), first[0])


def test_dropout(dtype):
    rng = G.RandomStreams(seed=3)
    x = G.tensor("x", (64, 300), dtype)
    y = G.dropout(x, 0.25, rng)
    assert G.dropout(x, 0.25, rng, training=False) is x
    r = np.random.RandomState(0).rand(64, 300).astype(dtype)
    gx = G.grad((y * r).sum(), x)
    xv = np.random.RandomState(1).uniform(1, 2, (64, 300)).astype(dtype)
    f = G.function([x], [y, gx], updates=rng.updates())
    yv, gv = f(xv)
    kept = yv != 0
    assert abs(kept.mean() - 0.75) < 0.02
    np.testing.assert_allclose(yv[kept], xv[kept] / 0.75, rtol=1e-6)
    np.testing.assert_allclose(gv, r * kept / np.asarray(0.75, dtype), rtol=1e-6)
    assert not np.array_equal(f(xv)[0], yv)  # a new mask per call
    rng.counter.set_value(np.int64(0))
    np.testing.assert_array_equal(G.function([x], y, backend="py", no_default_updates=True)(xv), yv)
    np.testing.assert_array_equal(f(xv)[0], yv)  # replayed
    c = G.shared(np.int64(0), name="c")
    y2 = G.dropout(x, 0.25, (3, c))
    np.testing.assert_array_equal(G.function([x], y2)(xv), G.function([x], y2, backend="py")(xv))
    with pytest.raises(GraphcTypeError, match="rng_state"):
        G.dropout(x, 0.5, 3)


@pytest.mark.parametrize("backend", ["py", "c"])
def test_conv_filter_larger_than_the_image_is_a_clear_error_at_call(backend):
    """Issue 13 item 11: with symbolic spatial dims a filter larger than the (padded) image used
    to reach numpy ("negative dimensions are not allowed") or return zeros on the C target."""
    img, w = G.tensor("img", (None,) * 4, "float32"), G.tensor("w", (None,) * 4, "float32")
    f = G.function([img, w], G.conv2d(img, w, padding=(1, 0)), backend=backend)
    ones = lambda *s: np.ones(s, "float32")  # noqa: E731
    with pytest.raises(G.InputError, match=r"filters' width.*img.shape\[3\]=3, w.shape\[3\]=5"):
        f(ones(1, 1, 5, 3), ones(1, 1, 3, 5))
    with pytest.raises(G.InputError, match=r"filters' height"):
        f(ones(1, 1, 2, 6), ones(1, 1, 5, 5))
    np.testing.assert_array_equal(f(ones(1, 1, 3, 5), ones(1, 1, 5, 5)), np.full((1, 1, 1, 1), 15))
    # static shapes: at graph construction, as before
    with pytest.raises(G.GraphcShapeError, match="larger than the padded input"):
        G.conv2d(G.tensor("a", (1, 1, 3, 3), "float32"), G.tensor("b", (1, 1, 5, 5), "float32"))
