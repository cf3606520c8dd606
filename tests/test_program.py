"""Program-level tests: graphs are optimized and lowered, never rendered or compiled (cheap).

The Program is typed data that any target can render. The rule for its kernels' params (see
graphc/codegen/kernels.py): numbers are int/float/bool, sizes are ints or sympy expressions whose
symbols are the program's dims, dtypes are dtype names, scalar bodies are ScalarBody, and a str
is only ever a plain identifier that is not a C type name (a reduction's kind, an operand name,
a dtype name). Anything else, C text above all ("d_batch*4", "float", "expf(v0)"), fails."""
import os
import pickle
import re

import numpy as np
import pytest
import sympy

import graphc as G
from graphc.codegen import kernels as K
from graphc.targets.c.capabilities import C_CAPABILITIES, CCapabilities
from graphc.targets.c.cprinter import C_TYPES
from graphc.codegen.lower import lower_program
from graphc.codegen.memplan import plan_in_place
from graphc.codegen.program import Buffer, Kernel, Program, ScalarBody
from graphc.targets.c.render_c import render_program
from graphc.targets.c.templates_dir import templates_root
from graphc.ir.ops.conv import Conv2d

from op_cases import CASES
from program_cases import bench_step_program, op_case_programs, program_of

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
DTYPES = {"float32", "float64", "int32", "int64", "bool"}
OP_SAMPLE = sorted(CASES)  # all of them: lowering the whole table takes about a second


def _bad_values(value, dims, where):
    """Every place in a param value that breaks the rule above, as 'where: why'."""
    if isinstance(value, bool) or isinstance(value, (int, float)):
        return []
    if isinstance(value, str):
        if not IDENT.match(value) or value in C_TYPES.values():
            return [f"{where}: str {value!r} is not a plain identifier"]
        return []
    if isinstance(value, sympy.Basic):
        extra = value.free_symbols - set(dims)
        return [f"{where}: size {value} mentions {extra}, not dims"] if extra else []
    if isinstance(value, ScalarBody):
        out = [f"{where}.loads: {ld!r}" for ld in value.loads
               if not (IDENT.match(ld[0]) and ld[1] in DTYPES)]
        out += [f"{where}.exprs: {e!r}" for e in value.exprs if not isinstance(e, sympy.Basic)]
        return out + ([] if value.ctx_dtype in DTYPES else [f"{where}.ctx_dtype"])
    if isinstance(value, (list, tuple)):
        return [b for k, v in enumerate(value) for b in _bad_values(v, dims, f"{where}[{k}]")]
    if value is None:
        return []
    if isinstance(value, Program):  # a loop's body: its kernels follow the same rule
        return _program_bad(value, dims, where)
    return [f"{where}: {type(value).__name__} {value!r}"]


def _program_bad(program, dims, label):
    bad = []
    for k, kern in enumerate(program.kernels):
        if set(kern.params) != set(K.spec_of(kern.kind).params):
            bad.append(f"{label} k{k} {kern.kind}: params are not its spec's")
        for name, value in kern.params.items():
            bad += _bad_values(value, dims, f"{label} k{k} {kern.kind}.{name}")
            if name.endswith("dtype") and value not in DTYPES:
                bad.append(f"{label} k{k} {kern.kind}.{name} = {value!r}")
    return bad


def _check_program(program, label):
    bad = []
    for k, kern in enumerate(program.kernels):
        assert set(kern.params) == set(K.spec_of(kern.kind).params), f"{label} k{k} {kern.kind}"
        for name, value in kern.params.items():
            bad += _bad_values(value, program.dim_symbols, f"{label} k{k} {kern.kind}.{name}")
            if name.endswith("dtype"):
                assert value in DTYPES, f"{label} k{k} {kern.kind}.{name} = {value!r}"
    assert not bad, "\n".join(bad[:20])


@pytest.mark.parametrize("step", ["mlp_step", "lenet_step"])
def test_bench_step_params_hold_no_c_text(step):
    program = bench_step_program(step)
    assert program.dim_symbols  # the batch is symbolic: sizes really are expressions
    _check_program(program, step)


def test_op_table_params_hold_no_c_text():
    kinds = set()
    for name, program in op_case_programs(OP_SAMPLE):
        _check_program(program, name)
        kinds |= {k.kind for k in program.kernels}
    assert {"elemwise", "reduce", "gemm", "gather", "softmax_xent"} <= kinds


def test_the_rule_catches_c_text():
    dims = [sympy.Symbol("batch")]
    assert _bad_values("d_batch*4", dims, "x") and _bad_values("float", dims, "x")
    assert _bad_values("expf(v0)", dims, "x") and _bad_values(sympy.Symbol("t0") * 2, dims, "x")
    assert not _bad_values([sympy.Symbol("batch") * 4, "sum", "float32", 1.5, True], dims, "x")


def test_every_kernel_kind_has_a_spec_and_a_c_template():
    root = os.path.join(templates_root(), "c")
    templates = {f[:-3] for f in os.listdir(root) if f.endswith(".j2") and not f.startswith("_")}
    assert set(K.SPECS) <= templates
    with pytest.raises(G.GraphcError, match="unexpected"):
        K.check_params("copy", {"n": 1, "ctype": "float"})


