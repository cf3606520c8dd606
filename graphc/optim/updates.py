"""Update rules as Theano-style ``updates`` (an OrderedDict shared -> new value expression),
with Caffe's formulas (caffe/src/caffe/solvers/*.cpp). ``g`` is the gradient, ``lr`` the
(local) learning rate; state variables are created zero-filled, named ``"<param>.<slot>"`` and
included in the returned updates:

    sgd        p -= lr * g
    momentum   v = mu * v + lr * g;                  p -= v              (Caffe's SGD)
    nesterov   v' = mu * v + lr * g;                 p -= (1 + mu) * v' - mu * v
    adagrad    h += g^2;                             p -= lr * g / (sqrt(h) + delta)
    rmsprop    h = d * h + (1 - d) * g^2;            p -= lr * g / (sqrt(h) + delta)
    adadelta   h = mu * h + (1 - mu) * g^2;  u = g * sqrt((h2 + delta) / (h + delta));
               h2 = mu * h2 + (1 - mu) * u^2;        p -= lr * u
    adam       m = b1 * m + (1 - b1) * g;  v = b2 * v + (1 - b2) * g^2;
               p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + delta)   (t = 1, 2, ...)

``lr`` may be a python number, a symbolic scalar (an input or a shared variable, so it can change
between calls without recompiling), or a list with one entry per parameter (per-parameter
multipliers). Helpers: ``weight_decay`` (L2/L1), ``global_norm``, ``clip_by_global_norm``.

    grads = G.grad(loss, params)
    updates = optim.momentum(grads, params, lr=0.01, momentum=0.9)
    train = G.function([x, y], loss, updates=updates)
"""
from collections import OrderedDict

import numpy as np

import graphc as G

__all__ = ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adadelta", "adam",
           "weight_decay", "global_norm", "clip_by_global_norm", "RULES"]


def _new_slot(p, slot):
    return G.shared(np.zeros(p.static_shape, p.dtype), name=f"{p.name or 'param'}.{slot}")


def _prepare(grads, params, lr, slot):
    params = list(params)
    grads = list(grads)
    if len(grads) != len(params):
        raise ValueError(f"{len(grads)} gradients for {len(params)} parameters")
    if isinstance(lr, (list, tuple)):
        if len(lr) != len(params):
            raise ValueError(f"{len(lr)} learning rates for {len(params)} parameters")
        lrs = list(lr)
    else:
        lrs = [lr] * len(params)
    return grads, params, lrs, (slot or _new_slot)


def _scaled(lr, x):
    if isinstance(lr, (int, float)) and lr == 1:
        return x
    return lr * x


def _cast_like(expr, p):
    return expr if expr.dtype == p.dtype else G.cast(expr, p.dtype)


def sgd(grads, params, lr, slot=None):
    grads, params, lrs, slot = _prepare(grads, params, lr, slot)
    return OrderedDict((p, _cast_like(p - _scaled(r, g), p)) for p, g, r in zip(params, grads, lrs))


def momentum(grads, params, lr, momentum=0.9, slot=None):
    grads, params, lrs, slot = _prepare(grads, params, lr, slot)
    upd = OrderedDict()
    for p, g, r in zip(params, grads, lrs):
        v = slot(p, "momentum")
        v_new = _cast_like(momentum * v + _scaled(r, g), p)
        upd[v] = v_new
        upd[p] = p - v_new
    return upd


def nesterov(grads, params, lr, momentum=0.9, slot=None):
    grads, params, lrs, slot = _prepare(grads, params, lr, slot)
    upd = OrderedDict()
    for p, g, r in zip(params, grads, lrs):
        v = slot(p, "momentum")
        v_new = _cast_like(momentum * v + _scaled(r, g), p)
        upd[v] = v_new
        upd[p] = _cast_like(p - ((1.0 + momentum) * v_new - momentum * v), p)
    return upd


def adagrad(grads, params, lr, delta=1e-8, slot=None):
    grads, params, lrs, slot = _prepare(grads, params, lr, slot)
    upd = OrderedDict()
    for p, g, r in zip(params, grads, lrs):
        h = slot(p, "history")
        h_new = _cast_like(h + g * g, p)
        upd[h] = h_new
        upd[p] = _cast_like(p - _scaled(r, g / (G.sqrt(h_new) + delta)), p)
    return upd


