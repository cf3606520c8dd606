"""Symbolic workspace offsets as a size table: bytecode that the runtime library's interpreter
fills at run time (graphc/targets/c/size_table.py, templates/c/_size_table.j2) instead of C
expressions that gcc compiled in every unit (issue 16, cold compile)."""
import ctypes
import os
import shutil
import subprocess

import numpy as np
import pytest
import sympy

import graphc as G
from graphc.targets.c import render_c
from graphc.targets.c.size_table import OPCODES, evaluate, workspace_table

from program_cases import program_of

CC = os.environ.get("CC", "gcc")
needs_cc = pytest.mark.skipif(shutil.which(CC) is None, reason="needs a C compiler")
SHAPES = [(3, 1, 15, 13), (1, 1, 9, 9), (7, 1, 33, 20), (2, 1, 8, 11)]


def _small_cnn(x):
    """Convs and pools of symbolic sizes: offsets with floor, ceiling, Max and Min (chunks)."""
    w1 = G.shared(np.linspace(-1, 1, 4 * 25, dtype=np.float32).reshape(4, 1, 5, 5), name="w1")
    b1 = G.shared(np.linspace(0, 1, 4, dtype=np.float32), name="b1")
    w2 = G.shared(np.linspace(1, -1, 6 * 4 * 9, dtype=np.float32).reshape(6, 4, 3, 3), name="w2")
    h = G.max_pool2d(G.conv2d(x, w1, padding=1) + b1.dimshuffle("x", 0, "x", "x"), 3, 2)
    h = G.avg_pool2d(G.relu(G.conv2d(h, w2, stride=2)), 2)
    cost = (h.flatten(2) ** 2).mean()
    return h, cost, G.grad(cost, [w1, b1, w2])


def _c_interpreter():
    from test_range_functions import runtime_library
    fn = runtime_library().graphc_rt_eval_sizes
    p64 = ctypes.POINTER(ctypes.c_int64)
    fn.argtypes = [p64, ctypes.c_int64, p64, ctypes.c_int64, p64, ctypes.c_int64]
    fn.restype = ctypes.c_int

    def run(code, dims, n_slots):
        c = (ctypes.c_int64 * max(1, len(code)))(*code)
        d = (ctypes.c_int64 * max(1, len(dims)))(*dims)
        s = (ctypes.c_int64 * max(1, n_slots))()
        rc = fn(c, len(code), d, len(dims), s, n_slots)
        return rc, list(s)[:n_slots]
    return run


def test_the_table_holds_the_offsets_sympy_computes():
    x = G.tensor4("x")
    _, cost, grads = _small_cnn(x)
    program = program_of([x], [cost] + grads, name="table_offsets")
    table = workspace_table(program)
    assert table is not None and table.total is not None
    assert len(table.slot_of) >= 3
    c_eval = _c_interpreter() if shutil.which(CC) else None
    for shape in SHAPES:
        values = dict(zip(program.dim_symbols, shape))
        slots = evaluate(table.code, list(shape), table.n_slots)
        for offset, j in table.slot_of.items():
            assert slots[j] == int(sympy.sympify(offset).subs(values)), (offset, shape)
        assert slots[table.total] == int(sympy.sympify(program.workspace_bytes).subs(values))
        if c_eval:
            assert c_eval(table.code, list(shape), table.n_slots) == (0, slots)


def _ops(code):
    """The opcodes' names in order (operands skipped)."""
    names, out, pc = {v: k for k, v in OPCODES.items()}, [], 0
    while pc < len(code):
        out.append(names[code[pc]])
        pc += 2 if out[-1] in ("CONST", "DIM", "SLOT", "STORE", "TEE") else 1
    return out


