"""Errors: each names the variable, says what was expected and what came, and a failed call
leaves every shared variable exactly as it was."""
import re
import warnings

import numpy as np
import pytest

import graphc as G


def _snapshot(shareds):
    return [(s.get_value().dtype, s.get_value().shape, s.get_value().tobytes()) for s in shareds]


class Model:
    """A linear regression step with updates: x (batch, 784), y (batch,)."""

    def __init__(self, backend):
        batch = G.dim("batch")
        self.x = G.matrix("x", shape=(batch, 784))
        self.y = G.vector("y", shape=(batch,))
        rng = np.random.RandomState(0)
        self.w = G.shared((rng.randn(784) * 0.01).astype("float32"), name="w")
        self.b = G.shared(np.float32(0.5), name="b")
        self.count = G.shared(np.int64(0), name="count")
        p = G.dot(self.x, self.w) + self.b
        cost = ((p - self.y) ** 2).mean()
        gw, gb = G.grad(cost, [self.w, self.b])
        self.f = G.function([self.x, self.y], cost, backend=backend,
                            updates={self.w: self.w - 0.01 * gw, self.b: self.b - 0.01 * gb,
                                     self.count: self.count + 1})
        self.shareds = [self.w, self.b, self.count]
        self.X = rng.randn(4, 784).astype("float32")
        self.Y = rng.randn(4).astype("float32")


@pytest.fixture(scope="module", params=["py", "c"])
def model(request):
    return Model(request.param)


def _bad_calls(m):
    X, Y = m.X, m.Y
    return {
        # name: (call, regexes that must all appear in the message)
        "dtype": (lambda: m.f(X.astype("float64"), Y),
                  [r"\bx\b", r"float32", r"float64"]),
        "int_dtype": (lambda: m.f(X, Y.astype("int32")),
                      [r"\by\b", r"float32", r"int32"]),
        "rank": (lambda: m.f(X[0], Y),
                 [r"\bx\b", r"rank 2", r"rank 1", r"\(784,\)"]),
        "rank_scalar": (lambda: m.f(X, np.float32(1)),
                        [r"\by\b", r"rank 1", r"rank 0"]),
        "static_dim": (lambda: m.f(np.ones((4, 783), "float32"), Y),
                       [r"\bx\b", r"784", r"\(4, 783\)"]),
        "symbolic_dim": (lambda: m.f(X, np.ones(5, "float32")),
                         [r"\by\b", r"batch", r"\(4,\)", r"\(5,\)", r"\bx\b"]),
        "symbolic_dim_first": (lambda: m.f(np.ones((3, 784), "float32"), Y),
                               [r"\by\b", r"batch", r"\(3,\)", r"\(4,\)"]),
        "not_contiguous": (lambda: m.f(np.ones((784, 4), "float32").T, Y),
                           [r"\bx\b", r"contiguous"]),
        "too_few": (lambda: m.f(X),
                    [r"2 arguments", r"\bx\b", r"\by\b", r"got 1"]),
        "too_many": (lambda: m.f(X, Y, Y),
                     [r"2 arguments", r"got 3"]),
        "none": (lambda: m.f(X, None),
                 [r"\by\b", r"float32"]),
        "missing_kwarg": (lambda: m.f(x=X),
                          [r"\by\b"]),
        "not_an_array": (lambda: m.f(X, object()),
                         [r"\by\b"]),
        # (Python floats round to float32, as Theano's do; integers that float32 cannot hold
        # exactly are still refused)
        "lossy_list": (lambda: m.f(X, [2 ** 24 + 1, 0, 0, 0]),
                       [r"\by\b", r"float32", r"int64"]),
    }


BAD = ["dtype", "int_dtype", "rank", "rank_scalar", "static_dim", "symbolic_dim",
       "symbolic_dim_first", "not_contiguous", "too_few", "too_many", "none", "missing_kwarg",
       "not_an_array", "lossy_list"]


@pytest.mark.parametrize("case", BAD)
def test_bad_call_raises_input_error_and_keeps_state(model, case):
    calls = _bad_calls(model)
    assert sorted(calls) == sorted(BAD)
    call, patterns = calls[case]
    before = _snapshot(model.shareds)
    with pytest.raises(G.InputError) as info:
        call()
    assert isinstance(info.value, G.GraphcError)
    msg = str(info.value)
    for pat in patterns:
        assert re.search(pat, msg), f"{case}: {pat!r} not in message {msg!r}"
    assert _snapshot(model.shareds) == before


