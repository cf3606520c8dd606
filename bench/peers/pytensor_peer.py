"""PyTensor peer: Theano-style graphs, shared variables and ``updates``.

Two variants (the ``mode`` keyword):
  * ``NUMBA`` - PyTensor 3's default backend (Numba JIT; compiles on first call)
  * ``CVM``   - the classic Theano C backend (C code per op + C VM loop).  Linked
                against system OpenBLAS (``-lopenblas``) when one is found, else
                PyTensor falls back to its slow NumPy-C-API gemm (noted).
PyTensor 3 removed Theano's ``conv2d``/``pool_2d``; LeNet here is written with
PyTensor primitives (im2col from 25 strided slices + tensordot; max-pool via
reshape + max), which the graph compiler differentiates and fuses itself.
"""
from __future__ import annotations

import ctypes.util
import os
import time

import numpy as np

from . import PeerUnavailable
from . import common as C

_flags = os.environ.get("PYTENSOR_FLAGS", "")
_extra = []
if "floatX" not in _flags:
    _extra.append("floatX=float32")
if "blas__ldflags" not in _flags and ctypes.util.find_library("openblas"):
    _extra.append("blas__ldflags=-lopenblas")
if _extra:
    os.environ["PYTENSOR_FLAGS"] = ",".join([f for f in [_flags] + _extra if f])

try:
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pytensor
        import pytensor.tensor as pt
except Exception as e:  # pragma: no cover
    raise PeerUnavailable(f"pytensor not importable: {e}") from e

BLAS_NOTE = (f"C backend BLAS: {pytensor.config.blas__ldflags}" if pytensor.config.blas__ldflags
             else "no BLAS found: C backend uses PyTensor's NumPy C-API gemm fallback "
                  "(apt-get install libopenblas-dev)")

try:  # numba's "np.dot() is faster on contiguous arrays" chatter
    from numba.core.errors import NumbaPerformanceWarning
    warnings.filterwarnings("ignore", category=NumbaPerformanceWarning)
except Exception:  # pragma: no cover
    pass

F32 = np.float32


def _shared(a, name):
    return pytensor.shared(np.array(a, dtype=a.dtype), name=name)


def _function(inputs, outputs, updates, mode):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pytensor.function(inputs, outputs, updates=updates, mode=mode)


def _note(mode):
    return f"mode={mode}" + (f"; {BLAS_NOTE}" if mode in ("CVM", "C", "FAST_RUN") and BLAS_NOTE else "")


def _xent(logits, y):
    logp = pt.special.log_softmax(logits, axis=-1)
    return -logp[pt.arange(y.shape[0]), y].mean()


def _sgd(params, cost, lr):
    grads = pytensor.grad(cost, params)
    lr = F32(lr)
    return {p: p - lr * g for p, g in zip(params, grads)}


def _momentum(params, cost, lr, mu):
    grads = pytensor.grad(cost, params)
    lr, mu = F32(lr), F32(mu)
    updates = {}
    for p, g in zip(params, grads):
        v = pytensor.shared(np.zeros(p.get_value().shape, F32), name=f"v_{p.name}")
        v_new = mu * v + g
        updates[v] = v_new
        updates[p] = p - lr * v_new
    return updates


# ---------------------------------------------------------------- (a) MLP
def _build_mlp(batch, mode):
    xv, yv = C.mlp_data(batch)
    names = ["W1", "b1", "W2", "b2", "W3", "b3"]
    params = [_shared(a, n) for a, n in zip(C.mlp_params(), names)]
    x = pt.matrix("x", dtype="float32")
    y = pt.vector("y", dtype="int64")
    h = x
    for i in range(3):
        h = pt.dot(h, params[2 * i]) + params[2 * i + 1]
        if i < 2:
            h = pt.maximum(h, 0)
    cost = _xent(h, y)
    f = _function([x, y], cost, _sgd(params, cost, C.MLP_LR), mode)

    def step():
        return f(xv, yv)

    step.note = _note(mode)
    return step


def mlp_step(batch=128, mode="NUMBA"):
    return _build_mlp(batch, mode)


def cold_compile_mlp(batch=128, mode="NUMBA"):
    t0 = time.perf_counter()
    step = _build_mlp(batch, mode)
    float(step())
    return time.perf_counter() - t0


