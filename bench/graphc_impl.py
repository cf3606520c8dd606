"""graphc side of the benchmark  <<< HOOK FOR THE COMPILER'S AUTHOR >>>

Same builder names and semantics as bench/peers/*_peer.py (see
bench/peers/__init__.py and bench/peers/common.py): each builder does its setup
and returns a zero-argument ``step()`` running one iteration and returning the
loss (training workloads) or the output array.  Use the shared initial weights
and data from ``bench.peers.common`` so ``run.py`` can check agreement with the
numpy reference (first two losses within 1e-3 relative, arrays within 1e-4).

Everything below is a *draft* against the Theano-like API
(``G.matrix``, ``G.shared``, ``G.dot``, ``G.relu``, ``G.grad``,
``G.function(inputs, outputs, updates=...)``).  While ``graphc`` cannot be
imported, or lacks a name the draft uses, every builder raises
PeerUnavailable("graphc implementation pending: ...") and the runner skips it.
Fix the draft up (names, dtypes) once the API has settled; errors raised by
graphc itself are *not* swallowed, so they show up as ERROR in the table.
"""
from __future__ import annotations

import time

import numpy as np

from bench.peers import PeerUnavailable
from bench.peers import common as C

try:
    import graphc as G
    _IMPORT_ERROR = None
except Exception as e:  # ImportError while the package is being written, or any import-time bug
    G = None
    _IMPORT_ERROR = f"{type(e).__name__}: {e}"

F32 = np.float32


def _need(*names):
    """Raise PeerUnavailable unless graphc imports and has all ``names``."""
    if G is None:
        raise PeerUnavailable(f"graphc implementation pending (import graphc: {_IMPORT_ERROR})")
    missing = [n for n in names if not hasattr(G, n)]
    if missing:
        raise PeerUnavailable("graphc implementation pending: graphc lacks " + ", ".join(missing))


def _first(*names):
    for n in names:
        if hasattr(G, n):
            return getattr(G, n)
    raise PeerUnavailable("graphc implementation pending: graphc lacks any of " + ", ".join(names))


def _int_vector(name):
    if hasattr(G, "lvector"):
        return G.lvector(name)
    if hasattr(G, "ivector"):
        return G.ivector(name)
    return G.vector(name, dtype="int64")


def _xent(logits, y):
    """Mean softmax cross-entropy with integer labels."""
    for n in ("softmax_cross_entropy", "categorical_crossentropy_with_logits"):
        if hasattr(G, n):
            return G.mean(getattr(G, n)(logits, y))
    log_softmax = _first("log_softmax")
    logp = log_softmax(logits)
    return -G.mean(logp[G.arange(y.shape[0]), y])


def _shared_list(arrays, names):
    return [G.shared(np.array(a), name=n) for a, n in zip(arrays, names)]


# ---------------------------------------------------------------- (a) MLP
def _build_mlp(batch):
    _need("matrix", "shared", "dot", "relu", "grad", "function", "mean")
    xv, yv = C.mlp_data(batch)
    params = _shared_list(C.mlp_params(), ["W1", "b1", "W2", "b2", "W3", "b3"])
    x = G.matrix("x")
    y = _int_vector("y")
    h = x
    for i in range(3):
        h = G.dot(h, params[2 * i]) + params[2 * i + 1]
        if i < 2:
            h = G.relu(h)
    cost = _xent(h, y)
    grads = G.grad(cost, params)
    lr = F32(C.MLP_LR)
    f = G.function([x, y], cost, updates={p: p - lr * g for p, g in zip(params, grads)})
    return lambda: f(xv, yv)


def mlp_step(batch=128):
    return _build_mlp(batch)


def cold_compile_mlp(batch=128):
    """Build + compile + run once; the runner calls this in a fresh process
    with GRAPHC_CACHE_DIR pointing at an empty directory (cold) and then at the
    directory the cold run filled (warm)."""
    t0 = time.perf_counter()
    step = _build_mlp(batch)
    float(np.asarray(step()))
    return time.perf_counter() - t0


# ---------------------------------------------------------------- (b) elementwise
def elementwise_chain(n=C.ELEM_N):
    _need("vector", "tanh", "sigmoid", "exp", "function")
    xv = C.elementwise_data(n)
    x = G.vector("x")
    a, b = F32(C.ELEM_A), F32(C.ELEM_B)
    f = G.function([x], G.tanh(x * a + b) * G.sigmoid(x) + G.exp(-x * x))
    return lambda: f(xv)


# ---------------------------------------------------------------- (c) tiny call
def tiny_call():
    _need("vector", "function")
    xv, yv = C.tiny_data()
    x, y = G.vector("x"), G.vector("y")
    f = G.function([x, y], x + y)
    return lambda: f(xv, yv)