def test_good_call_after_errors_updates_once(model):
    count = int(model.count.get_value())
    w = model.w.get_value()
    for case in ("dtype", "symbolic_dim", "too_few"):
        with pytest.raises(G.InputError):
            _bad_calls(model)[case][0]()
    cost = model.f(model.X, model.Y)
    assert np.isfinite(cost)
    assert int(model.count.get_value()) == count + 1
    assert not np.array_equal(model.w.get_value(), w)


def test_unknown_kwarg_is_an_input_error(model):
    before = _snapshot(model.shareds)
    with pytest.raises(G.GraphcError, match=r"\bz\b"):
        model.f(model.X, model.Y, z=1)
    assert _snapshot(model.shareds) == before


@pytest.fixture(scope="module")
def xy_py():
    x = G.vector("x")
    y = G.vector("y")
    return G.function([x, y], x * y, backend="py")


def test_unknown_kwarg_error_class(xy_py):
    with pytest.raises(G.InputError, match=r"\bz\b"):
        xy_py(np.ones(2, "float32"), np.ones(2, "float32"), z=1)


def test_argument_given_twice(xy_py):
    with pytest.raises(G.InputError, match=r"\bx\b"):
        xy_py(np.ones(2, "float32"), np.ones(2, "float32"), x=np.zeros(2, "float32"))


def test_mismatched_fresh_dims_name_the_other_input():
    x = G.matrix("x", shape=(None, 4))
    y = G.vector("y")
    f = G.function([x, y], G.dot(x, np.ones(4, "float32")) - y, backend="py")
    with pytest.raises(G.InputError) as info:
        f(np.ones((3, 4), "float32"), np.ones(5, "float32"))
    msg = str(info.value)
    assert re.search(r"\by\b", msg) and "x.shape[0]" in msg and "(5,)" in msg and "(3,)" in msg


def test_product_dims_checked_at_call():
    a = G.matrix("a", shape=("n", "m"))
    v = G.vector("v", shape=("k",))
    f = G.function([a, v], a.flatten() + v, backend="py")
    np.testing.assert_array_equal(f(np.ones((3, 4), "float32"), np.ones(12, "float32")), 2.0)
    with pytest.raises(G.InputError) as info:
        f(np.ones((3, 4), "float32"), np.ones(5, "float32"))
    msg = str(info.value)
    assert "12" in msg and "5" in msg and re.search(r"\bv\b", msg) and re.search(r"\ba\b", msg)


# --- errors when building the function ----------------------------------------------------

@pytest.fixture
def wx():
    return G.shared(np.zeros(784, "float32"), name="w_param"), G.matrix("x", shape=("batch", 784))


def test_update_of_wrong_dtype(wx):
    w, x = wx
    with pytest.raises(G.GraphcTypeError, match=r"w_param.*float64.*float32"):
        G.function([x], [], updates={w: w.astype("float64") * 2})
    with pytest.raises(G.GraphcTypeError, match="w_param"):
        G.function([x], [], updates={w: w * np.ones(784)})  # a float64 constant promotes
    with pytest.raises(G.GraphcTypeError, match="w_param"):
        G.function([x], [], updates={w: G.cast(w, "int32")})


@pytest.mark.parametrize("make", [
    lambda w, x: G.concatenate([w, w]),
    lambda w, x: w[:10],
    lambda w, x: w.sum(),
    lambda w, x: G.reshape(w, (28, 28)),
], ids=["longer", "shorter", "rank0", "rank2"])
def test_update_of_wrong_shape(wx, make):
    w, x = wx
    with pytest.raises(G.GraphcShapeError, match="w_param"):
        G.function([x], [], updates={w: make(w, x)})


def test_update_with_python_scalar_takes_the_shared_dtype():
    b = G.shared(np.float32(1.0), name="b")
    f = G.function([], [], updates={b: 0.0})
    f()
    assert b.get_value() == 0.0 and b.get_value().dtype == np.float32
    with pytest.raises(G.GraphcTypeError, match=r"\bb\b"):
        G.function([], [], updates={b: 0.1})  # not exact in float32: say so rather than round


