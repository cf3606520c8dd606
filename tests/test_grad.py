"""graphc.grad: weight sharing, consider_constant, known_grads, scatter-add through gathers, all
checked against gradients written out by hand in numpy."""
import numpy as np
import pytest

import graphc as G


def _both(inputs, outputs, args):
    """Results of the compiled C function, checked against the py reference backend."""
    c = G.function(inputs, outputs, backend="c")(*args)
    py = G.function(inputs, outputs, backend="py")(*args)
    for a, b in zip(c if isinstance(c, list) else [c], py if isinstance(py, list) else [py]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    return c


def test_variable_used_twice_gets_the_sum_of_its_gradients():
    rng = np.random.RandomState(0)
    x = G.vector("x")
    w = G.vector("w")
    cost = (w * x).sum() + (w ** 2).sum() + G.tanh(w).sum()
    xv = rng.randn(5).astype("float32")
    wv = rng.randn(5).astype("float32")
    got = _both([x, w], G.grad(cost, w), [xv, wv])
    expected = xv + 2 * wv + (1 - np.tanh(wv) ** 2)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_shared_weight_in_two_layers():
    """h = tanh(x W), out = h W: W's gradient is the sum over both uses."""
    rng = np.random.RandomState(1)
    Wv = (rng.randn(4, 4) * 0.5).astype("float64")
    W = G.shared(Wv, name="W")
    x = G.dmatrix("x")
    h = G.tanh(G.dot(x, W))
    cost = (G.dot(h, W) ** 2).sum() / 2
    xv = rng.randn(3, 4)
    got = _both([x], G.grad(cost, W), [xv])
    hv = np.tanh(xv @ Wv)
    out = hv @ Wv
    g_out = out
    g_second = hv.T @ g_out
    g_h = g_out @ Wv.T
    g_first = xv.T @ (g_h * (1 - hv ** 2))
    np.testing.assert_allclose(got, g_first + g_second, rtol=1e-10)


def test_gradients_of_several_wrt_at_once():
    a = G.dscalar("a")
    b = G.dvector("b")
    cost = (a * b).sum() * a + (b * b).sum()
    ga, gb = G.grad(cost, [a, b])
    bv = np.array([1.0, -2.0, 0.5])
    got_a, got_b = _both([a, b], [ga, gb], [3.0, bv])
    np.testing.assert_allclose(got_a, 2 * 3.0 * bv.sum())
    np.testing.assert_allclose(got_b, 3.0 ** 2 + 2 * bv)


def test_consider_constant_cuts_the_gradient():
    x = G.vector("x")
    q = G.exp(x)
    cost = (q * x).sum()
    xv = np.array([-1.0, 0.5, 2.0], "float32")
    full, cut = _both([x], [G.grad(cost, x), G.grad(cost, x, consider_constant=[q])], [xv])
    np.testing.assert_allclose(full, np.exp(xv) * (1 + xv), rtol=1e-5)
    np.testing.assert_allclose(cut, np.exp(xv), rtol=1e-5)


def test_consider_constant_on_a_shared_expression():
    w = G.shared(np.array([1.0, 2.0, 3.0], "float32"), name="w")
    target = w * 2  # a "target network": its gradient must not flow
    cost = ((w - target) ** 2).sum()
    g = G.grad(cost, w, consider_constant=[target])
    got = _both([], g, [])
    wv = w.get_value()
    np.testing.assert_allclose(got, 2 * (wv - 2 * wv), rtol=1e-6)


def test_consider_constant_survives_stabilization():
    """p = 1 / (1 + exp(-x)) is rewritten into a sigmoid before differentiating; the cut must
    still apply to it (it used to be lost with the rewritten node)."""
    x = G.vector("x")
    p = 1 / (1 + G.exp(-x))
    cost = (p * x).sum()
    xv = np.array([-1.0, 0.5, 2.0], "float32")
    pv = 1 / (1 + np.exp(-xv.astype("float64")))
    got = _both([x], G.grad(cost, x, consider_constant=[p]), [xv])
    np.testing.assert_allclose(got, pv, rtol=1e-5)
    full = _both([x], G.grad(cost, x), [xv])
    np.testing.assert_allclose(full, pv + xv * pv * (1 - pv), rtol=1e-5)


def test_consider_constant_keeps_the_rest_stable():
    """A cut elsewhere in the graph does not turn stabilization off: the gradient of
    -log(1 - sigmoid(z)) stays finite where sigmoid(z) rounds to 1 in float32."""
    x = G.vector("x")
    w = G.scalar("w")
    z = x * w
    p = 1 / (1 + G.exp(-z))
    c = G.exp(x * 0.01)
    cost = -G.log(1 - p).sum() + (c * w).sum()
    g = G.grad(cost, w, consider_constant=[c])
    xv = np.array([40.0, 60.0, -3.0], "float32")
    got = _both([x, w], g, [xv, np.float32(1.0)])
    xd = xv.astype("float64")
    expected = (xd / (1 + np.exp(-xd))).sum() + np.exp(xd * 0.01).sum()
    assert np.isfinite(got)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_known_grads_adds_to_an_intermediate():
    x = G.vector("x")
    p = 1 / (1 + G.exp(-x))
    cost = (p * x).sum()
    extra = G.constant(np.array([1.0, 2.0, -1.0], "float32"))
    g = G.grad(cost, x, known_grads={p: extra})
    xv = np.array([-1.0, 0.5, 2.0], "float32")
    pv = 1 / (1 + np.exp(-xv.astype("float64")))
    d = pv * (1 - pv)
    got = _both([x], g, [xv])
    np.testing.assert_allclose(got, pv + xv * d + np.array([1.0, 2.0, -1.0]) * d, rtol=1e-5)


def test_grad_wrt_an_intermediate_variable():
    x = G.vector("x")
    h = x * 3
    cost = -G.log(1 - 1 / (1 + G.exp(-h))).sum()
    gh = G.grad(cost, h)
    xv = np.array([-1.0, 0.0, 2.0], "float32")
    hv = 3 * xv.astype("float64")
    got = _both([x], gh, [xv])
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-hv)), rtol=1e-5)


