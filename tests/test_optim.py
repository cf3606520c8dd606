"""graphc.optim: every solver's update against a numpy implementation of Caffe's formula, lr
policies against Caffe's formulas, multipliers (lr_mult 0 freezes), weight decay, clipping,
gradient accumulation, state round trip. Formula checks run the graph on the py backend in
float64; one C-backend test compiles all six rules together in float32."""
import math

import numpy as np
import pytest

import graphc as G
from graphc import optim

PY = {"backend": "py"}
RNG = np.random.RandomState(0)
XS = [RNG.randn(8, 3) for _ in range(6)]
YS = [RNG.randn(8, 2) for _ in range(6)]
W0, B0 = RNG.randn(3, 2), RNG.randn(2)


def problem(dtype="float64"):
    """Least squares: loss = 0.5 * mean_n ||x_n W + b - y_n||^2 (gradient known in closed form)."""
    w = G.shared(W0.astype(dtype), name="w")
    b = G.shared(B0.astype(dtype), name="b")
    x = G.tensor("x", (G.dim("n"), 3), dtype)
    y = G.tensor("y", (G.dim("n"), 2), dtype)
    r = G.dot(x, w) + b - y
    loss = 0.5 * G.mean(G.sum(r * r, axis=1))
    return w, b, x, y, loss


def np_grads(w, b, x, y):
    r = x @ w + b - y
    return x.T @ r / len(x), r.sum(0) / len(x)


def np_rule(kind, p, g, st, lr, hp, t):
    """Caffe's ComputeUpdateValue + Update for one parameter (numpy, float64)."""
    if kind == "sgd":
        v = hp.get("momentum", 0.0) * st.get("v", 0.0) + lr * g
        st["v"] = v
        return p - v
    if kind == "nesterov":
        v_old = st.get("v", 0.0)
        v = hp["momentum"] * v_old + lr * g
        st["v"] = v
        return p - ((1 + hp["momentum"]) * v - hp["momentum"] * v_old)
    if kind == "adagrad":
        st["h"] = st.get("h", 0.0) + g * g
        return p - lr * g / (np.sqrt(st["h"]) + hp["delta"])
    if kind == "rmsprop":
        st["h"] = hp["rms_decay"] * st.get("h", 0.0) + (1 - hp["rms_decay"]) * g * g
        return p - lr * g / (np.sqrt(st["h"]) + hp["delta"])
    if kind == "adadelta":
        mu, d = hp["momentum"], hp["delta"]
        st["h"] = mu * st.get("h", 0.0) + (1 - mu) * g * g
        u = g * np.sqrt((st.get("h2", 0.0) + d) / (st["h"] + d))
        st["h2"] = mu * st.get("h2", 0.0) + (1 - mu) * u * u
        return p - lr * u
    if kind == "adam":
        b1, b2 = hp["beta1"], hp["beta2"]
        st["m"] = b1 * st.get("m", 0.0) + (1 - b1) * g
        st["v"] = b2 * st.get("v", 0.0) + (1 - b2) * g * g
        corr = math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        return p - lr * corr * st["m"] / (np.sqrt(st["v"]) + hp["delta"])
    raise AssertionError(kind)


SOLVER_CASES = [
    ("sgd", optim.SGD, {"momentum": 0.9}),
    ("nesterov", optim.Nesterov, {"momentum": 0.9}),
    ("adagrad", optim.AdaGrad, {"delta": 1e-8}),
    ("rmsprop", optim.RMSProp, {"rms_decay": 0.98, "delta": 1e-8}),
    ("adadelta", optim.AdaDelta, {"momentum": 0.95, "delta": 1e-6}),
    ("adam", optim.Adam, {"beta1": 0.9, "beta2": 0.999, "delta": 1e-8}),
]


