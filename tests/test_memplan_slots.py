"""Workspace slots shared by buffers of different symbolic sizes (graphc/codegen/memplan_slots.py):
plans that shrink, Max slot sizes that hold whichever buffer is larger at the call's dims, the
compiled results unchanged against the reference, check_plan refusing broken plans, and the plan
the same in every process (its text is a build-cache key)."""
import os
import subprocess
import sys

import numpy as np
import pytest
import sympy

import graphc as G
from graphc.codegen.memplan import check_plan, liveness
from graphc.codegen.memplan_check import _check_slots
from graphc.codegen.memplan_sizes import evaluate, provably_ge

from program_cases import ROOT, program_of


def _mlp_step(widths=(8, 32, 16, 4)):
    """A symbolic-batch MLP training step: activations n*32, n*16, n*4 and their gradients."""
    x, y = G.matrix("x", "float64"), G.lvector("y")
    rng = np.random.RandomState(0)
    ws = [G.shared(rng.standard_normal((a, b)) * 0.3, name=f"w{i}") for i, (a, b) in
          enumerate(zip(widths, widths[1:]))]
    h = x
    for i, W in enumerate(ws):
        h = G.dot(h, W)
        h = G.tanh(h) if i + 1 < len(ws) else h
    cost = G.mean(G.softmax_cross_entropy(h, y))
    updates = {W: W - 0.1 * g for W, g in zip(ws, G.grad(cost, ws))}
    return [x, y], cost, updates


def _peak_live(program, env):
    liveness(program)
    live = [0] * len(program.kernels)
    for b in program.buffers:
        if b.role == "temp" and b.first >= 0:
            for k in range(b.first, b.last + 1):
                live[k] += evaluate(b.aligned_nbytes, env)
    return max(live)


def test_buffers_of_different_symbolic_sizes_share_slots_and_the_plan_nears_its_peak():
    """The MLP step's temporaries are n*32, n*16, n*4 doubles, never all live at once. Sharing only
    equal sizes gave a slot per size; now a wide slot holds the narrower buffers in turn: the plan
    is smaller than that one for every batch, and within one 64-byte line of the bytes live at
    the step's busiest kernel (no plan can be smaller than those)."""
    inputs, cost, updates = _mlp_step()
    program = program_of(inputs, cost, updates)
    assert check_plan(program)
    n = program.dim_symbols[0]
    liveness(program)
    temps = [b for b in program.buffers if b.role == "temp" and b.first >= 0]
    by_offset = {}
    for b in temps:
        by_offset.setdefault(str(b.offset), set()).add(sympy.sympify(b.aligned_nbytes))
    assert any(len(sizes) > 1 for sizes in by_offset.values()), by_offset  # different sizes, one slot
    equal_sizes_only = 768 * n + 64 * sympy.ceiling(n / 8) + 128 * sympy.ceiling(n / 2) + 128  # at 8fdebf9
    assert provably_ge(equal_sizes_only, program.workspace_bytes)
    for batch in (1, 3, 64, 1000):
        env = ((n, batch),)
        planned = evaluate(program.workspace_bytes, env)
        assert _peak_live(program, env) <= planned <= _peak_live(program, env) + 64
        assert planned < evaluate(equal_sizes_only, env)


def _small_cnn():
    x = G.tensor("x", ("n", 3, "h", "w"), "float32")
    rng = np.random.RandomState(0)
    w1 = G.shared(rng.standard_normal((8, 3, 3, 3)).astype("float32") * 0.3, name="w1")
    w2 = G.shared(rng.standard_normal((16, 8, 3, 3)).astype("float32") * 0.3, name="w2")
    h = G.max_pool2d(G.relu(G.conv2d(x, w1, padding=(1, 1))), (2, 2), (2, 2))
    h = G.relu(G.conv2d(h, w2, padding=(1, 1)))
    loss = (h * h).sum()
    return [x], [loss] + G.grad(loss, [w1, w2])


