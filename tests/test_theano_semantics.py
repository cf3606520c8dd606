"""Theano's semantics in graphc itself (issue 14): givens, slices with run-time bounds, default
updates of random streams, Python float downcasting, shared(borrow=True), function keywords.
Each test is a small Theano-style program with its expected numbers."""
import warnings

import numpy as np
import pytest

import graphc as G
from graphc.errors import CompileError, GraphcShapeError, GraphcTypeError, InputError

BACKENDS = ["py", "c"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_givens_minibatch_of_a_shared_dataset(backend):
    data = np.arange(40, dtype="float32").reshape(10, 4)
    labels = np.arange(10, dtype="int32") % 3
    train_x, train_y = G.shared(data, name="train_x"), G.shared(labels, name="train_y")
    index, bs = G.lscalar("index"), 3
    x, y = G.matrix("x"), G.ivector("y")
    out = [x.sum(axis=1), y * 2, x.shape[0]]
    f = G.function([index], out, backend=backend,
                   givens={x: train_x[index * bs:(index + 1) * bs],
                           y: train_y[index * bs:(index + 1) * bs]})
    for i in (0, 2, 3, 4):  # 3: a short last batch (1 row); 4: past the end (empty)
        s, yy, n = f(i)
        np.testing.assert_array_equal(s, data[i * bs:(i + 1) * bs].sum(axis=1))
        np.testing.assert_array_equal(yy, labels[i * bs:(i + 1) * bs] * 2)
        assert n == len(data[i * bs:(i + 1) * bs])


def test_givens_errors_and_forms():
    x, w = G.matrix("x"), G.vector("w")
    s = G.shared(np.ones((2, 3), "float32"), name="s")
    f = G.function([w], G.dot(x, w), givens=[(x, s)])  # pairs, as Theano allows
    np.testing.assert_allclose(f(np.ones(3, "float32")), [3, 3])
    with pytest.raises(GraphcTypeError, match="x is float32.*float64"):
        G.function([w], G.dot(x, w), givens={x: G.dmatrix("d")})
    with pytest.raises(GraphcShapeError, match="rank"):
        G.function([w], G.dot(x, w), givens={x: w})
    with pytest.raises(InputError, match="not in the inputs"):
        G.function([], G.dot(x, w), givens={x: s})


@pytest.mark.parametrize("backend", BACKENDS)
def test_slices_with_run_time_bounds_clip_as_numpy(backend):
    data = np.arange(50, dtype="float32").reshape(10, 5)
    d = G.shared(data, name="d")
    a, b = G.lscalar("a"), G.lscalar("b")
    f = G.function([a, b], [d[a:b], d[a:b:2, 1:], d[b:a:-1], d[a:]], backend=backend)
    column = G.function([a, b], d[:b, a], backend=backend)
    for lo, hi in ((0, 10), (2, 7), (7, 2), (-3, 100), (-100, -2), (12, 20), (3, 3)):
        got = f(lo, hi)
        want = [data[lo:hi], data[lo:hi:2, 1:], data[hi:lo:-1], data[lo:]]
        for g_, w_ in zip(got, want):
            assert g_.shape == w_.shape
            np.testing.assert_array_equal(g_, w_)
        if -5 <= lo < 5:
            np.testing.assert_array_equal(column(lo, hi), data[:hi, lo])
    with pytest.raises(Exception, match="out of range"):
        column(5, 3)  # an integer index out of range raises, as in numpy


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_through_a_run_time_slice(backend):
    data = np.random.RandomState(0).randn(9, 4).astype("float32")
    d = G.shared(data, name="d")
    a, b = G.lscalar("a"), G.lscalar("b")
    w = G.shared(np.ones(4, "float32"), name="w")
    x = G.matrix("x")
    cost = (G.dot(x[a:b], w) ** 2).sum()
    f = G.function([x, a, b], G.grad(cost, [w, x]), backend=backend)
    gw, gx = f(data, 2, 6)
    xs = data[2:6]
    np.testing.assert_allclose(gw, 2 * (xs @ np.ones(4)) @ xs, rtol=1e-5)
    want = np.zeros_like(data)
    want[2:6] = 2 * np.outer(xs @ np.ones(4), np.ones(4))
    np.testing.assert_allclose(gx, want, rtol=1e-5)


def test_run_time_slices_that_must_agree():
    d = G.shared(np.arange(10, dtype="float32"), name="d")
    a, b = G.lscalar("a"), G.lscalar("b")
    f = G.function([a, b], d[a:a + 3] + d[b:b + 3])
    np.testing.assert_array_equal(f(0, 5), [5, 7, 9])
    with pytest.raises(InputError, match=r"d\[b:b \+ 3\].*length 2.*needs 3"):
        f(0, 8)
    with pytest.raises(GraphcTypeError, match="integer scalar"):
        d[G.scalar("f"):]
    np.testing.assert_array_equal(G.function([a], d[::a])(-3), np.arange(10)[::-3])  # run-time step


def test_slice_bound_from_a_shape_and_a_shared_counter():
    x = G.vector("x")
    k = G.shared(np.int64(2), name="k")
    f = G.function([x], [x[:x.shape[0] // 2], x[k:]])
    half, tail = f(np.arange(7, dtype="float32"))
    np.testing.assert_array_equal(half, [0, 1, 2])
    np.testing.assert_array_equal(tail, [2, 3, 4, 5, 6])


def test_random_streams_advance_by_default_and_no_default_updates():
    rng = G.RandomStreams(seed=5)
    u = rng.uniform((4,))
    f = G.function([], u)
    first, second = f(), f()
    assert not np.array_equal(first, second)  # Theano's default_update advanced the counter
    assert rng.counter.get_value() == 2
    frozen = G.function([], u, no_default_updates=True)
    np.testing.assert_array_equal(frozen(), frozen())
    assert rng.counter.get_value() == 2
    listed = G.function([], u, no_default_updates=[rng.counter])
    listed()
    assert rng.counter.get_value() == 2
    rng.counter.set_value(0)  # replay: a Python int for an int64 shared variable
    np.testing.assert_array_equal(f(), first)


def test_default_update_of_a_user_shared_and_explicit_update_wins():
    c = G.shared(np.float32(0), name="c")
    c.default_update = c + 1
    f = G.function([], c * 10)
    assert [float(f()) for _ in range(3)] == [0.0, 10.0, 20.0]
    g = G.function([], c * 1, updates={c: c - 1})
    g()
    assert c.get_value() == 2.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_python_floats_downcast_to_float32(backend):
    x, lr = G.vector("x"), G.scalar("lr")
    f = G.function([x, lr], x * lr, backend=backend)
    np.testing.assert_allclose(f([0.1, 0.2], 0.1), np.float32([0.1, 0.2]) * np.float32(0.1))
    with pytest.raises(InputError, match="allow_input_downcast"):
        f(np.array([0.1, 0.2]), 0.1)  # a float64 array: only with allow_input_downcast
    g = G.function([x, lr], x * lr, allow_input_downcast=True, backend=backend)
    np.testing.assert_allclose(g(np.array([0.1, 0.2]), 2), np.float32([0.2, 0.4]))
    strict = G.function([x, lr], x * lr, allow_input_downcast=False, backend=backend)
    with pytest.raises(InputError, match="exactly"):
        strict([1.0], 0.1)
    s = G.shared(np.float32(0), name="s")
    s.set_value(0.1)
    assert s.get_value().dtype == np.float32 and s.get_value() == np.float32(0.1)
    with pytest.raises(GraphcTypeError):
        G.shared(np.int32(0)).set_value(0.5)
    with pytest.raises(GraphcTypeError, match="float64"):
        s.set_value(np.float64(0.5))  # a numpy float64 is not a Python float literal


def test_shared_borrow_aliases_the_array():
    a = np.zeros(3, "float32")
    s = G.shared(a, borrow=True)
    assert s.get_value(borrow=True) is a
    f = G.function([], s * 2)
    a[:] = 1
    np.testing.assert_array_equal(f(), [2, 2, 2])
    assert G.shared(a).get_value(borrow=True) is not a
    assert G.shared(a[::2], borrow=True).get_value(borrow=True) is not a  # not contiguous: copied


def test_function_keywords():
    x, y = G.vector("x"), G.vector("y")
    with pytest.raises(InputError, match="y are not used"):
        G.function([x, y], x * 2, on_unused_input="raise")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        G.function([x, y], x * 2, on_unused_input="warn")
    assert any("not used" in str(w.message) for w in caught)
    f = G.function([x, y], x * 2, mode="FAST_COMPILE", name="double", profile=False)
    assert f.name == "double"
    np.testing.assert_array_equal(f([1.0], [0.0]), [2.0])
    with pytest.raises(CompileError, match="mode 'DebugMode'"):
        G.function([x], x, mode="DebugMode")


@pytest.mark.parametrize("backend", BACKENDS)
def test_distributions(backend):
    rng = G.RandomStreams(seed=3)
    x = G.matrix("x")
    outs = [rng.normal((20000,), avg=2.0, std=3.0), rng.uniform((20000,), low=-1, high=3),
            rng.binomial(size=x.shape, n=1, p=0.3, dtype="float32"),
            rng.binomial((20000,), n=5, p=0.4), rng.choice((20000,), a=4),
            rng.choice((20000,), a=3, p=[0.2, 0.5, 0.3]), rng.permutation(n=10),
            rng.choice((5,), a=np.array([10, 20], "int64"))]
    f = G.function([x], outs, backend=backend)
    normal, uniform, bern, binom, choice, weighted, perm, picked = f(np.ones((100, 200), "float32"))
    assert abs(normal.mean() - 2) < 0.1 and abs(normal.std() - 3) < 0.1
    assert uniform.min() >= -1 and uniform.max() < 3 and abs(uniform.mean() - 1) < 0.05
    assert bern.dtype == np.float32 and bern.shape == (100, 200) and set(np.unique(bern)) == {0, 1}
    assert abs(bern.mean() - 0.3) < 0.02
    assert binom.dtype == np.int64 and binom.max() <= 5 and abs(binom.mean() - 2) < 0.05
    np.testing.assert_allclose(np.bincount(choice, minlength=4) / 20000, 0.25, atol=0.02)
    np.testing.assert_allclose(np.bincount(weighted, minlength=3) / 20000, [0.2, 0.5, 0.3],
                               atol=0.02)
    assert sorted(perm) == list(range(10))
    assert set(picked) <= {10, 20}
    with pytest.raises(GraphcTypeError, match="replace=False"):
        rng.choice((6,), a=5, replace=False)  # (replace=False: tests/test_theano_random_choice.py)


def test_distributions_match_between_targets():
    rng = G.RandomStreams(seed=11)
    outs = [rng.normal((3, 5)), rng.binomial((7,), n=3, p=0.5), rng.permutation(n=6)]
    got_c = G.function([], outs, no_default_updates=True)()
    got_py = G.function([], outs, no_default_updates=True, backend="py")()
    for a, b in zip(got_c, got_py):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # (libm vs numpy cos, log)


@pytest.mark.parametrize("backend", BACKENDS)
def test_conv2d_filter_flip_is_a_true_convolution(backend):
    rs = np.random.RandomState(0)
    xv, wv = rs.randn(2, 3, 6, 6).astype("float32"), rs.randn(4, 3, 3, 3).astype("float32")
    x, w = G.tensor4("x"), G.tensor4("w")
    f = G.function([x, w], [G.conv2d(x, w, filter_flip=True), G.conv2d(x, w)], backend=backend)
    flipped, plain = f(xv, wv)
    want = np.zeros((2, 4, 4, 4), "float32")
    for i in range(4):
        for j in range(4):
            patch = xv[:, :, i:i + 3, j:j + 3]
            want[:, :, i, j] = np.einsum("nchw,ochw->no", patch, wv[:, :, ::-1, ::-1])
    np.testing.assert_allclose(flipped, want, rtol=1e-4, atol=1e-4)
    assert not np.allclose(flipped, plain)


def test_reshape_error_names_the_reshape_and_the_values():
    x = G.matrix("x")
    f = G.function([x], x.reshape((20, 1, 28, 28)).sum())
    with pytest.raises(InputError) as info:
        f(np.ones((7, 784), "float32"))
    msg = str(info.value)
    assert "reshape of x from shape (x.shape[0], x.shape[1]) to (20, 1, 28, 28)" in msg
    assert "(7, 784)" in msg and "5488" in msg and "15680" in msg and "_d" not in msg


@pytest.mark.parametrize("backend", BACKENDS)
def test_alloc_zeros_ones_fill_eye_arange(backend):
    x = G.matrix("x")
    outs = [G.alloc(np.float32(2), x.shape[0], 3), G.zeros((2, x.shape[1])), G.ones(4, "int32"),
            G.fill(x, 7.0), G.eye(3, 4, 1), G.arange(1, x.shape[0], 2),
            G.arange(5, dtype="float32"), G.alloc(np.arange(3, dtype="float32"), 2, 3)]
    got = G.function([x], outs, backend=backend)(np.ones((5, 2), "float32"))
    want = [np.full((5, 3), 2, "float32"), np.zeros((2, 2), "float32"), np.ones(4, "int32"),
            np.full((5, 2), 7, "float32"), np.eye(3, 4, 1, dtype="float32"), np.arange(1, 5, 2),
            np.arange(5, dtype="float32"), np.tile(np.arange(3, dtype="float32"), (2, 1))]
    for g_, w_ in zip(got, want):
        assert g_.dtype == w_.dtype
        np.testing.assert_array_equal(g_, w_)


def test_eval():
    x = G.vector("x")
    np.testing.assert_array_equal((x * 2).eval({x: [1.0, 2.0]}), [2, 4])
    np.testing.assert_array_equal((x * 2).eval({x: [3.0]}), [6])
    assert G.constant(3).eval() == 3
    u = G.RandomStreams(seed=1).uniform((2,))
    assert not np.array_equal(u.eval(), u.eval())  # default updates apply, as in Theano
    with pytest.raises(GraphcTypeError, match="dict"):
        (x * 2).eval([1.0])


def test_run_time_slices_compile_warm_the_second_time():
    def build():
        d = G.shared(np.arange(50, dtype="float32").reshape(10, 5), name="d")
        i = G.lscalar("i")
        return G.function([i], d[i * 3:(i + 1) * 3].sum(axis=1))
    build()
    f = build()  # new start/length dims, the same graph: the cached program serves
    assert f.timings.get("artifact_hit")
    np.testing.assert_array_equal(f(1), [85, 110, 135])
    np.testing.assert_array_equal(f(3), [235])


def test_aot_export_refuses_run_time_slices(tmp_path):
    d = G.shared(np.arange(10, dtype="float32"), name="d")
    i = G.lscalar("i")
    f = G.function([i], d[i:i + 2] * 2)
    with pytest.raises(CompileError, match="known only at run time"):
        G.aot.export({"f": f}, str(tmp_path / "out"), name="sl")


@pytest.mark.parametrize("allow", [True, False, None])
def test_allow_input_downcast_survives_pickling(allow):
    import pickle
    x, lr = G.vector("x"), G.scalar("lr")
    f = pickle.loads(pickle.dumps(G.function([x, lr], x * lr, allow_input_downcast=allow)))
    assert f.checker.allow_downcast is allow
    if allow:
        np.testing.assert_allclose(f(np.array([0.5, 1.5]), 2), np.float32([1.0, 3.0]))
    else:  # None: Python floats only; False: exactly float32
        with pytest.raises(InputError, match="allow_input_downcast"):
            f(np.array([0.5, 1.5]), np.float32(2))
    if allow is None:
        np.testing.assert_allclose(f(np.float32([1.0]), 0.1), np.float32([0.1]))
    if allow is False:
        with pytest.raises(InputError, match="exactly"):
            f(np.float32([1.0]), 0.1)  # 0.1 is not exact in float32