# ---------------------------------------------------------------- (b) elementwise
def elementwise_chain(n=C.ELEM_N, mode="NUMBA"):
    xv = C.elementwise_data(n)
    x = pt.vector("x", dtype="float32")
    a, b = F32(C.ELEM_A), F32(C.ELEM_B)
    out = pt.tanh(x * a + b) * pt.sigmoid(x) + pt.exp(-x * x)
    f = _function([x], out, None, mode)
    step = lambda: f(xv)  # noqa: E731
    step.note = _note(mode)
    return step


# ---------------------------------------------------------------- (c) tiny call
def tiny_call(mode="NUMBA"):
    xv, yv = C.tiny_data()
    x = pt.vector("x", dtype="float32")
    y = pt.vector("y", dtype="float32")
    f = _function([x, y], x + y, None, mode)
    step = lambda: f(xv, yv)  # noqa: E731
    step.note = _note(mode) + "; default call path (trust_input=False)"
    return step


# ---------------------------------------------------------------- (e) LeNet
def _conv(x, w, b, k=5):
    """Valid cross-correlation via im2col built from k*k strided slices."""
    oh = x.shape[2] - k + 1
    ow = x.shape[3] - k + 1
    patches = pt.stack([x[:, :, i:i + oh, j:j + ow] for i in range(k) for j in range(k)],
                       axis=2)                                   # n, c, k*k, oh, ow
    n, c = x.shape[0], x.shape[1]
    patches = patches.reshape((n, c * k * k, oh, ow))
    wm = w.reshape((w.shape[0], -1))                             # f, c*k*k
    out = pt.tensordot(wm, patches, axes=[[1], [1]])             # f, n, oh, ow
    return out.dimshuffle(1, 0, 2, 3) + b.dimshuffle("x", 0, "x", "x")


def _pool2(x):
    n, c, h, w = x.shape
    return x.reshape((n, c, h // 2, 2, w // 2, 2)).max(axis=(3, 5))


def lenet_step(batch=64, mode="NUMBA"):
    xv, yv = C.lenet_data(batch)
    names = ["c1w", "c1b", "c2w", "c2b", "f1w", "f1b", "f2w", "f2b"]
    params = [_shared(a, n) for a, n in zip(C.lenet_params(), names)]
    c1w, c1b, c2w, c2b, f1w, f1b, f2w, f2b = params
    x = pt.tensor4("x", dtype="float32")
    y = pt.vector("y", dtype="int64")
    h = _pool2(_conv(x, c1w, c1b))
    h = _pool2(_conv(h, c2w, c2b))
    h = pt.maximum(pt.dot(h.flatten(2), f1w) + f1b, 0)
    cost = _xent(pt.dot(h, f2w) + f2b, y)
    f = _function([x, y], cost, _momentum(params, cost, C.LENET_LR, C.LENET_MOMENTUM), mode)

    def step():
        return f(xv, yv)

    step.note = _note(mode) + "; conv = im2col(25 slices)+tensordot (no conv2d op in pytensor 3)"
    return step


# ---------------------------------------------------------------- (f) LSTM
def lstm_step(batch=32, seq_len=32, n_in=64, n_hidden=256, mode="NUMBA"):
    Xv = C.lstm_data(batch, seq_len, n_in)
    wx, wh, b = [_shared(a, n) for a, n in zip(C.lstm_params(n_in, n_hidden), ["wx", "wh", "b"])]
    H = n_hidden
    X = pt.tensor3("X", dtype="float32")
    zx = pt.dot(X, wx) + b

    def cell(z_t, h, c):
        z = z_t + pt.dot(h, wh)
        i = pt.sigmoid(z[:, :H])
        f = pt.sigmoid(z[:, H:2 * H])
        g = pt.tanh(z[:, 2 * H:3 * H])
        o = pt.sigmoid(z[:, 3 * H:])
        c = f * c + i * g
        return o * pt.tanh(c), c

    zeros = pt.zeros((X.shape[1], H), dtype="float32")
    try:
        res = pytensor.scan(cell, sequences=[zx], outputs_info=[zeros, zeros], return_updates=False)
    except TypeError:  # older signature
        res, _ = pytensor.scan(cell, sequences=[zx], outputs_info=[zeros, zeros])
    hs = res[0]
    hT = hs[-1]
    cost = (hT * hT).mean()
    f = _function([X], cost, _sgd([wx, wh, b], cost, C.LSTM_LR), mode)

    def step():
        return f(Xv)

    step.note = _note(mode) + "; pytensor.scan"
    return step


def info():
    return {"pytensor": pytensor.__version__, "linker_default": str(pytensor.config.linker),
            "blas__ldflags": pytensor.config.blas__ldflags, "floatX": pytensor.config.floatX,
            "blas_note": BLAS_NOTE}
