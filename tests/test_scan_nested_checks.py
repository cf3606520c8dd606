"""Call-time checks made inside a scan's step (an inner scan's n_steps against its sequence, two
operands' sizes) are the outer function's checks too: they run before the program on every
target, name the inner scan and the sequence with the call's values, and a failed call changes no
shared variable. An index computed in the step is checked at run time (the kernel's bounds
check) and named; a slice bound that is a value of the step is refused when the graph is built."""
import numpy as np
import pytest

import graphc as G

BACKENDS = ["py", "c"]


def nested_sum(with_update=False):
    """For each outer step t, the inner scan runs n = X.shape[1] steps over Y[t]'s rows (Theano:
    Y[t] must have at least n rows; it is read up to there)."""
    T, n, m = G.dim("T"), G.dim("n"), G.dim("m")
    X = G.tensor("X", (T, n, 3), "float64")
    Y = G.tensor("Y", (T, m, 3), "float64")

    def outer_step(x, y, acc):
        s, _ = G.scan(lambda yr, xr, a: a + yr * xr, sequences=[y, x],
                      outputs_info=G.zeros_like(x[0]), n_steps=x.shape[0], name="inner")
        return acc + s[-1]

    out, _ = G.scan(outer_step, sequences=[X, Y], outputs_info=G.zeros_like(X[0, 0]), name="outer")
    return X, Y, out[-1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_inner_n_steps_longer_than_its_sequence_fails_before_the_program(backend):
    X, Y, total = nested_sum()
    calls = G.shared(np.zeros(()), name="calls")
    f = G.function([X, Y], total, updates={calls: calls + 1}, backend=backend)
    x, y = np.ones((2, 4, 3)), np.arange(30.0).reshape(2, 5, 3)
    np.testing.assert_allclose(f(x, y), y[:, :4].sum(axis=(0, 1)))  # read up to n_steps
    with pytest.raises(G.GraphcError) as err:
        f(x, np.ascontiguousarray(y[:, :3]))
    text = str(err.value)
    assert "scan 'inner'" in text and "sequences[0] (Y" in text
    assert "3 entries" in text and "n_steps = n = 4" in text
    assert calls.get_value() == 1  # the failed call changed nothing


def test_inner_operands_of_different_sizes_fail_at_the_call():
    """x_t + y_t inside the step: X's and Y's row counts must agree, and the C loop would
    otherwise read past the shorter one."""
    T, n, m = G.dim("T"), G.dim("n"), G.dim("m")
    X, Y = G.tensor("X", (T, n), "float64"), G.tensor("Y", (T, m), "float64")
    out, _ = G.scan(lambda x, y: (x * y).sum(), sequences=[X, Y], name="dots")
    for backend in BACKENDS:
        f = G.function([X, Y], out, backend=backend)
        np.testing.assert_allclose(f(np.ones((2, 3)), np.ones((2, 3))), [3.0, 3.0])
        with pytest.raises(G.GraphcError):
            f(np.ones((2, 3)), np.ones((2, 5)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_index_computed_in_an_inner_step_is_checked_at_run_time(backend):
    I, M = G.tensor("I", (G.dim("T"), 2), "int64"), G.dmatrix("M")

    def outer_step(idx, acc):
        rows, _ = G.scan(lambda i, a: a + M[i], sequences=idx, outputs_info=G.zeros_like(M[0]),
                         name="inner")
        return acc + rows[-1]

    out, _ = G.scan(outer_step, sequences=I, outputs_info=G.zeros_like(M[0]), name="outer")
    f = G.function([I, M], out[-1], backend=backend)
    np.testing.assert_allclose(f(np.array([[0, 1], [2, 1]]), np.eye(3)), [1.0, 2.0, 1.0])
    for bad in (3, -4):
        with pytest.raises(G.GraphcError, match=f"index out of range: {bad} .*axis 0 of size 3"):
            f(np.array([[0, 1], [bad, 1]]), np.eye(3))


def test_slice_bound_that_is_a_value_of_the_step_is_refused():
    K, M = G.tensor("K", (G.dim("T"),), "int64"), G.dvector("M")
    with pytest.raises(G.GraphcError, match=r"scan 'outer': the step slices M\[1:K\[t\+0\]\]"):
        G.scan(lambda k, a: a + M[1:k].sum(), sequences=K,
               outputs_info=G.constant(np.zeros((), "float64")), name="outer")
    # a bound the step does not change is computed once, outside the loop: it works
    k = G.lscalar("k")
    out, _ = G.scan(lambda kk, a: a + M[1:k].sum() + G.cast(kk, "float64"), sequences=K,
                    outputs_info=G.constant(np.zeros((), "float64")), name="outer")
    for backend in BACKENDS:
        f = G.function([K, M, k], out[-1], backend=backend)
        assert f(np.array([2, 3]), np.arange(4.0), 3) == 11.0