def test_dims_used_names_the_dims_a_kernel_needs():
    batch = G.dim("batch")
    x = G.tensor("x", (batch, 5), "float32")
    w = G.shared(np.ones((5, 3), "float32"), name="w")
    y = G.dot(x, w)
    program = program_of([x], [G.tanh(y), (w * 2).sum()])
    by_kind = {}
    for kern in program.kernels:
        by_kind.setdefault(kern.kind, []).append(kern.dims_used)
    (bsym,) = program.dim_symbols
    assert by_kind["gemm"] == [(bsym,)]
    assert (bsym,) in by_kind["elemwise"]   # tanh over (batch, 3)
    assert () in by_kind["reduce"]          # the weights' sum has a static size


class _ForcedDirect(CCapabilities):
    def conv_algorithm(self, kind, depth, rows):
        return "direct"


def test_conv_algorithm_is_the_targets_choice_not_the_ops():
    assert Conv2d(padding=(1, 1)) == Conv2d(padding=(1, 1))
    assert "algorithm" not in Conv2d.__props__
    x = G.tensor("x", (2, 3, 6, 6), "float32")
    w = G.tensor("w", (4, 3, 3, 3), "float32")
    y = G.conv2d(x, w, padding=1)
    fn = G.function([x, w], [y] + G.grad((y * y).sum(), [x, w]), backend="py")
    auto = lower_program(fn.fgraph, fn.checker.symbols, C_CAPABILITIES)
    direct = lower_program(fn.fgraph, fn.checker.symbols, _ForcedDirect())
    assert "conv_blocked" in {k.kind for k in auto.kernels}  # 3 -> 4 channels: blocked direct
    assert {k.kind for k in direct.kernels} >= {"conv_direct", "conv_direct_grad_input",
                                                "conv_direct_grad_weights"}
    assert not {"conv_im2col", "conv_chunked", "gemm"} & {k.kind for k in direct.kernels}


def test_c_capabilities_policy():
    caps = C_CAPABILITIES
    assert not caps.may_parallelize(caps.parallel_threshold)
    assert caps.may_parallelize(caps.parallel_threshold + 1)
    assert caps.may_parallelize(sympy.Symbol("batch") * 4)  # unknown size: let run time decide
    assert caps.blas_precision("float32") == "s" and caps.blas_precision("float64") == "d"
    assert caps.conv_algorithm("fwd", depth=27, rows=1) == "direct"   # depthwise
    assert caps.conv_algorithm("fwd", depth=27, rows=16) == "gemm"


def _update_then(kind):
    """shared s -> elemwise -> its update out; then a kernel of `kind` on other buffers."""
    s = Buffer(0, "float32", (4,), "shared", name="s")
    out = Buffer(1, "float32", (4,), "output", name="out0")
    out.slot_index = 0
    a, b = Buffer(2, "float32", (4,), "input"), Buffer(3, "float32", (4,), "temp")
    kernels = [Kernel("elemwise", [out], [s], {"full_inputs": [0]}), Kernel(kind, [b], [a], {})]
    return Program([s, out, a, b], kernels, [], [s, a, out], [out]), out, s


def test_memory_planner_reads_kernel_traits():
    assert {k for k, s in K.SPECS.items() if s.fallible is True} == {"gather", "scatter_add",
                                                                    "scatter_set", "softmax_xent"}
    assert K.SPECS["loop"].fallible == "body_fallible"  # a loop fails where its body can
    # max/min/argmax fail only over an axis that may be empty (issue 13: numpy raises there)
    assert {k for k, s in K.SPECS.items() if callable(s.fallible)} == {"reduce", "argmax"}
    assert [k for k, s in K.SPECS.items() if s.elementwise] == ["elemwise"]
    # an update stays out of place when a later kernel can fail (a failed call changes nothing)
    program, out, s = _update_then("gather")
    notes = plan_in_place(program, [(out, s)])
    assert notes == ["update of s: not in place (a later kernel can fail)"]
    program, out, s = _update_then("copy")
    assert plan_in_place(program, [(out, s)]) == [] and program.kernels[0].outputs == [s]


def test_program_pickles_with_scalar_bodies_intact():
    x = G.tensor("x", (3, 4), "float32")
    i = G.tensor("i", (3, 4), "int32")
    program = program_of([x, i], [G.exp(x) * G.cast(i, "float32") + 0.5,
                                  (G.cast(x, "int32") + i).sum()])
    back = pickle.loads(pickle.dumps(program, protocol=pickle.HIGHEST_PROTOCOL))
    assert [k.params.get("body") for k in back.kernels] == \
        [k.params.get("body") for k in program.kernels]
    assert render_program(back, "t", "") == render_program(program, "t", "")


def test_lowering_modules_do_not_import_each_other():
    import ast
    import graphc.codegen.lower_cnn as lower_cnn
    tree = ast.parse(open(lower_cnn.__file__).read())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "lower" not in imported and "lower_support" in imported
