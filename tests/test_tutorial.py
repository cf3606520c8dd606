"""The Theano logistic-regression tutorial, run on the py reference and the compiled C backend."""
import numpy as np
import pytest

import graphc as G

STEPS = 100


def _build(backend):
    rng = np.random.RandomState(123)
    N, feats = 400, 100
    D = (rng.randn(N, feats).astype("float32"), rng.randint(size=N, low=0, high=2).astype("float32"))
    x = G.matrix("x")
    y = G.vector("y")
    w = G.shared(rng.randn(100).astype("float32"), name="w")
    b = G.shared(np.float32(0.0), name="b")
    p_1 = 1 / (1 + G.exp(-G.dot(x, w) - b))
    xent = -y * G.log(p_1) - (1 - y) * G.log(1 - p_1)
    cost = xent.mean() + 0.01 * (w ** 2).sum()
    gw, gb = G.grad(cost, [w, b])
    train = G.function(inputs=[x, y], outputs=[p_1 > 0.5, xent],
                       updates={w: w - 0.1 * gw, b: b - 0.1 * gb}, backend=backend)
    return D, w, b, train


@pytest.fixture(scope="module")
def runs():
    """Both backends trained side by side for STEPS steps; every step's outputs kept."""
    built = {be: _build(be) for be in ("py", "c")}
    D = built["py"][0]
    np.testing.assert_array_equal(D[0], built["c"][0][0])
    np.testing.assert_array_equal(D[1], built["c"][0][1])
    np.testing.assert_array_equal(built["py"][1].get_value(), built["c"][1].get_value())
    w0 = built["py"][1].get_value()
    hist = {"py": [], "c": []}
    for _ in range(STEPS):
        for be in ("py", "c"):
            pred, xent = built[be][3](*D)
            hist[be].append((pred, xent))
    return D, built, hist, w0


def test_initial_state_matches_tutorial(runs):
    D, built, _, w0 = runs
    assert D[0].shape == (400, 100) and D[1].shape == (400,)
    assert w0.dtype == np.float32 and w0.shape == (100,)
    for be in ("py", "c"):
        w, b = built[be][1], built[be][2]
        assert w.dtype == "float32" and b.dtype == "float32" and b.get_value().shape == ()


def test_outputs_agree_every_step(runs):
    _, _, hist, _ = runs
    for step, ((p_py, x_py), (p_c, x_c)) in enumerate(zip(hist["py"], hist["c"])):
        assert p_c.dtype == np.bool_ and p_py.dtype == np.bool_, step
        assert x_c.dtype == np.float32 and x_py.dtype == np.float32, step
        assert p_c.shape == (400,) and x_c.shape == (400,), step
        np.testing.assert_array_equal(p_c, p_py, err_msg=f"step {step}")
        np.testing.assert_allclose(x_c, x_py, rtol=1e-5, atol=1e-6, err_msg=f"step {step}")


def test_trained_parameters_agree(runs):
    _, built, _, w0 = runs
    w_py, w_c = built["py"][1].get_value(), built["c"][1].get_value()
    b_py, b_c = built["py"][2].get_value(), built["c"][2].get_value()
    assert w_c.dtype == np.float32 and b_c.dtype == np.float32
    np.testing.assert_allclose(w_c, w_py, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b_c, b_py, rtol=1e-5, atol=1e-6)
    assert not np.allclose(w_c, w0)  # the updates really happened


def _numpy_training():
    """An independent float64 numpy implementation of the same 100 steps."""
    rng = np.random.RandomState(123)
    X = rng.randn(400, 100).astype("float32").astype("float64")
    Y = rng.randint(size=400, low=0, high=2).astype("float32").astype("float64")
    w = rng.randn(100).astype("float32").astype("float64")
    b = 0.0
    for _ in range(STEPS):
        p = 1 / (1 + np.exp(-(X @ w) - b))
        gz = (p - Y) / len(Y)
        w, b = w - 0.1 * (X.T @ gz + 0.02 * w), b - 0.1 * gz.sum()
    return w, b


def test_against_numpy_reference(runs):
    _, built, _, _ = runs
    w_ref, b_ref = _numpy_training()
    np.testing.assert_allclose(built["c"][1].get_value(), w_ref, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(built["c"][2].get_value(), b_ref, rtol=1e-3, atol=1e-4)


def test_outputs_finite(runs):
    """|x.w| reaches ~30 here: sigmoid rounds to 1 in float32, so only a stabilized graph
    keeps log(1 - p_1) finite."""
    D, _, hist, w0 = runs
    assert np.abs(D[0] @ w0).max() > 20
    for be in ("py", "c"):
        for step, (_, xent) in enumerate(hist[be]):
            assert np.isfinite(xent).all(), (be, step)
            assert (xent >= 0).all(), (be, step)
    for be in ("py", "c"):
        _, w, b, _ = runs[1][be]
        assert np.isfinite(w.get_value()).all() and np.isfinite(b.get_value())


def test_accuracy_improves(runs):
    D, _, hist, _ = runs
    y = D[1].astype(bool)
    for be in ("py", "c"):
        first = (hist[be][0][0] == y).mean()
        last = (hist[be][-1][0] == y).mean()
        mean_first = hist[be][0][1].mean()
        mean_last = hist[be][-1][1].mean()
        assert last > first + 0.05, (be, first, last)
        assert mean_last < mean_first, (be, mean_first, mean_last)
