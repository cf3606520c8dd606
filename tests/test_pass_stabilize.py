"""Tests of stabilize: numerically stable forms (log_softmax, log1p, sigmoid, cross-entropy).

Helpers: tests/pass_helpers.py."""
import numpy as np
import pytest

import graphc as G

from pass_helpers import (  # noqa: F401  (no_artifact_hits: an autouse fixture)
    no_artifact_hits, graph_level, op_names, primitives, ref)


# Each input makes the form as written overflow to inf/nan (the py reference at O0 shows it);
# the default compile must be finite and match a float64 numpy formula that is stable.

def _stable_tol(dtype):
    return dict(rtol=2e-6, atol=1e-30) if dtype == "float32" else dict(rtol=1e-12, atol=1e-300)


def _log_softmax64(x):
    x = x.astype("float64")
    s = x - x.max(axis=-1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


def test_log_softmax_of_large_logits(dtype):
    x = G.matrix("x", dtype)
    xv = np.array([[1000.0, -1000.0, 0.0, 3.0],
                   [100.0, -100.0, 3.0, 0.0],
                   [-500.0, 700.0, 690.0, 0.5],
                   [0.5, 1.0, 2.0, -1.0]], dtype)
    out = G.log(G.softmax(x))
    naive = ref([x], out, xv)
    assert not np.isfinite(naive).all()
    f = G.function([x], out)
    assert "LogSoftmax" in op_names(f) and "Softmax" not in op_names(f)
    got = f(xv)
    assert got.dtype == np.dtype(dtype) and np.isfinite(got).all()
    # Absolute error within a few ulps of the largest logit (see the xfail below for better).
    atol = 4 * np.finfo(dtype).eps * np.abs(xv).max()
    np.testing.assert_allclose(got, _log_softmax64(xv), rtol=_stable_tol(dtype)["rtol"], atol=atol)


@pytest.mark.parametrize("which", ["log_softmax", "xent"])
def test_log_softmax_of_the_max_logit_is_precise(which):
    z = np.array([[700.0, 690.0, -500.0], [-1000.0, 990.0, 1000.0]], "float32")
    want = _log_softmax64(z)[[0, 1], [0, 2]]  # -4.54e-5 each: both rows pick their largest
    x = G.matrix("x", "float32")
    if which == "log_softmax":
        out = G.log_softmax(x)[G.arange(2), G.constant(np.array([0, 2]))]
        sign = 1.0
    else:
        out = G.categorical_crossentropy(G.softmax(x), G.constant(np.array([0, 2])))
        sign = -1.0
    np.testing.assert_allclose(ref([x], out, z) * sign, want, rtol=1e-3)  # the oracle is precise
    np.testing.assert_allclose(G.function([x], out)(z) * sign, want, rtol=1e-3)


def test_log_of_one_plus_tiny_x_is_log1p(dtype):
    x = G.vector("x", dtype)
    xv = np.array([1e-10, -1e-10, 1e-12, 3e-8, 1e-3, 0.5], dtype)
    out = G.log(1 + x)
    want = np.log1p(xv.astype("float64"))
    naive = ref([x], out, xv)
    f = graph_level([x], out)
    assert op_names(f) == ["log1p"]
    got = f(xv)
    if dtype == "float32":
        assert naive[0] == 0.0  # 1 + 1e-10 rounds to 1
        np.testing.assert_allclose(got, want, rtol=1e-6)
    else:
        assert abs(naive[0] / want[0] - 1) > 1e-9  # ~8e-8 relative error as written
        np.testing.assert_allclose(got, want, rtol=1e-14)


def test_log_sigmoid_and_log_one_minus_sigmoid(dtype):
    x = G.vector("x", dtype)
    xv = np.array([-1000.0, -100.0, -30.0, 0.0, 30.0, 100.0, 1000.0], dtype)
    x64 = xv.astype("float64")
    cases = [(G.log(G.sigmoid(x)), -np.logaddexp(0.0, -x64)),       # log sigmoid(x)
             (G.log(1 - G.sigmoid(x)), -np.logaddexp(0.0, x64))]     # log(1 - sigmoid(x))
    for out, want in cases:
        assert not np.isfinite(ref([x], out, xv)).all()
        f = graph_level([x], out)
        assert "log" not in primitives(f) and "softplus" in primitives(f), op_names(f)
        got = f(xv)
        assert np.isfinite(got).all(), got
        np.testing.assert_allclose(got, want, **_stable_tol(dtype))


def _sigmoid64(x):
    x = x.astype("float64")
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def test_one_over_one_plus_exp_is_sigmoid(dtype):
    x = G.vector("x", dtype)
    xv = np.array([-1000.0, -100.0, -10.0, 0.0, 10.0, 100.0, 1000.0], dtype)
    out = 1 / (1 + G.exp(-x))
    f = graph_level([x], out)
    assert op_names(f) == ["sigmoid"]
    # Values: exact where representable (float32 may flush exp(-100) to 0, hence atol).
    np.testing.assert_allclose(f(xv), _sigmoid64(xv), rtol=2e-6 if dtype == "float32" else 1e-15,
                               atol=1e-37 if dtype == "float32" else 1e-300)
    # log of it: -inf as written, exactly -softplus(-x) once rewritten.
    lg = G.log(out)
    assert not np.isfinite(ref([x], lg, xv)).all()
    got = graph_level([x], lg)(xv)
    np.testing.assert_allclose(got, -np.logaddexp(0.0, -xv.astype("float64")), **_stable_tol(dtype))
    # Gradient: exp(-x) / (1 + exp(-x))**2 as written is inf/inf = nan at x = -1000.
    naive_grad = G.exp(-x) / (1 + G.exp(-x)) ** 2
    assert np.isnan(ref([x], naive_grad, xv)).any()
    g = graph_level([x], G.grad(out.sum(), x))(xv)
    s = _sigmoid64(xv)
    assert np.isfinite(g).all(), g
    # Absolute accuracy: the gradient is s * (1 - s), rounded near s = 1 (see the xfail below).
    np.testing.assert_allclose(g, s * (1 - s), rtol=_stable_tol(dtype)["rtol"],
                               atol=2 * np.finfo(dtype).eps)


def test_sigmoid_gradient_is_read_from_the_output_precisely_for_large_x(dtype):
    """The gradient is y (1 - y) from the output (no exp: a scan's BPTT reads the saved y), as
    Theano and PyTorch: relatively precise for x < 0, absolutely (to eps / 2) for x > 0, and
    exactly 0 where y rounds to 1, the right limit (s(x) s(-x) was relatively precise there)."""
    x = G.vector("x", dtype)
    xv = np.array([-30.0, -15.0, 15.0, 30.0] if dtype == "float32" else [-40.0, -30.0, 30.0, 40.0],
                  dtype)
    g = G.function([x], G.grad(G.sigmoid(x).sum(), x))(xv)
    want = _sigmoid64(xv) * _sigmoid64(-xv)
    np.testing.assert_allclose(g[:2], want[:2], rtol=1e-4)
    np.testing.assert_allclose(g[2:], want[2:], rtol=0, atol=np.finfo(dtype).eps / 2)
    assert g[3] == 0


def _xent_inputs(dtype):
    z = np.array([[1000.0, -1000.0, 0.0, 500.0],
                  [-800.0, 0.0, 800.0, 0.0],
                  [1.0, 2.0, 3.0, 4.0],
                  [90.0, -90.0, 89.0, 0.0]], dtype)
    y = np.array([1, 2, 0, 3], "int64")
    ls = _log_softmax64(z)
    loss = -ls[np.arange(4), y].mean()
    grad = (np.exp(ls) - np.eye(4)[y]) / 4
    return z, y, loss, grad


@pytest.mark.parametrize("target", ["labels", "onehot"])
def test_categorical_crossentropy_of_softmax_large_logits(dtype, target):
    zv, yv, want_loss, want_grad = _xent_inputs(dtype)
    z = G.matrix("z", dtype)
    if target == "labels":
        t, tv = G.vector("y", "int64"), yv
    else:
        t, tv = G.matrix("t", dtype), np.eye(4, dtype=dtype)[yv]
    loss = G.categorical_crossentropy(G.softmax(z), t).mean()
    gz = G.grad(loss, z)
    naive = ref([z, t], loss, zv, tv)
    assert not np.isfinite(naive)
    # C for the labels (the stable kernel's numbers), the graph level for the one-hot targets.
    f = G.function([z, t], [loss, gz], backend="c" if target == "labels" else "py")
    names = op_names(f)
    assert "Softmax" not in names and "log" not in names, names
    got_loss, got_grad = f(zv, tv)
    assert np.isfinite(got_loss) and np.isfinite(got_grad).all()
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got_loss, want_loss, **tol)
    np.testing.assert_allclose(got_grad, want_grad, **tol)  # (softmax - onehot) / N
    np.testing.assert_allclose(got_grad.sum(axis=1), 0, atol=tol["atol"] * 10)


def test_stabilized_gradient_at_O0_and_O1_too(dtype):
    """grad differentiates the stabilized cost, so the gradient is finite at every level."""
    zv, yv, _, want_grad = _xent_inputs(dtype)
    z, y = G.matrix("z", dtype), G.vector("y", "int64")
    gz = G.grad(G.categorical_crossentropy(G.softmax(z), y).mean(), z)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-15)
    for level in ("O0", "O1"):
        np.testing.assert_allclose(graph_level([z, y], gz, opt_level=level)(zv, yv), want_grad, **tol)
