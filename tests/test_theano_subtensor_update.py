"""Theano's set_subtensor / inc_subtensor (issue 14): basic slices (static and run-time bounds),
integer indexing (index arrays, a scalar index on any axis); values against numpy, gradients
against finite differences, and the shared-dataset pattern that uses them."""
import numpy as np
import pytest

import graphc as G
import graphc.theano as theano
import graphc.theano.tensor as T
from graphc.testing import verify_grad


def _x():
    return np.arange(24, dtype="float64").reshape(4, 6) / 7.0


CASES = {  # name: (graph index, numpy index)
    "rows": (lambda x: x[1:3], np.s_[1:3]),
    "step_and_int": (lambda x: x[::2, 4], np.s_[::2, 4]),
    "negative_step": (lambda x: x[3:0:-2, 1:5], np.s_[3:0:-2, 1:5]),
    "index_array": (lambda x: x[np.array([3, 0])], np.s_[[3, 0]]),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("how", ["set", "inc"])
def test_values_match_numpy_assignment(name, how):
    index, np_index = CASES[name]
    xv = _x()
    x = G.tensor("x", xv.shape, "float64")
    shape = xv[np_index].shape
    yv = np.random.RandomState(0).standard_normal(shape)
    y = G.tensor("y", shape, "float64")
    fn = G.set_subtensor if how == "set" else G.inc_subtensor
    expected = xv.copy()
    if how == "set":
        expected[np_index] = yv
    else:
        expected[np_index] += yv
    np.testing.assert_allclose(G.function([x, y], fn(index(x), y))(xv, yv), expected, rtol=1e-12)


def test_a_scalar_value_broadcasts_and_a_symbolic_index_works_on_any_axis():
    xv = _x()
    x, i = G.tensor("x", xv.shape, "float64"), T.lscalar("i")
    f = G.function([x, i], [T.set_subtensor(x[:, i], 0.0), T.inc_subtensor(x[i], 1.0)])
    got_set, got_inc = f(xv, 2)
    want_set, want_inc = xv.copy(), xv.copy()
    want_set[:, 2] = 0.0
    want_inc[2] += 1.0
    np.testing.assert_allclose(got_set, want_set)
    np.testing.assert_allclose(got_inc, want_inc)


def test_repeated_indices_accumulate_in_inc_subtensor():
    x, idx = G.tensor("x", (5,), "float64"), G.tensor("idx", (3,), "int64")
    f = G.function([x, idx], G.inc_subtensor(x[idx], 1.0))
    expected = np.zeros(5)
    np.add.at(expected, [1, 1, 4], 1.0)
    np.testing.assert_allclose(f(np.zeros(5), np.array([1, 1, 4])), expected)


def test_run_time_slice_bounds_on_a_shared_dataset():
    data = theano.shared(np.zeros((6, 2), dtype="float32"), name="data")
    index = T.lscalar("index")
    rows = T.matrix("rows")
    bs = 2
    write = theano.function([index, rows], [], updates=[
        (data, T.set_subtensor(data[index * bs:(index + 1) * bs], rows))])
    write(1, np.ones((2, 2), dtype="float32"))
    write(2, np.full((2, 2), 3.0, dtype="float32"))
    np.testing.assert_array_equal(data.get_value(), [[0, 0], [0, 0], [1, 1], [1, 1], [3, 3], [3, 3]])


@pytest.mark.parametrize("how", ["set", "inc"])
def test_gradients(how):
    fn = G.set_subtensor if how == "set" else G.inc_subtensor
    rng = np.random.RandomState(1)
    verify_grad(lambda x, y: G.tanh(fn(x[1:4:2, ::3], y)), [rng.standard_normal((5, 6)),
                                                           rng.standard_normal((2, 2))], backend="py")
    verify_grad(lambda x, y: fn(x[G.constant(np.array([0, 3]))], y) ** 2,
                [rng.standard_normal((4, 3)), rng.standard_normal((2, 3))], backend="py")


def test_set_subtensor_replaces_inf_and_nan_exactly():
    x = G.tensor("x", (3,), "float64")
    out = G.function([x], G.set_subtensor(x[1:], 2.0))(np.array([1.0, np.inf, np.nan]))
    np.testing.assert_array_equal(out, [1.0, 2.0, 2.0])


def test_errors_say_what_is_expected():
    x = G.tensor("x", (3, 4), "float64")
    with pytest.raises(G.GraphcTypeError, match="set_subtensor.*slice or an indexing.*x"):
        G.set_subtensor(x * 2, 1.0)
    with pytest.raises(G.GraphcTypeError, match="inc_subtensor.*rank 3"):
        G.inc_subtensor(x[1:], G.tensor("y", (1, 1, 4), "float64"))


@pytest.mark.parametrize("backend", ["py", "c"])
def test_repeated_indices_in_set_subtensor_keep_the_last_value_as_numpy(backend):
    xv = _x()
    x = G.tensor("x", xv.shape, "float64")
    rows, cols = G.tensor("rows", (5,), "int64"), G.tensor("cols", (5,), "int64")
    y = G.tensor("y", (5,), "float64")
    ym = G.tensor("ym", (5, 6), "float64")
    f = G.function([x, rows, cols, y, ym], [G.set_subtensor(x[rows], ym),
                                            G.set_subtensor(x[rows, cols], y),
                                            G.set_subtensor(x[:, cols], 7.0)], backend=backend)
    rv, cv = np.array([2, 0, 2, -2, 1]), np.array([5, 5, 1, -1, 5])  # -2 is 2; -1 is 5
    yv, ymv = np.arange(5.0) + 10, np.arange(30.0).reshape(5, 6)
    got = f(xv, rv, cv, yv, ymv)
    want = [xv.copy(), xv.copy(), xv.copy()]
    want[0][rv] = ymv
    want[1][rv, cv] = yv
    want[2][:, cv] = 7.0
    for g_, w_ in zip(got, want):
        np.testing.assert_array_equal(g_, w_)
    assert got[0][2, 0] == ymv[3, 0]  # (rows 0, 2, 3 write row 2: the last, 3, is kept)


def test_gradient_of_set_subtensor_with_repeated_indices():
    rv = np.array([1, 3, 1, 0])

    def fn(x, y):
        return G.set_subtensor(x[G.constant(rv)], y) ** 2
    rs = np.random.RandomState(1)
    verify_grad(fn, [rs.randn(4, 3), rs.randn(4, 3)])
    x, y = G.tensor("x", (4, 3), "float64"), G.tensor("y", (4, 3), "float64")
    gy = G.function([x, y], G.grad(G.set_subtensor(x[G.constant(rv)], y).sum(), y))(
        np.zeros((4, 3)), np.ones((4, 3)))
    np.testing.assert_array_equal(gy[:, 0], [0, 1, 1, 1])  # the overwritten value gets none


def test_repeated_indices_in_set_subtensor_on_cuda_emulated(monkeypatch):
    import shutil
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    monkeypatch.setenv("GRAPHC_CUDA_EMULATE", "1")
    x, idx = G.tensor("x", (5, 3), "float32"), G.tensor("idx", (4,), "int64")
    y = G.tensor("y", (4, 3), "float32")
    f = G.function([x, idx, y], G.set_subtensor(x[idx], y), target="cuda")
    xv, iv = np.ones((5, 3), "float32"), np.array([1, 3, 1, -4])
    yv = np.arange(12, dtype="float32").reshape(4, 3)
    want = xv.copy()
    want[iv] = yv
    np.testing.assert_array_equal(f(xv, iv, yv), want)
