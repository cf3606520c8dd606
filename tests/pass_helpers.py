"""Helpers of the pass tests (tests/test_pass_<name>.py): compile through the passes only
(graph_level, numpy references, no C compiler), the oracle at O0, what the passes left behind;
and the MLP train step several files measure."""

import re

import numpy as np
import pytest
import sympy

import graphc as G

F64_TOL = dict(rtol=1e-12, atol=1e-12)


# --- helpers ------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def no_artifact_hits(monkeypatch):
    """Compile every graph through the passes: a warm artifact-cache hit gives a Function whose
    fgraph has no nodes or fusion notes to look at (the gcc library cache still applies)."""
    from graphc.targets.c import artifacts
    monkeypatch.setattr(artifacts, "load", lambda key: None)


def graph_level(inputs, outputs, opt_level="O3", updates=None):
    """The optimized graph (f.fgraph), run by the numpy reference of each op: no C compiler."""
    return G.function(inputs, outputs, updates=updates, backend="py", opt_level=opt_level)


def ref(inputs, outputs, *values):
    """The oracle: every op's numpy reference, no rewrites."""
    return G.function(inputs, outputs, backend="py", opt_level="O0")(*values)


def op_names(f):
    """The ops left in the optimized graph: elementwise ops by name, the others by class."""
    return [getattr(n.op, "name", type(n.op).__name__) for n in f.fgraph.nodes]


def primitives(f):
    """Every primitive op name in the optimized graph, fused ones spelled out."""
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", " ".join(op_names(f)))) - {"fused"}


def kernels(f):
    return f.program.program.kernels


def dead_kernels(program):
    """Kernels none of whose outputs is read by a later kernel, returned to the caller or an
    updated shared variable: work thrown away."""
    live_ends = set(map(id, program.output_buffers)) | \
        {id(b) for b in program.in_place_updates.values()}
    dead = []
    for k, kern in enumerate(program.kernels):
        read_later = {id(b) for later in program.kernels[k + 1:] for b in later.inputs}
        if not any(id(b) in live_ends or id(b) in read_later for b in kern.outputs):
            dead.append(f"k{k} {kern.kind} {kern.label}")
    return dead


def at(expr, **values):
    """A symbolic size (sympy) evaluated with dims given by name."""
    expr = sympy.sympify(expr)
    return int(expr.subs({s: values[s.name] for s in expr.free_symbols}))


MLP_SIZES = (784, 512, 512, 10)
BATCH = 128


def build_mlp_step(dtype="float32", seed=0, lr=0.1):
    rng = np.random.RandomState(seed)
    params = []
    for k, (n_in, n_out) in enumerate(zip(MLP_SIZES[:-1], MLP_SIZES[1:])):
        params.append(G.shared((rng.randn(n_in, n_out) * np.sqrt(2.0 / n_in)).astype(dtype), f"W{k}"))
        params.append(G.shared((rng.randn(n_out) * 0.1).astype(dtype), f"b{k}"))
    batch = G.dim("batch")
    x = G.tensor("x", (batch, MLP_SIZES[0]), dtype)
    y = G.tensor("y", (batch,), "int64")
    h = x
    for k in range(3):
        h = G.dot(h, params[2 * k]) + params[2 * k + 1]
        if k < 2:
            h = G.relu(h)
    loss = G.categorical_crossentropy(G.softmax(h), y).mean()
    grads = G.grad(loss, params)
    updates = {p: p - lr * g for p, g in zip(params, grads)}
    return [x, y], loss, updates, params


def mlp_batch(dtype="float32", seed=1):
    rng = np.random.RandomState(seed)
    return rng.rand(BATCH, MLP_SIZES[0]).astype(dtype), rng.randint(0, 10, BATCH).astype("int64")


@pytest.fixture(scope="module")
def mlp_steps():
    """Compiled MLP train steps by optimization level (each with its own parameters)."""
    steps = {}
    for level in ("O1", "O3"):
        ins, loss, updates, params = build_mlp_step()
        steps[level] = (G.function(ins, loss, updates=updates, opt_level=level), params)
    return steps
