"""The gradient of scan (back-propagation through time): finite differences (verify_grad) on RNN,
LSTM and GRU cells, taps, go_backwards and a nested scan; float64 gradients equal to PyTorch
autograd's; truncate_gradient; the backward pass is one reverse loop that saves only histories."""
import numpy as np
import pytest

import graphc as G
from graphc.ir.ops.loop import Loop
from graphc.testing import verify_grad

H, D, B, T = 3, 2, 2, 4


def rnn_cell(x, h, W, U, b):
    return G.tanh(G.dot(x, W) + G.dot(h, U) + b)


def lstm_cell(x, h, c, W, U, b):
    """Gates i, f, g, o in PyTorch's order: W [D, 4H], U [H, 4H]."""
    z = G.dot(x, W) + G.dot(h, U) + b
    i, f = G.sigmoid(z[:, :H]), G.sigmoid(z[:, H:2 * H])
    g, o = G.tanh(z[:, 2 * H:3 * H]), G.sigmoid(z[:, 3 * H:])
    c_new = f * c + i * g
    return o * G.tanh(c_new), c_new


def gru_cell(x, h, W, U, b, bu):
    """PyTorch's GRU: r, z, n; n = tanh(x W_n + b_n + r * (h U_n + bu_n))."""
    gx, gh = G.dot(x, W) + b, G.dot(h, U) + bu
    r = G.sigmoid(gx[:, :H] + gh[:, :H])
    z = G.sigmoid(gx[:, H:2 * H] + gh[:, H:2 * H])
    n = G.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])
    return (1 - z) * n + z * h


def rnn(X, h0, W, U, b, **kw):
    hs, _ = G.scan(lambda x, h: rnn_cell(x, h, W, U, b), sequences=X, outputs_info=h0, **kw)
    return hs


def lstm(X, h0, c0, W, U, b):
    (hs, cs), _ = G.scan(lambda x, h, c: lstm_cell(x, h, c, W, U, b), sequences=X,
                         outputs_info=[h0, c0])
    return hs + 0.5 * cs


def gru(X, h0, W, U, b, bu):
    hs, _ = G.scan(lambda x, h: gru_cell(x, h, W, U, b, bu), sequences=X, outputs_info=h0)
    return hs


def _points(seed, *shapes):
    r = np.random.default_rng(seed)
    return [r.standard_normal(s) * 0.5 for s in shapes]


RNN_POINT = ((T, B, D), (B, H), (D, H), (H, H), (H,))
LSTM_POINT = ((T, B, D), (B, H), (B, H), (D, 4 * H), (H, 4 * H), (4 * H,))
GRU_POINT = ((T, B, D), (B, H), (D, 3 * H), (H, 3 * H), (3 * H,), (3 * H,))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_verify_grad_of_recurrent_cells(cell):
    fn, shapes = {"rnn": (rnn, RNN_POINT), "lstm": (lstm, LSTM_POINT),
                  "gru": (gru, GRU_POINT)}[cell]
    assert verify_grad(fn, _points(1, *shapes), backend="py")


def test_verify_grad_on_c_lstm():
    assert verify_grad(lstm, _points(2, *LSTM_POINT), backend="c")


def test_verify_grad_taps_backwards_and_nested():
    def taps(X, init, w):
        ys, _ = G.scan(lambda a, b, y2, y1: G.tanh(a * w + b - y2 * y1 * w),
                       sequences=dict(input=X, taps=[-2, 0]),
                       outputs_info=dict(initial=init, taps=[-2, -1]), go_backwards=True)
        return ys

    assert verify_grad(taps, _points(3, (7, 2), (2, 2), (2,)), backend="py")

    def nested(X, s0):
        def outer(m, s):
            inner, _ = G.scan(lambda row, acc: G.tanh(acc * row + row), sequences=m,
                              outputs_info=s)
            return inner[-1] * s
        ts, _ = G.scan(outer, sequences=X, outputs_info=s0)
        return ts

    assert verify_grad(nested, _points(4, (3, 4, 2), (2,)), backend="py")


def test_gradient_is_one_reverse_loop_over_saved_histories():
    X, h0 = G.tensor("X", (T, B, D), "float64"), G.dmatrix("h0")
    W, U, b = G.dmatrix("W"), G.dmatrix("U"), G.dvector("b")
    hs = rnn(X, h0, W, U, b)
    grads = G.grad(hs.sum(), [W, U, b, h0, X])
    loops = {n.owner for g in grads for n in [g] if n.owner is not None}
    from graphc.ir.graph import toposort
    nodes = [n for n in toposort(grads) if isinstance(n.op, Loop)]
    forward = [n for n in nodes if not n.op.reverse]
    backward = [n for n in nodes if n.op.reverse]
    assert len(forward) == 1 and len(backward) == 1 and loops
    assert forward[0] is hs.owner  # the forward scan is not run twice


