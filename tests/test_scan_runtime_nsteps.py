"""G.scan with n_steps an integer scalar computed at run time (Theano's `n_steps=k` with k an
iscalar input): one compiled function runs any count, checks sequences at the call, and
differentiates through the count it ran."""
import numpy as np
import pytest

import graphc as G

W0 = np.array([[0.5, -0.2, 0.1], [0.3, 0.4, -0.6], [0.0, 0.2, 0.7]])


def _reference(n, h):
    out = []
    for _ in range(n):
        h = np.tanh(h @ W0 + 1)
        out.append(h)
    return np.array(out).reshape(n, 3)


def _recurrence():
    k, h0 = G.iscalar("k"), G.dvector("h0")
    W = G.shared(W0.copy(), name="W")
    hs, _ = G.scan(lambda h, W: G.tanh(G.dot(h, W) + 1), outputs_info=h0, non_sequences=W,
                   n_steps=k)
    return k, h0, W, hs


def test_one_function_runs_every_count(target):
    k, h0, W, hs = _recurrence()
    f = G.function([k, h0], hs, target=target)
    for n in (1, 4, 7):
        np.testing.assert_allclose(f(n, np.ones(3)), _reference(n, np.ones(3)), rtol=1e-12)
    assert f(0, np.ones(3)).shape == (0, 3)
    assert f(-3, np.ones(3)).shape == (0, 3)   # a negative count runs no step


def test_gradient_through_a_run_time_count(target):
    k, h0, W, hs = _recurrence()
    g = G.function([k, h0], G.grad((hs ** 2).sum(), W), target=target)
    eps, n, h = 1e-6, 5, np.array([0.2, -0.1, 0.4])
    num = np.zeros_like(W0)
    for i in range(3):
        for j in range(3):
            d = np.zeros_like(W0)
            d[i, j] = eps
            up = (np.asarray(_ref_with(W0 + d, n, h)) ** 2).sum()
            down = (np.asarray(_ref_with(W0 - d, n, h)) ** 2).sum()
            num[i, j] = (up - down) / (2 * eps)
    np.testing.assert_allclose(g(n, h), num, rtol=1e-6, atol=1e-9)


def _ref_with(W, n, h):
    out = []
    for _ in range(n):
        h = np.tanh(h @ W + 1)
        out.append(h)
    return out


def test_sequences_are_read_up_to_the_count_and_checked_at_the_call(target):
    X, h0, k = G.dmatrix("X"), G.dvector("h0"), G.iscalar("k")
    total = G.shared(np.zeros(3), name="total")
    ys, _ = G.scan(lambda x, h: h + x, sequences=X, outputs_info=h0, n_steps=k)
    f = G.function([X, k, h0], ys, updates={total: ys[-1]}, target=target)
    x = np.arange(15.0).reshape(5, 3)
    np.testing.assert_allclose(f(x, 2, np.zeros(3)), np.cumsum(x[:2], axis=0))
    np.testing.assert_allclose(total.get_value(), x[:2].sum(0))
    with pytest.raises(G.InputError, match=r"sequences\[0\] \(X\) has 5 entries .* n_steps = k = 7"):
        f(x, 7, np.zeros(3))
    np.testing.assert_allclose(total.get_value(), x[:2].sum(0))  # the failed call changed nothing


def test_backwards_with_a_run_time_count(target):
    X, k = G.dmatrix("X"), G.iscalar("k")
    ys, _ = G.scan(lambda x: x * 2, sequences=X, n_steps=k, go_backwards=True)
    f = G.function([X, k], ys, target=target)
    x = np.arange(12.0).reshape(4, 3)
    np.testing.assert_allclose(f(x, 3), 2 * x[:3][::-1])


def test_a_non_integer_count_is_refused():
    with pytest.raises(G.GraphcTypeError, match=r"n_steps = n is float32\[\]; pass an integer"):
        G.scan(lambda: G.constant(1.0), n_steps=G.scalar("n", dtype="float32"))
    with pytest.raises(G.GraphcTypeError, match=r"n_steps = v is int64\[_d\d+\]; pass an integer scalar"):
        G.scan(lambda: G.constant(1.0), n_steps=G.lvector("v"))