def rmsprop(grads, params, lr, rms_decay=0.99, delta=1e-8, slot=None):
    grads, params, lrs, slot = _prepare(grads, params, lr, slot)
    upd = OrderedDict()
    for p, g, r in zip(params, grads, lrs):
        h = slot(p, "history")
        h_new = _cast_like(rms_decay * h + (1.0 - rms_decay) * (g * g), p)
        upd[h] = h_new
        upd[p] = _cast_like(p - _scaled(r, g / (G.sqrt(h_new) + delta)), p)
    return upd


def adadelta(grads, params, lr=1.0, momentum=0.95, delta=1e-6, slot=None):
    grads, params, lrs, slot = _prepare(grads, params, lr, slot)
    upd = OrderedDict()
    for p, g, r in zip(params, grads, lrs):
        h = slot(p, "history")
        h2 = slot(p, "update_history")
        h_new = _cast_like(momentum * h + (1.0 - momentum) * (g * g), p)
        u = g * G.sqrt((h2 + delta) / (h_new + delta))
        upd[h] = h_new
        upd[h2] = _cast_like(momentum * h2 + (1.0 - momentum) * (u * u), p)
        upd[p] = _cast_like(p - _scaled(r, u), p)
    return upd


def adam(grads, params, lr, beta1=0.9, beta2=0.999, delta=1e-8, t=None, slot=None):
    """``t``: the 1-based step number as a symbolic int scalar; by default a shared counter
    ``adam.t`` is created and incremented by the returned updates."""
    grads, params, lrs, slot = _prepare(grads, params, lr, slot)
    upd = OrderedDict()
    if t is None:
        counter = G.shared(np.int64(0), name="adam.t")
        t = counter + 1
        upd[counter] = t
    tf = G.cast(t, "float64")
    # Bias correction in double precision (Caffe computes it in Dtype; the difference is one
    # rounding of a scalar), then one cast to the parameters' dtype.
    correction = G.sqrt(1.0 - G.pow(G.constant(beta2, dtype="float64"), tf)) / (
        1.0 - G.pow(G.constant(beta1, dtype="float64"), tf))
    for p, g, r in zip(params, grads, lrs):
        m = slot(p, "m")
        v = slot(p, "v")
        m_new = _cast_like(beta1 * m + (1.0 - beta1) * g, p)
        v_new = _cast_like(beta2 * v + (1.0 - beta2) * (g * g), p)
        upd[m] = m_new
        upd[v] = v_new
        step = _cast_like(correction, p) * (m_new / (G.sqrt(v_new) + delta))
        upd[p] = _cast_like(p - _scaled(r, step), p)
    return upd


RULES = {"sgd": sgd, "momentum": momentum, "nesterov": nesterov, "adagrad": adagrad,
         "rmsprop": rmsprop, "adadelta": adadelta, "adam": adam}


def weight_decay(grads, params, decay, decay_mults=None, kind="L2"):
    """g + decay * mult * p (L2) or g + decay * mult * sign(p) (L1), Caffe's Regularize."""
    kind = kind.upper()
    if kind not in ("L1", "L2"):
        raise ValueError(f"weight decay kind must be 'L1' or 'L2', got {kind!r}")
    mults = [1.0] * len(params) if decay_mults is None else list(decay_mults)
    out = []
    for g, p, m in zip(grads, params, mults):
        d = float(decay) * float(m)
        if d == 0.0:
            out.append(g)
        else:
            out.append(g + d * (p if kind == "L2" else G.sign(p)))
    return out


def global_norm(grads):
    """sqrt(sum over all gradients of sum(g^2)), a symbolic scalar."""
    total = None
    for g in grads:
        s = G.sum(g * g)
        total = s if total is None else total + s
    return G.sqrt(total)


def clip_by_global_norm(grads, max_norm):
    """Scale all gradients by max_norm / norm when their global L2 norm exceeds max_norm
    (Caffe's clip_gradients). Returns (clipped gradients, norm)."""
    norm = global_norm(grads)
    scale = G.where(G.gt(norm, max_norm), max_norm / G.maximum(norm, 1e-30), G.ones_like(norm))
    return [g * _cast_like(scale, g) for g in grads], norm