def test_truncate_gradient_keeps_the_last_steps():
    k = 2
    X, h0 = G.tensor("X", (5, B, D), "float64"), G.dmatrix("h0")
    W, U, b = G.dmatrix("W"), G.dmatrix("U"), G.dvector("b")
    hs = rnn(X, h0, W, U, b, truncate_gradient=k)
    cost = (hs ** 2).sum()
    f = G.function([X, h0, W, U, b], [hs] + G.grad(cost, [W, X, h0]), backend="c")
    x, h, w, u, bb = _points(5, (5, B, D), (B, H), (D, H), (H, H), (H,))
    hs_v, gW, gX, gh0 = f(x, h, w, u, bb)
    # the same gradient from the last k steps alone, started from the state before them
    X2, hk = G.tensor("X2", (k, B, D), "float64"), G.dmatrix("hk")
    hs2 = rnn(X2, hk, W, U, b)
    f2 = G.function([X2, hk, W, U, b], G.grad((hs2 ** 2).sum(), [W, X2]), backend="py")
    gW2, gX2 = f2(x[-k:], hs_v[-k - 1], w, u, bb)
    np.testing.assert_allclose(gW, gW2, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gX[-k:], gX2, rtol=1e-12, atol=1e-12)
    assert not gX[:-k].any() and not gh0.any()


# --- against PyTorch autograd (float64) -------------------------------------------------------

def _torch():
    return pytest.importorskip("torch", reason="PyTorch (CPU) is the autograd oracle here")


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_gradients_equal_pytorch_autograd(cell):
    torch = _torch()
    r = np.random.default_rng(6)
    x, h0 = r.standard_normal((5, B, D)), r.standard_normal((B, H)) * 0.5
    mods = {"rnn": torch.nn.RNN(D, H), "lstm": torch.nn.LSTM(D, H), "gru": torch.nn.GRU(D, H)}
    m = mods[cell].double()
    xt, ht = torch.tensor(x, requires_grad=True), torch.tensor(h0[None], requires_grad=True)
    if cell == "lstm":
        c0 = r.standard_normal((B, H)) * 0.5
        ct = torch.tensor(c0[None], requires_grad=True)
        out, _ = m(xt, (ht, ct))
    else:
        out, _ = m(xt, ht)
    target = r.standard_normal(out.shape)
    loss = ((out - torch.tensor(target)) ** 2).sum() + out[-1].sum()
    loss.backward()
    Wih = np.ascontiguousarray(m.weight_ih_l0.detach().numpy().T)
    Whh = np.ascontiguousarray(m.weight_hh_l0.detach().numpy().T)
    bih, bhh = m.bias_ih_l0.detach().numpy(), m.bias_hh_l0.detach().numpy()

    # static shapes: slices of fresh dims make sympy Max expressions that cost seconds
    X, hi = G.tensor("X", x.shape, "float64"), G.tensor("h0", h0.shape, "float64")
    W, U = G.tensor("W", Wih.shape, "float64"), G.tensor("U", Whh.shape, "float64")
    b, bu = G.tensor("b", bih.shape, "float64"), G.tensor("bu", bhh.shape, "float64")
    inputs, args = [X, hi, W, U, b, bu], [x, h0, Wih, Whh, bih, bhh]
    if cell == "rnn":
        hs = rnn(X, hi, W, U, b + bu)
    elif cell == "gru":
        hs = gru(X, hi, W, U, b, bu)
    else:
        ci = G.tensor("c0", c0.shape, "float64")
        (hs, _), _ = G.scan(lambda xx, h, c: lstm_cell(xx, h, c, W, U, b + bu), sequences=X,
                            outputs_info=[hi, ci])
        inputs.append(ci)
        args.append(c0)
    cost = ((hs - G.constant(target)) ** 2).sum() + hs[-1].sum()
    # the C target for the LSTM (the others' C loops are covered above): gcc time is test time
    f = G.function(inputs, [cost] + G.grad(cost, [X, hi, W, U, b, bu]),
                   backend="c" if cell == "lstm" else "py")
    got = f(*args)
    np.testing.assert_allclose(got[0], loss.item(), rtol=1e-12)
    want = [xt.grad, ht.grad[0], m.weight_ih_l0.grad.T, m.weight_hh_l0.grad.T,
            m.bias_ih_l0.grad, m.bias_hh_l0.grad]
    for g, w in zip(got[1:], want):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-10, atol=1e-12)


def test_gradient_through_random_numbers_drawn_in_the_step():
    """dropout in the step, its counter carried as scan's update: each step draws a new mask,
    and the backward loop replays each step's mask (the counter's history is saved)."""
    rng = G.RandomStreams(seed=3)

    def f(X, h0, W):
        def step(x, h):
            hn = G.tanh(G.dot(x, W) + h)
            return G.dropout(hn, 0.3, (rng.seed, rng.counter)), {rng.counter: rng.counter + 1}
        hs, upd = G.scan(step, sequences=X, outputs_info=h0)
        assert list(upd) == [rng.counter]
        return hs

    point = _points(7, (4, 2, 3), (2, 5), (3, 5))
    assert verify_grad(f, point, backend="py")
    X, h0, W = (G.tensor(n, p.shape, "float64") for n, p in zip("XhW", point))
    hs = G.function([X, h0, W], f(X, h0, W), backend="py")(*point)
    masks = (hs != 0).reshape(4, -1)
    assert len({m.tobytes() for m in masks}) == 4  # a new mask each step