def test_a_cnn_step_shares_im2col_chunks_and_activations_in_max_slots(monkeypatch):
    """With a small im2col budget the chunks are Min(n, budget / per-image) images: larger than
    an activation at n = 1, smaller at a large batch. Such buffers share a slot of size Max(...),
    and every call, whichever is larger at its dims, gives the reference's results."""
    monkeypatch.setenv("GRAPHC_CONV_WORKSPACE", "4096")
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "gemm")
    inputs, outputs = _small_cnn()
    f = G.function(inputs, outputs)
    program = f.program.program
    assert check_plan(program)
    maxed = [size for _, size in program.workspace_slots if isinstance(size, sympy.Max)]
    assert maxed, program.workspace_slots
    ref = G.function(inputs, outputs, backend="py", opt_level="O0")
    rng = np.random.RandomState(1)
    for shape in ((1, 3, 16, 10), (7, 3, 4, 4), (3, 3, 9, 7)):
        xv = rng.standard_normal(shape).astype("float32")
        for got, want in zip(f(xv), ref(xv)):
            np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-3)
    # the Max slots do hold different parts at these shapes: which one is larger changes
    dims = dict(zip(("n", "h", "w"), (None,) * 3))
    syms = {s.name: s for s in program.dim_symbols}
    larger = set()
    for shape in ((1, 3, 16, 10), (7, 3, 4, 4)):
        env = tuple((syms[k], v) for k, v in zip(dims, (shape[0], shape[2], shape[3])) if k in syms)
        for size in maxed:
            values = [evaluate(a, env) for a in size.args]
            larger.add((str(size), values.index(max(values))))
    assert len(larger) > len(maxed)


def test_check_plan_refuses_a_buffer_its_slot_cannot_hold_and_two_live_buffers_in_one_slot():
    inputs, cost, updates = _mlp_step()
    program = program_of(inputs, cost, updates)
    assert check_plan(program)
    liveness(program)
    temps = [b for b in program.buffers if b.role == "temp" and b.first >= 0]
    # a buffer grown past its slot: the proof that it fits fails (and the samples see it overlap
    # the next slot's buffers where they are live together)
    big = max(temps, key=lambda b: evaluate(b.aligned_nbytes, 9))
    shape = big.shape
    big.shape = (2 * shape[0],) + tuple(shape[1:])
    with pytest.raises(AssertionError, match=f"b{big.id} .* not proved to fit"):
        _check_slots(program, temps)
    big.shape = shape
    # two buffers live together moved into one slot
    a = max(temps, key=lambda b: b.last - b.first)
    other = next(b for b in temps if b.offset != a.offset and b.first <= a.last and a.first <= b.last)
    old = other.offset
    other.offset = a.offset
    with pytest.raises(AssertionError, match="live together"):
        check_plan(program)
    other.offset = old
    assert check_plan(program)


_PLAN_TEXT = """
import sys; sys.path[:0] = [{root!r}, {tests!r}]
import test_memplan_slots as T
from program_cases import program_of
inputs, cost, updates = T._mlp_step()
print(T._plan_text(program_of(inputs, cost, updates)))
"""


def _plan_text(program):
    """The plan's slots and offsets as text, dims renamed by position (fresh dims' names count
    the dims made before in the process)."""
    named = {d: sympy.Symbol(f"D{i}", integer=True, positive=True) for i, d in enumerate(program.dim_symbols)}

    def text(e):
        return str(sympy.sympify(e).xreplace(named))
    slots = [(text(o), text(s)) for o, s in program.workspace_slots]
    temps = sorted((b.id, text(b.offset)) for b in program.buffers if b.role == "temp" and b.first >= 0)
    return f"{slots}\n{temps}"


def test_the_plan_is_the_same_in_every_process():
    """Sizes are ordered and slots chosen without hash order: a process with another
    PYTHONHASHSEED plans the same offsets as this one."""
    code = _PLAN_TEXT.format(root=ROOT, tests=os.path.join(ROOT, "tests"))
    seed = "1" if os.environ.get("PYTHONHASHSEED") != "1" else "2"
    env = dict(os.environ, PYTHONHASHSEED=seed, GRAPHC_CHECK_PLANS="0")
    there = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                           check=True, timeout=300).stdout
    inputs, cost, updates = _mlp_step()
    assert there == _plan_text(program_of(inputs, cost, updates)) + "\n"
