"""numpy peer: hand-written forward + backward, in-place SGD updates."""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import common as C

F32 = np.float32


def _softmax_xent(logits, y):
    """Mean softmax cross-entropy and its gradient w.r.t. logits."""
    n = logits.shape[0]
    m = logits.max(axis=1, keepdims=True)
    z = logits - m
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    logp_y = z[np.arange(n), y] - np.log(s[:, 0])
    loss = -logp_y.mean()
    d = e / s
    d[np.arange(n), y] -= 1.0
    d *= F32(1.0 / n)
    return loss, d


# ---------------------------------------------------------------- (a) MLP
def mlp_step(batch=128):
    W1, b1, W2, b2, W3, b3 = C.mlp_params()
    x, y = C.mlp_data(batch)
    lr = F32(C.MLP_LR)

    def step():
        h1 = x @ W1
        h1 += b1
        np.maximum(h1, 0, out=h1)
        h2 = h1 @ W2
        h2 += b2
        np.maximum(h2, 0, out=h2)
        logits = h2 @ W3
        logits += b3
        loss, d3 = _softmax_xent(logits, y)
        dh2 = d3 @ W3.T
        dh2 *= h2 > 0
        dh1 = dh2 @ W2.T
        dh1 *= h1 > 0
        # gradients, then in-place updates
        gW3 = h2.T @ d3; gb3 = d3.sum(0)
        gW2 = h1.T @ dh2; gb2 = dh2.sum(0)
        gW1 = x.T @ dh1; gb1 = dh1.sum(0)
        for p, g in ((W1, gW1), (b1, gb1), (W2, gW2), (b2, gb2), (W3, gW3), (b3, gb3)):
            g *= lr
            p -= g
        return loss

    return step


# ---------------------------------------------------------------- (b) elementwise
def elementwise_chain(n=C.ELEM_N):
    x = C.elementwise_data(n)
    a, b = C.ELEM_A, C.ELEM_B  # python floats: stay float32 under NEP 50

    def step():
        return np.tanh(x * a + b) * (1.0 / (1.0 + np.exp(-x))) + np.exp(-x * x)

    return step


# ---------------------------------------------------------------- (c) tiny call
def tiny_call():
    x, y = C.tiny_data()

    def step():
        return np.add(x, y)

    return step


# ---------------------------------------------------------------- (e) LeNet
def _conv_fwd(x, w, b):
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    oh, ow = h - kh + 1, wd - kw + 1
    cols = sliding_window_view(x, (kh, kw), axis=(2, 3))  # n,c,oh,ow,kh,kw
    cols = cols.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)
    out = cols @ w.reshape(f, -1).T
    out += b
    return out.reshape(n, oh, ow, f).transpose(0, 3, 1, 2), cols


def _conv_bwd(dout, cols, x_shape, w, need_dx=True):
    n, c, h, wd = x_shape
    f, _, kh, kw = w.shape
    oh, ow = h - kh + 1, wd - kw + 1
    dmat = dout.transpose(0, 2, 3, 1).reshape(-1, f)
    dw = (dmat.T @ cols).reshape(w.shape)
    db = dmat.sum(0)
    if not need_dx:
        return None, dw, db
    dcols = (dmat @ w.reshape(f, -1)).reshape(n, oh, ow, c, kh, kw).transpose(0, 3, 4, 5, 1, 2)
    dx = np.zeros(x_shape, F32)
    for i in range(kh):
        for j in range(kw):
            dx[:, :, i:i + oh, j:j + ow] += dcols[:, :, i, j]
    return dx, dw, db


