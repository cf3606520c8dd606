"""graphc's side of the CNN workloads (bench/peers/cnn_common.py): the layer lists written with
graphc's API. ``cnn_step(name)`` returns a zero-argument step whose ``function`` is the compiled
graphc Function (the runner reads its planned workspace)."""
from __future__ import annotations

import numpy as np

from bench.peers import cnn_common as CC

try:
    import graphc as G
except Exception:  # the runner reports the import error through graphc_impl
    G = None


def _bias(v):
    return v.dimshuffle("x", 0, "x", "x")


def _conv(h, layer, take):
    _, cout, k, s, p, g, bias = layer
    h = G.conv2d(h, take(), stride=(s, s), padding=(p, p), groups=g)
    return h + _bias(take()) if bias else h


def _bn(h, take):
    gamma, beta = take(), take()
    return G.batch_norm_train(h, gamma, beta)[0]


def _res_block(h, layer, take, channels):
    _, cout, s = layer
    y = G.relu(_bn(_conv(h, ("conv", cout, 3, s, 1, 1, False), take), take))
    y = _bn(_conv(y, ("conv", cout, 3, 1, 1, 1, False), take), take)
    if s != 1 or cout != channels:
        h = _bn(_conv(h, ("conv", cout, 1, s, 0, 1, False), take), take)
    return G.relu(y + h)


def forward(name, x, params):
    layers, (channels, _, _), *_ = CC.NETS[name]
    it = iter(params)

    def take():
        return next(it)

    h = x
    for layer in layers:
        kind = layer[0]
        if kind == "conv":
            h, channels = _conv(h, layer, take), layer[1]
        elif kind == "bn":
            h = _bn(h, take)
        elif kind == "relu":
            h = G.relu(h)
        elif kind == "maxpool":
            h = G.max_pool2d(h, (layer[1], layer[1]), (layer[2], layer[2]))
        elif kind == "avgpool":
            h = G.avg_pool2d(h, (layer[1], layer[1]), (layer[2], layer[2]))
        elif kind == "lrn":
            h = G.lrn(h, *layer[1:])
        elif kind == "flatten":
            h = h.flatten(2)
        elif kind == "fc":
            w, b = take(), take()
            h = G.dot(h, w) + b
        elif kind == "res":
            h, channels = _res_block(h, layer, take, channels), layer[1]
        else:
            raise ValueError(f"unknown layer {layer!r}")
    return h


def _stage(stages, name, fn, profiler=None):
    """fn() timed into stages[name]: {"cpu": process CPU s, "wall": s} (a profiler, when given,
    runs around it)."""
    import time
    c0, w0 = time.process_time(), time.perf_counter()
    if profiler is not None:
        profiler.enable()
    try:
        return fn()
    finally:
        if profiler is not None:
            profiler.disable()
        stages[name] = {"cpu": time.process_time() - c0, "wall": time.perf_counter() - w0}


def cnn_step(name, profiler=None):
    """The step, built in three timed stages (issue 16 compares only the last with its compile
    target): `weights` (drawing the initial weights, the shared variables of the parameters and
    momentum buffers), `graph` (the user's model: forward graph, loss, G.grad, the update expressions)
    and `function` (G.function: graphc's optimize, lower, plan, render, build or cache lookup,
    load). step.stages holds their CPU and wall seconds; step.function is the Function."""
    _, _, _, _, train, lr, mu, wd = CC.NETS[name]
    xv, yv = CC.data(name)
    stages = {}
    lr, mu, wd = np.float32(lr), np.float32(mu), np.float32(wd)

    def weights():
        init = CC.params(name)  # seeded random draws, as a user's initialization
        params = [G.shared(np.array(a), name=f"p{i}") for i, a in enumerate(init)]
        velocities = [G.shared(np.zeros_like(a), name="v_" + p.name) for p, a in zip(params, init)] if train else []
        return params, velocities

    params, velocities = _stage(stages, "weights", weights)

    def graph():
        x = G.tensor4("x")
        logits = forward(name, x, params)
        if not train:
            return [x], logits, {}
        y = G.lvector("y")
        cost = G.mean(G.softmax_cross_entropy(logits, y))
        updates = {}
        for p, g, v in zip(params, G.grad(cost, params), velocities):
            if wd:
                g = g + wd * p
            v_new = mu * v + g
            updates[v] = v_new
            updates[p] = p - lr * v_new
        return [x, y], cost, updates

    ins, out, updates = _stage(stages, "graph", graph, profiler)
    f = _stage(stages, "function", lambda: G.function(ins, out, updates=updates), profiler)
    step = (lambda: f(xv)) if not train else (lambda: f(xv, yv))
    step.function, step.x, step.stages = f, xv, stages
    return step


def workspace_bytes(step):
    """The planned workspace of the step's program (bytes), or None."""
    f = getattr(step, "function", None)
    prog = getattr(getattr(f, "program", None), "program", None)
    if prog is None:
        return None
    import sympy
    dims = {}
    for d, n in zip(prog.externals[0].shape, step.x.shape):  # the dims the input binds
        if isinstance(d, sympy.Symbol):
            dims[d] = n
    try:
        return int(sympy.sympify(prog.workspace_bytes).subs(dims))
    except (TypeError, ValueError):
        return None