def test_updates_are_validated(wx):
    w, x = wx
    with pytest.raises(G.GraphcTypeError):
        G.function([x], [], updates={x: x * 2})  # not a shared variable
    with pytest.raises(G.GraphcTypeError, match="w_param"):
        G.function([x], [], updates=[(w, w * 2), (w, w * 3)])


def test_missing_input_is_named(wx):
    w, x = wx
    y = G.vector("target_y")
    with pytest.raises(G.InputError, match="target_y"):
        G.function([x], (G.dot(x, w) - y).sum())


def test_inputs_must_be_input_variables(wx):
    w, x = wx
    with pytest.raises(G.GraphcTypeError):
        G.function([x, w], x.sum())
    with pytest.raises(G.GraphcTypeError):
        G.function([x, x], x.sum())
    with pytest.raises(G.GraphcTypeError):
        G.function(x, x.sum())


def test_grad_of_non_scalar_cost(wx):
    w, x = wx
    with pytest.raises(G.GradError, match="scalar"):
        G.grad(G.dot(x, w), w)


def test_grad_of_disconnected_variable():
    x = G.vector("x")
    z = G.vector("unused_z", shape=(3,))
    cost = (x ** 2).sum()
    with pytest.raises(G.GradError, match="unused_z"):
        G.grad(cost, z)
    with pytest.raises(G.GradError, match="unused_z"):
        G.grad(cost, [x, z])
    gx, gz = G.grad(cost, [x, z], disconnected_inputs="ignore")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gz2 = G.grad(cost, z, disconnected_inputs="warn")
    assert any("unused_z" in str(c.message) for c in caught)
    f = G.function([x, z], [gx, gz, gz2], backend="py")
    a, b, c = f(np.array([1.0, 2.0], "float32"), np.ones(3, "float32"))
    np.testing.assert_array_equal(a, [2.0, 4.0])
    np.testing.assert_array_equal(b, np.zeros(3, "float32"))
    np.testing.assert_array_equal(c, np.zeros(3, "float32"))
    assert b.dtype == np.float32
    with pytest.raises(G.GradError):
        G.grad(cost, z, disconnected_inputs="sometimes")


def test_grad_wrt_integer_or_int_cost():
    i = G.ivector("i")
    x = G.vector("x")
    with pytest.raises(G.GradError, match=r"\bi\b"):
        G.grad((x * i).sum(), i)
    with pytest.raises(G.GradError):
        G.grad(i.sum(), x)


@pytest.mark.parametrize("build", [
    lambda m, v: m + v,
    lambda m, v: G.dot(m, v),
    lambda m, v: m * G.vector("u", shape=(3,)),
    lambda m, v: G.concatenate([m, G.matrix("q", shape=(2, 5))], axis=0),
], ids=["add", "dot", "mul", "concatenate"])
def test_shape_mismatch_at_construction(build):
    m = G.matrix("m", shape=(3, 4))
    v = G.vector("v", shape=(5,))
    with pytest.raises(G.GraphcShapeError) as info:
        build(m, v)
    assert re.search(r"\b4\b", str(info.value))


def test_shape_errors_are_also_value_errors():
    # graphc's errors also derive from the matching builtin, for code that catches those.
    assert issubclass(G.GraphcShapeError, ValueError)
    assert issubclass(G.GraphcTypeError, TypeError)
    assert issubclass(G.InputError, G.GraphcError)
    assert issubclass(G.RuntimeCheckError, G.GraphcError)


# --- errors inside the compiled program -----------------------------------------------------

@pytest.fixture(scope="module", params=["py", "c"])
def gather_model(request):
    x = G.vector("x")
    idx = G.lvector("idx")
    E = G.shared(np.arange(12, dtype="float32").reshape(6, 2), name="E")
    w = G.shared(np.ones(3, "float32"), name="w")
    count = G.shared(np.int64(0), name="count")
    picked = x[idx]
    cost = (picked.sum() + E[idx].sum()) * w.sum()
    f = G.function([x, idx], cost, backend=request.param,
                   updates={E: E - 0.1 * G.grad(cost, E), w: w * 2, count: count + 1})
    return f, [E, w, count]