# --- gathers and their gradient (scatter-add) ----------------------------------------------

@pytest.fixture(scope="module", params=["py", "c"])
def gather_grad(request):
    x = G.vector("x")
    idx = G.lvector("idx")
    r = G.vector("r")
    cost = (x[idx] * r).sum()
    return G.function([x, idx, r], [cost, G.grad(cost, x)], backend=request.param)


@pytest.mark.parametrize("idx", [[0, 2, 0, 0], [4, 4, 4, 4], [1, -1, 4, -5], [3]])
def test_repeated_indices_accumulate(gather_grad, idx):
    rng = np.random.RandomState(len(idx))
    xv = rng.randn(5).astype("float32")
    iv = np.array(idx, "int64")
    rv = rng.randn(len(idx)).astype("float32")
    cost, g = gather_grad(xv, iv, rv)
    np.testing.assert_allclose(cost, (xv[iv] * rv).sum(), rtol=1e-5)
    expected = np.zeros(5, "float64")
    np.add.at(expected, iv, rv)
    np.testing.assert_allclose(g, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", ["py", "c"])
def test_embedding_rows_with_repeats(backend):
    rng = np.random.RandomState(3)
    E = G.shared(rng.randn(6, 3).astype("float64"), name="E")
    tokens = G.lmatrix("tokens")
    emb = E[tokens]                   # (batch, seq, 3)
    cost = (emb.sum(axis=1) ** 2).sum()
    gE = G.grad(cost, E)
    tv = np.array([[0, 5, 0], [2, 2, 2]])
    got = G.function([tokens], gE, backend=backend)(tv)
    Ev = E.get_value()
    s = Ev[tv].sum(axis=1)            # (batch, 3)
    g_emb = np.broadcast_to((2 * s)[:, None, :], (2, 3, 3))
    expected = np.zeros_like(Ev)
    np.add.at(expected, tv, g_emb)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    assert np.count_nonzero(np.abs(got).sum(axis=1)) == 3  # rows 0, 2, 5 only


def test_sgd_step_through_a_gather_uses_old_values():
    """An update computed from a gather's gradient; every row hit twice moves twice as far."""
    W = G.shared(np.zeros((4, 2), "float32"), name="W")
    idx = G.lvector("idx")
    cost = W[idx].sum()
    step = G.function([idx], cost, updates={W: W - 0.5 * G.grad(cost, W)})
    assert step(np.array([1, 1, 3])) == 0.0
    np.testing.assert_array_equal(W.get_value(), [[0, 0], [-1, -1], [0, 0], [-0.5, -0.5]])
    assert step(np.array([1])) == -2.0