# ---------------------------------------------------------------- (e) LeNet
def lenet_step(batch=64):
    _need("tensor4", "shared", "dot", "relu", "grad", "function", "mean")
    conv2d = _first("conv2d")
    pool = _first("max_pool_2d", "pool_2d", "max_pool2d")
    xv, yv = C.lenet_data(batch)
    names = ["c1w", "c1b", "c2w", "c2b", "f1w", "f1b", "f2w", "f2b"]
    params = _shared_list(C.lenet_params(), names)
    c1w, c1b, c2w, c2b, f1w, f1b, f2w, f2b = params
    x = G.tensor4("x")
    y = _int_vector("y")
    # cross-correlation, OIHW weights (as Caffe/torch); bias broadcast over N,H,W
    h = pool(conv2d(x, c1w) + c1b.dimshuffle("x", 0, "x", "x"), (2, 2))
    h = pool(conv2d(h, c2w) + c2b.dimshuffle("x", 0, "x", "x"), (2, 2))
    h = G.relu(G.dot(h.flatten(2), f1w) + f1b)
    cost = _xent(G.dot(h, f2w) + f2b, y)
    grads = G.grad(cost, params)
    lr, mu = F32(C.LENET_LR), F32(C.LENET_MOMENTUM)
    updates = {}
    for p, g, a in zip(params, grads, C.lenet_params()):
        v = G.shared(np.zeros_like(a), name="v_" + p.name)
        v_new = mu * v + g
        updates[v] = v_new
        updates[p] = p - lr * v_new
    f = G.function([x, y], cost, updates=updates)
    return lambda: f(xv, yv)


# ---------------------------------------------------------------- (f) LSTM
def lstm_step(batch=32, seq_len=32, n_in=64, n_hidden=256):
    """G.scan over the steps (one C loop; back-propagation through time is a reverse loop)."""
    _need("tensor", "shared", "dot", "sigmoid", "tanh", "grad", "function", "scan")
    Xv = C.lstm_data(batch, seq_len, n_in)
    wx, wh, b = _shared_list(C.lstm_params(n_in, n_hidden), ["wx", "wh", "b"])
    H = n_hidden
    X = G.tensor("X", (seq_len, batch, n_in))
    zx = (G.dot(X.reshape((seq_len * batch, n_in)), wx) + b).reshape((seq_len, batch, 4 * H))
    zeros = G.constant(np.zeros((batch, H), F32))

    def cell(z_t, h, c):
        z = z_t + G.dot(h, wh)
        i, f = G.sigmoid(z[:, :H]), G.sigmoid(z[:, H:2 * H])
        g, o = G.tanh(z[:, 2 * H:3 * H]), G.sigmoid(z[:, 3 * H:])
        c_new = f * c + i * g
        return o * G.tanh(c_new), c_new

    (hs, _), _ = G.scan(cell, sequences=zx, outputs_info=[zeros, zeros], name="lstm")
    cost = G.mean(hs[-1] * hs[-1])
    grads = G.grad(cost, [wx, wh, b])
    lr = F32(C.LSTM_LR)
    f = G.function([X], cost, updates={p: p - lr * g for p, g in zip([wx, wh, b], grads)})
    return lambda: f(Xv)


def lstm_step_unrolled(batch=32, seq_len=32, n_in=64, n_hidden=256):
    """The same step with the steps unrolled into one graph (before scan; kept to compare)."""
    _need("tensor", "shared", "dot", "sigmoid", "tanh", "grad", "function")
    Xv = C.lstm_data(batch, seq_len, n_in)
    wx, wh, b = _shared_list(C.lstm_params(n_in, n_hidden), ["wx", "wh", "b"])
    H = n_hidden
    X = G.tensor("X", (seq_len, batch, n_in))
    zx = (G.dot(X.reshape((seq_len * batch, n_in)), wx) + b).reshape((seq_len, batch, 4 * H))
    h = c = None
    for t in range(seq_len):
        z = zx[t] if h is None else zx[t] + G.dot(h, wh)
        i, f = G.sigmoid(z[:, :H]), G.sigmoid(z[:, H:2 * H])
        g, o = G.tanh(z[:, 2 * H:3 * H]), G.sigmoid(z[:, 3 * H:])
        c = i * g if c is None else f * c + i * g
        h = o * G.tanh(c)
    cost = G.mean(h * h)
    grads = G.grad(cost, [wx, wh, b])
    lr = F32(C.LSTM_LR)
    f = G.function([X], cost, updates={p: p - lr * g for p, g in zip([wx, wh, b], grads)})
    return lambda: f(Xv)


def info():
    if G is None:
        return f"unavailable: {_IMPORT_ERROR}"
    return {"graphc": getattr(G, "__version__", "?")}


# ---------------------------------------------------------------- (g) CNNs (bench/cnn_run.py)
def cnn_step(name):
    _need("conv2d", "max_pool2d", "avg_pool2d", "lrn", "batch_norm_train")
    from bench import graphc_cnn
    return graphc_cnn.cnn_step(name)