@pytest.mark.parametrize("bad", [[0, 6], [7], [-7], [2**40], [0, 1, -100]])
def test_index_out_of_range(gather_model, bad):
    f, shareds = gather_model
    x = np.arange(6, dtype="float32")
    before = _snapshot(shareds)
    with pytest.raises(G.RuntimeCheckError, match="out of range"):
        f(x, np.array(bad, "int64"))
    assert _snapshot(shareds) == before
    # In range (negative indices count from the end) it works and updates once.
    count = int(shareds[2].get_value())
    cost = f(x, np.array([0, 5, -1], "int64"))
    E0 = np.frombuffer(before[0][2], "float32").reshape(6, 2)
    w0 = np.frombuffer(before[1][2], "float32")
    expected = (x[[0, 5, 5]].sum() + E0[[0, 5, 5]].sum()) * w0.sum()
    np.testing.assert_allclose(cost, expected, rtol=1e-6)
    assert int(shareds[2].get_value()) == count + 1
    np.testing.assert_array_equal(shareds[1].get_value(), w0 * 2)


# --- shared variables ---------------------------------------------------------------------

def test_set_value_checks_dtype_and_shape():
    w = G.shared(np.zeros((2, 3), "float32"), name="weights")
    before = w.get_value()
    with pytest.raises(G.GraphcTypeError, match=r"weights.*float32.*float64"):
        w.set_value(np.zeros((2, 3)))
    with pytest.raises(G.GraphcTypeError, match="weights"):
        w.set_value(np.zeros((2, 3), "int32"))
    with pytest.raises(G.GraphcShapeError, match=r"weights.*\(2, 3\).*\(3, 2\)"):
        w.set_value(np.zeros((3, 2), "float32"))
    with pytest.raises(G.GraphcShapeError, match="weights"):
        w.set_value(np.zeros(6, "float32"))
    np.testing.assert_array_equal(w.get_value(), before)
    w.set_value(np.ones((2, 3), "float32"))
    np.testing.assert_array_equal(w.get_value(), 1.0)


def test_set_value_copies_unless_borrowed():
    w = G.shared(np.zeros(3, "float32"), name="w")
    v = np.ones(3, "float32")
    w.set_value(v)
    v[:] = 5.0
    np.testing.assert_array_equal(w.get_value(), 1.0)
    got = w.get_value()
    got[:] = 7.0
    np.testing.assert_array_equal(w.get_value(), 1.0)
    w.set_value(np.ones((3, 2), "float32")[:, 0])  # a strided view is stored contiguous
    assert w.get_value(borrow=True).flags.c_contiguous


def test_shared_rejects_unsupported_dtypes():
    with pytest.raises(G.GraphcTypeError):
        G.shared(np.zeros(3, "float16"), name="h")
    with pytest.raises(G.GraphcTypeError):
        G.shared(np.array(["a"]), name="s")


# --- byte order -------------------------------------------------------------------------------

def _byteorder_fn(backend):
    x = G.vector("x")
    return G.function([x], x * 2, backend=backend)


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """Compile for real (a function loaded from the artifact cache takes other call paths)."""
    monkeypatch.setattr(G.config, "cache_dir", str(tmp_path))


def test_non_native_byte_order_is_rejected_py():
    f = _byteorder_fn("py")
    with pytest.raises(G.InputError, match=r"\bx\b.*byte order"):
        f(np.array([1, 2, 3], ">f4"))


def test_non_native_byte_order_is_rejected_c(fresh_cache):
    f = _byteorder_fn("c")
    try:
        out = f(np.array([1, 2, 3], ">f4"))
    except G.InputError:
        return
    np.testing.assert_array_equal(out, [2, 4, 6])  # converting would be fine too


# --- numeric edge cases: every target means the same (issue 13) ---------------------------------