@pytest.mark.parametrize("kind,cls,hp", SOLVER_CASES, ids=[c[0] for c in SOLVER_CASES])
def test_solver_matches_numpy_formula(kind, cls, hp):
    """Four steps with an 'inv' lr policy, L2 weight decay, lr_mult 2 / decay_mult 0 on the
    bias (Caffe's usual bias setting)."""
    w, b, x, y, loss = problem()
    policy = optim.Inv(0.05, gamma=0.1, power=0.75)
    solver = cls({"w": w, "b": b}, lr=policy, weight_decay=0.01, lr_mult={"b": 2.0},
                 decay_mult={"b": 0.0}, **hp)
    step = solver.compile([x, y], loss, **PY)
    pw, pb, sw, sb = W0.copy(), B0.copy(), {}, {}
    for it in range(4):
        lr = 0.05 * (1 + 0.1 * it) ** -0.75
        gw, gb = np_grads(pw, pb, XS[it], YS[it])
        gw = gw + 0.01 * pw
        expected_loss = 0.5 * np.mean(np.sum((XS[it] @ pw + pb - YS[it]) ** 2, 1))
        pw = np_rule(kind, pw, gw, sw, lr, hp, it + 1)
        pb = np_rule(kind, pb, gb, sb, 2 * lr, hp, it + 1)
        got = step(XS[it], YS[it])
        assert got == pytest.approx(expected_loss, rel=1e-12)
        np.testing.assert_allclose(w.get_value(), pw, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(b.get_value(), pb, rtol=1e-10, atol=1e-13)
    assert solver.iter == 4
    assert set(solver.state_dict()) >= {"iter"}


def test_all_rules_compiled_c_float32():
    """All six rules in one compiled (C) function, float32, against the float64 numpy formula."""
    pieces, refs, upd = [], [], {}
    x = G.tensor("x", (G.dim("n"), 3), "float32")
    y = G.tensor("y", (G.dim("n"), 2), "float32")
    for kind, cls, hp in SOLVER_CASES:
        w = G.shared(W0.astype("float32"), name=f"w_{kind}")
        r = G.dot(x, w) - y
        loss = 0.5 * G.mean(G.sum(r * r, axis=1))
        solver = cls({"w": w}, lr=0.01, **hp)
        upd.update(solver.updates(loss))
        pieces.append((kind, hp, w, solver))
    f = G.function([x, y], [], updates=upd, name="all_rules")
    states = {k: ({}, W0.copy()) for k, _, _ in SOLVER_CASES}
    for it in range(3):
        for _, _, _, s in pieces:
            s.set_lr()
        f(XS[it].astype("float32"), YS[it].astype("float32"))
        for kind, hp, w, s in pieces:
            st, pw = states[kind]
            gw, _ = np_grads(pw, 0.0, XS[it], YS[it])
            pw = np_rule(kind, pw, gw, st, 0.01, hp, it + 1)
            states[kind] = (st, pw)
            np.testing.assert_allclose(w.get_value(), pw, rtol=2e-4, atol=1e-5, err_msg=kind)


def test_functional_rules_return_theano_updates():
    w, b, x, y, loss = problem()
    grads = G.grad(loss, [w, b])
    upd = optim.adam(grads, [w, b], lr=0.01)
    names = sorted(v.name for v in upd)
    assert names == ["adam.t", "b", "b.m", "b.v", "w", "w.m", "w.v"]
    f = G.function([x, y], loss, updates=upd, **PY)
    pw, sw = W0.copy(), {}
    hp = {"beta1": 0.9, "beta2": 0.999, "delta": 1e-8}
    for it in range(3):
        b_prev = b.get_value()
        gw, _ = np_grads(pw, b_prev, XS[it], YS[it])
        pw = np_rule("adam", pw, gw, sw, 0.01, hp, it + 1)
        f(XS[it], YS[it])
        np.testing.assert_allclose(w.get_value(), pw, rtol=1e-10)
    # a symbolic learning rate (an input) changes between calls without recompiling
    lr = G.scalar("lr", "float64")
    w2, b2, x2, y2, loss2 = problem()
    g2 = G.grad(loss2, [w2, b2])
    f2 = G.function([x2, y2, lr], loss2, updates=optim.sgd(g2, [w2, b2], lr), **PY)
    f2(XS[0], YS[0], 0.0)
    assert np.array_equal(w2.get_value(), W0)
    f2(XS[0], YS[0], 0.1)
    np.testing.assert_allclose(w2.get_value(), W0 - 0.1 * np_grads(W0, B0, XS[0], YS[0])[0])


# ---- learning-rate policies ----------------------------------------------------------------------
def test_lr_policies_match_caffe_formulas():
    base = 0.01
    its = [0, 1, 2, 9, 10, 11, 99, 100, 1000, 9999]
    cases = {
        "fixed": (optim.Fixed(base), lambda i: base),
        "step": (optim.Step(base, gamma=0.1, stepsize=10), lambda i: base * 0.1 ** (i // 10)),
        "exp": (optim.Exp(base, gamma=0.999), lambda i: base * 0.999 ** i),
        "inv": (optim.Inv(base, gamma=1e-4, power=0.75), lambda i: base * (1 + 1e-4 * i) ** -0.75),
        "multistep": (optim.MultiStep(base, gamma=0.5, stepvalues=[10, 100, 1000]),
                      lambda i: base * 0.5 ** sum(i >= s for s in (10, 100, 1000))),
        "poly": (optim.Poly(base, power=2.0, max_iter=10000), lambda i: base * (1 - i / 10000) ** 2),
        "sigmoid": (optim.Sigmoid(base, gamma=-0.01, stepsize=100),
                    lambda i: base / (1 + math.exp(0.01 * (i - 100)))),
    }
    for name, (policy, formula) in cases.items():
        for i in its:
            assert policy(i) == pytest.approx(formula(i), rel=1e-15, abs=0), (name, i)
    # Caffe's LeNet solver: inv, gamma 1e-4, power 0.75 -> lr at iteration 100 and 10000
    lenet = optim.make_policy({"lr_policy": "inv", "base_lr": 0.01, "gamma": 1e-4, "power": 0.75})
    assert lenet(100) == pytest.approx(0.00992565, rel=1e-6)     # Caffe's log: 0.00992565
    assert lenet(10000) == pytest.approx(0.01 * 2 ** -0.75, rel=1e-15)
    assert optim.make_policy(0.1)(123) == 0.1
    assert optim.make_policy("step", base_lr=1.0, gamma=0.5, stepsize=2)(5) == 0.25
    with pytest.raises(ValueError, match="unknown lr policy"):
        optim.make_policy("cosine", base_lr=0.1)
    with pytest.raises(ValueError, match="stepvalues must increase"):
        optim.MultiStep(0.1, 0.1, [5, 3])


def test_lr_policy_drives_the_compiled_step_exactly():
    w, b, x, y, loss = problem()
    policy = optim.Step(0.1, gamma=0.5, stepsize=2)
    solver = optim.SGD({"w": w, "b": b}, lr=policy)
    step = solver.compile([x, y], loss, **PY)
    pw, pb = W0.copy(), B0.copy()
    for it in range(5):
        gw, gb = np_grads(pw, pb, XS[it], YS[it])
        lr = 0.1 * 0.5 ** (it // 2)
        assert solver.lr == lr
        pw, pb = pw - lr * gw, pb - lr * gb
        step(XS[it], YS[it])
        assert float(solver.lr_var.get_value()) == lr
    np.testing.assert_allclose(w.get_value(), pw, rtol=1e-12)


# ---- multipliers, decay, clipping, accumulation ----------------------------------------------------
def test_lr_mult_zero_freezes():
    w, b, x, y, loss = problem()
    solver = optim.SGD({"w": w, "b": b}, lr=0.1, momentum=0.9, weight_decay=0.1,
                       lr_mult={"w": 0.0})
    assert solver.frozen == ["w"] and solver.trained == ["b"]
    step = solver.compile([x, y], loss, **PY)
    for it in range(3):
        step(XS[it], YS[it])
    assert np.array_equal(w.get_value(), W0)               # untouched, even by weight decay
    assert not np.array_equal(b.get_value(), B0)
    assert "w.momentum" not in solver.state_dict()          # no state for a frozen parameter


def test_l1_decay_and_decay_mult():
    w, b, x, y, loss = problem()
    solver = optim.SGD({"w": w, "b": b}, lr=0.1, weight_decay=0.5, regularization="L1",
                       decay_mult={"w": 2.0})
    solver.compile([x, y], loss, **PY)(XS[0], YS[0])
    gw, gb = np_grads(W0, B0, XS[0], YS[0])
    np.testing.assert_allclose(w.get_value(), W0 - 0.1 * (gw + 1.0 * np.sign(W0)), rtol=1e-12)
    np.testing.assert_allclose(b.get_value(), B0 - 0.1 * (gb + 0.5 * np.sign(B0)), rtol=1e-12)


@pytest.mark.parametrize("clip", [1e-3, 1e3])
def test_clip_gradients_by_global_norm(clip):
    w, b, x, y, loss = problem()
    solver = optim.SGD({"w": w, "b": b}, lr=0.1, clip_gradients=clip)
    solver.compile([x, y], loss, **PY)(XS[0], YS[0])
    gw, gb = np_grads(W0, B0, XS[0], YS[0])
    norm = np.sqrt((gw ** 2).sum() + (gb ** 2).sum())
    scale = min(1.0, clip / norm)
    np.testing.assert_allclose(w.get_value(), W0 - 0.1 * scale * gw, rtol=1e-10)
    np.testing.assert_allclose(b.get_value(), B0 - 0.1 * scale * gb, rtol=1e-10)


def test_gradient_accumulation_equals_big_batch():
    """iter_size=3 over three mini-batches of 8 == one step on the 24 examples (mean loss)."""
    results = []
    for iter_size in (1, 3):
        w, b, x, y, loss = problem()
        solver = optim.Nesterov({"w": w, "b": b}, lr=0.05, momentum=0.9, weight_decay=0.01,
                                iter_size=iter_size)
        step = solver.compile([x, y], loss, **PY)
        losses = []
        for it in range(2):
            xs, ys = XS[3 * it:3 * it + 3], YS[3 * it:3 * it + 3]
            if iter_size == 1:
                losses.append(step(np.concatenate(xs), np.concatenate(ys)))
            else:
                losses.append(step.iteration(list(zip(xs, ys))))
        assert solver.iter == 2
        results.append((w.get_value(), b.get_value(), losses))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-12)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-12)
    np.testing.assert_allclose(results[0][2], results[1][2], rtol=1e-12)
    with pytest.raises(ValueError, match="iter_size"):
        step(XS[0], YS[0])


def test_solver_state_roundtrip_continues_identically():
    def run(n, state=None):
        w, b, x, y, loss = problem()
        s = optim.Adam({"w": w, "b": b}, lr=0.01)
        step = s.compile([x, y], loss, **PY)
        if state is not None:
            ws, bs, ss = state
            w.set_value(ws)
            b.set_value(bs)
            s.load_state_dict(ss)
        for it in range(s.iter, n):
            step(XS[it], YS[it])
        return w.get_value(), b.get_value(), s.state_dict()

    full = run(5)
    half = run(2)
    resumed = run(5, half)
    assert half[2]["iter"] == 2 and sorted(half[2]) == ["b.m", "b.v", "iter", "w.m", "w.v"]
    assert np.array_equal(full[0], resumed[0]) and np.array_equal(full[1], resumed[1])


def test_solver_argument_errors():
    w, b, x, y, loss = problem()
    with pytest.raises(TypeError, match="unknown hyperparameters"):
        optim.SGD({"w": w}, lr=0.1, momentun=0.9)
    with pytest.raises(KeyError, match="unknown parameters"):
        optim.SGD({"w": w}, lr=0.1, lr_mult={"v": 0})
    with pytest.raises(ValueError, match="clip_gradients"):
        optim.SGD({"w": w}, clip_gradients=-1)
    assert isinstance(optim.make_solver("adam", {"w": w}), optim.Adam)
    assert optim.Adam({"w": w}, momentum=0.8, momentum2=0.99).hyper["beta2"] == 0.99