def test_subexpressions_that_repeat_are_computed_once():
    a, b = sympy.symbols("a b", integer=True, positive=True)

    class _Program:
        dim_symbols = [a, b]
        repeated = sympy.Max(64, sympy.floor((a * b + 3) / 4))
        workspace_slots = [(0, repeated), (repeated, repeated * 2), (3 * repeated, 5)]
        workspace_bytes = 3 * repeated + 5
    table = workspace_table(_Program)
    assert _ops(table.code).count("FLOORDIV") == 1
    assert table.n_slots == 4  # two offsets and the total, and the repeated size once
    for dims in ([1, 1], [100, 37], [9, 2]):
        r = max(64, (dims[0] * dims[1] + 3) // 4)
        slots = evaluate(table.code, dims, table.n_slots)
        assert [slots[table.slot_of[_Program.repeated]], slots[table.total]] == [r, 3 * r + 5]


@needs_cc
@pytest.mark.parametrize("code, n_dims, n_slots", [
    ([OPCODES["ADD"]], 0, 1),  # pops an empty stack
    ([OPCODES["CONST"]], 0, 1),  # an operand missing
    ([OPCODES["DIM"], 3, OPCODES["STORE"], 0], 2, 1),  # a dim out of range
    ([OPCODES["CONST"], 1, OPCODES["STORE"], 5], 0, 1),  # a slot out of range
    ([OPCODES["SLOT"], -1, OPCODES["STORE"], 0], 0, 1),
    ([OPCODES["CONST"], 1], 0, 1),  # leaves a value on the stack
    ([99], 0, 1),  # no such opcode
    ([OPCODES["CONST"], 1] * 65, 0, 1),  # deeper than the stack
    ([OPCODES["CONST"], 1, OPCODES["CONST"], 0, OPCODES["DIV"], OPCODES["STORE"], 0], 0, 1),
])
def test_the_interpreter_refuses_malformed_code(code, n_dims, n_slots):
    rc, _ = _c_interpreter()(code, [5] * n_dims, n_slots)
    assert rc == -1


@needs_cc
@pytest.mark.parametrize("units", [1, 2])
def test_a_net_with_its_offsets_in_a_table_equals_the_reference(monkeypatch, units):
    from graphc.config import config
    monkeypatch.setattr(render_c, "SIZE_TABLE_FROM", 0)
    monkeypatch.setattr(config, "compile_jobs", units)
    real = render_c.plan_segments
    monkeypatch.setattr(render_c, "plan_segments",
                        lambda *a, **kw: real(*a, **dict(kw, min_unit_cost=1)))
    x = G.tensor4("x")
    _, cost, grads = _small_cnn(x)
    f = G.function([x], [cost] + grads, name=f"table_net{units}")
    source = f.program.source
    assert source.count("/* Generated by graphc") == units
    assert "graphc_rt_eval_sizes(gc_entry_ws_code, " in source and "(ctx->ws + gc_ws[" in source
    ref = G.function([x], [cost] + grads, backend="py", opt_level="O0")
    rng = np.random.RandomState(2)
    for shape in SHAPES:  # growing and shrinking: each call's own offsets
        xv = rng.standard_normal(shape).astype(np.float32)
        for got, want in zip(f(xv), ref(xv)):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


@needs_cc
def test_an_aot_library_fills_its_table_itself(tmp_path, monkeypatch):
    """An exported library carries a static copy of the interpreter (it stands alone)."""
    from test_aot import make_example
    monkeypatch.setattr(render_c, "SIZE_TABLE_FROM", 0)
    batch = G.dim("batch")
    x = G.tensor("x", (batch, 1, 15, 13), "float32")
    h, _, _ = _small_cnn(x)
    f = G.function([x], h, name="table_aot")
    export = G.aot.export({"infer": f}, str(tmp_path / "t"), name="tab")
    with open(os.path.join(export.directory, "src", "tab.c")) as fh:
        source = fh.read()
    assert source.count("static int graphc_rt_eval_sizes(") == 1 and "ws_code[" in source
    if shutil.which("nm"):
        undefined = subprocess.run(["nm", "-u", export.library], capture_output=True, text=True,
                                   check=True).stdout
        assert "graphc_rt_" not in undefined
    main = make_example(export.directory, "tab")
    for n in (3, 1):
        xv = np.random.RandomState(n).standard_normal((n, 1, 15, 13)).astype(np.float32)
        xv.tofile(tmp_path / "x.bin")
        subprocess.run([main, "infer", str(n), "x.bin", "y.bin"], cwd=str(tmp_path), check=True,
                       capture_output=True)
        want = f(xv)
        got = np.fromfile(tmp_path / "y.bin", "float32").reshape(want.shape)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