@pytest.mark.parametrize("backend", ["py", "c"])
@pytest.mark.parametrize("reduction", ["max", "min", "argmax"])
def test_max_over_an_empty_axis_raises(backend, reduction):
    """numpy raises for max/min/argmax over an axis of length 0 (no identity); the C target used
    to return -inf / +inf / index 0. A failing call leaves the shared variable as it was."""
    x = G.matrix("x")
    w = G.shared(np.zeros(3, "float32"), name="w")
    out = getattr(G, reduction)(x, axis=1)
    f = G.function([x], out, updates=[(w, w + 1)], backend=backend)
    with pytest.raises(G.RuntimeCheckError, match=f"{reduction} over an empty axis"):
        f(np.zeros((3, 0), "float32"))
    np.testing.assert_array_equal(w.get_value(), 0)
    # an empty output over a non-empty axis is fine, as in numpy
    assert f(np.zeros((0, 4), "float32")).shape == (0,)
    np.testing.assert_array_equal(f(np.arange(6, dtype="float32").reshape(2, 3)),
                                  getattr(np, reduction)(np.arange(6).reshape(2, 3), axis=1))


@pytest.mark.parametrize("backend", ["py", "c"])
@pytest.mark.parametrize("level", ["O0", "O3"])
def test_categorical_crossentropy_label_out_of_range_is_an_error(backend, level):
    """Class labels mean one thing at every level and target: -1 is an error (it used to pick the
    last class at O0, through numpy-style indexing, and raise at O3)."""
    x, y = G.matrix("x"), G.tensor("y", (None,), "int64")
    f = G.function([x, y], G.categorical_crossentropy(G.softmax(x), y), backend=backend,
                   opt_level=level)
    logits = np.arange(6, dtype="float32").reshape(2, 3)
    for labels in ([0, -1], [0, 3]):
        with pytest.raises(G.RuntimeCheckError, match="out of range"):
            f(logits, np.array(labels))
    np.testing.assert_allclose(f(logits, np.array([0, 2])), [2.4076061, 0.407606], rtol=1e-5)


@pytest.mark.parametrize("backend", ["py", "c"])
@pytest.mark.parametrize("level", ["O0", "O3"])
def test_explicit_log_softmax_indexing_counts_from_the_end_at_every_level(backend, level):
    """-log_softmax(x)[arange(n), y] is numpy indexing (-1: the last class) at O0, and stays so
    when stabilization turns it into SoftmaxCrossEntropy at O3."""
    x, y = G.matrix("x"), G.tensor("y", (None,), "int64")
    f = G.function([x, y], -G.log_softmax(x)[G.arange(x.shape[0]), y], backend=backend,
                   opt_level=level)
    logits = np.arange(6, dtype="float32").reshape(2, 3)
    np.testing.assert_allclose(f(logits, np.array([0, -1])), [2.4076061, 0.407606], rtol=1e-5)
    np.testing.assert_allclose(f(logits, np.array([-3, 2])), [2.4076061, 0.407606], rtol=1e-5)
    for labels in ([0, -4], [0, 3]):
        with pytest.raises(G.RuntimeCheckError, match="out of range"):
            f(logits, np.array(labels))


@pytest.mark.parametrize("backend", ["py", "c"])
def test_index_errors_name_the_value_position_and_users_axis(backend):
    """Issue 13: the C target said 'index out of range on axis 0 in gather' for a[:, i] (the
    user's axis 1; take() transposes). Now: the bad value, its position in the index array, the
    user's axis and its size, and (C) the indexing as written."""
    a, i, j = G.matrix("a"), G.tensor("i", (None,), "int64"), G.tensor("j", (None,), "int64")
    x = np.ones((2, 3), "float32")
    named = r" in a\[:, i\]" if backend == "c" else ""
    f = G.function([a, i], a[:, i], backend=backend)
    with pytest.raises(G.RuntimeCheckError,
                       match=r"index out of range: 7 at position 1, for axis 1 of size 3" + named):
        f(x, np.array([0, 7]))
    f = G.function([a, i, j], a[i, j], backend=backend)
    with pytest.raises(G.RuntimeCheckError, match=r"index out of range: -4 at position 1 of index "
                                                  r"array 1, for axis 1 of size 3"):
        f(x, np.array([0, 1]), np.array([2, -4]))
    g = G.function([a, i], G.grad(a[i].sum(), a), backend=backend)
    with pytest.raises(G.RuntimeCheckError, match=r"index out of range: 4 at position 1, for axis "
                                                  r"0 of size 2"):
        g(x, np.array([0, 4]))