def _pool_fwd(x):
    n, c, h, w = x.shape
    xr = x.reshape(n, c, h // 2, 2, w // 2, 2)
    out = xr.max(axis=(3, 5))
    mask = xr == out[:, :, :, None, :, None]
    return out, mask


def _pool_bwd(dout, mask):
    n, c, h2, _, w2, _ = mask.shape
    return (mask * dout[:, :, :, None, :, None]).reshape(n, c, h2 * 2, w2 * 2)


def lenet_step(batch=64):
    params = C.lenet_params()
    vel = [np.zeros_like(p) for p in params]
    x, y = C.lenet_data(batch)
    lr, mu = F32(C.LENET_LR), F32(C.LENET_MOMENTUM)

    def step():
        c1w, c1b, c2w, c2b, f1w, f1b, f2w, f2b = params
        a1, cols1 = _conv_fwd(x, c1w, c1b)          # n,20,24,24
        p1, m1 = _pool_fwd(a1)                       # n,20,12,12
        a2, cols2 = _conv_fwd(p1, c2w, c2b)          # n,50,8,8
        p2, m2 = _pool_fwd(a2)                       # n,50,4,4
        flat = p2.reshape(p2.shape[0], -1)
        h = flat @ f1w
        h += f1b
        np.maximum(h, 0, out=h)
        logits = h @ f2w + f2b
        loss, dl = _softmax_xent(logits, y)
        gf2w = h.T @ dl; gf2b = dl.sum(0)
        dh = dl @ f2w.T
        dh *= h > 0
        gf1w = flat.T @ dh; gf1b = dh.sum(0)
        dflat = (dh @ f1w.T).reshape(p2.shape)
        da2 = _pool_bwd(dflat, m2)
        dp1, gc2w, gc2b = _conv_bwd(da2, cols2, p1.shape, c2w)
        da1 = _pool_bwd(dp1, m1)
        _, gc1w, gc1b = _conv_bwd(da1, cols1, x.shape, c1w, need_dx=False)
        grads = [gc1w, gc1b, gc2w, gc2b, gf1w, gf1b, gf2w, gf2b]
        for p, v, g in zip(params, vel, grads):
            v *= mu
            v += g
            p -= lr * v
        return loss

    return step


# ---------------------------------------------------------------- (f) LSTM
def _sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def lstm_step(batch=32, seq_len=32, n_in=64, n_hidden=256):
    wx, wh, b = C.lstm_params(n_in, n_hidden)
    X = C.lstm_data(batch, seq_len, n_in)
    H = n_hidden
    lr = F32(C.LSTM_LR)
    Xf = X.reshape(seq_len * batch, n_in)

    def step():
        T, B = seq_len, batch
        zx = (Xf @ wx + b).reshape(T, B, 4 * H)
        gates = np.empty((T, B, 4 * H), F32)   # activated i, f, g, o
        cs = np.empty((T + 1, B, H), F32)
        hs = np.empty((T + 1, B, H), F32)
        tcs = np.empty((T, B, H), F32)
        cs[0] = 0
        hs[0] = 0
        for t in range(T):
            z = zx[t] + hs[t] @ wh
            gt = gates[t]
            gt[:, :2 * H] = _sig(z[:, :2 * H])
            gt[:, 2 * H:3 * H] = np.tanh(z[:, 2 * H:3 * H])
            gt[:, 3 * H:] = _sig(z[:, 3 * H:])
            i, f, g, o = gt[:, :H], gt[:, H:2 * H], gt[:, 2 * H:3 * H], gt[:, 3 * H:]
            cs[t + 1] = f * cs[t] + i * g
            tcs[t] = np.tanh(cs[t + 1])
            hs[t + 1] = o * tcs[t]
        hT = hs[T]
        loss = np.mean(hT * hT)
        dh = hT * F32(2.0 / hT.size)
        dc = np.zeros((B, H), F32)
        dZ = np.empty((T, B, 4 * H), F32)
        for t in range(T - 1, -1, -1):
            gt = gates[t]
            i, f, g, o = gt[:, :H], gt[:, H:2 * H], gt[:, 2 * H:3 * H], gt[:, 3 * H:]
            tc = tcs[t]
            dc = dc + dh * o * (1.0 - tc * tc)
            dz = dZ[t]
            dz[:, :H] = dc * g * i * (1.0 - i)
            dz[:, H:2 * H] = dc * cs[t] * f * (1.0 - f)
            dz[:, 2 * H:3 * H] = dc * i * (1.0 - g * g)
            dz[:, 3 * H:] = dh * tc * o * (1.0 - o)
            dc = dc * f
            dh = dz @ wh.T
        dZf = dZ.reshape(T * B, 4 * H)
        gwx = Xf.T @ dZf
        gwh = hs[:T].reshape(T * B, H).T @ dZf
        gb = dZf.sum(0)
        for p, gr in ((wx, gwx), (wh, gwh), (b, gb)):
            gr *= lr
            p -= gr
        return loss

    return step


def info():
    cfg = {}
    try:
        blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
        cfg = {"blas": f"{blas.get('name')} {blas.get('version')}"}
    except Exception:
        pass
    return {"numpy": np.__version__, **cfg}
