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
    with pytest.raises(GraphcTypeError, match="step"):
        d[::a]


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
