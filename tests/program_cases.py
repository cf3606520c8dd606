"""Graphs lowered to a Program without compiling (the py backend optimizes exactly as the C
backend does; codegen.plan.build_program then lowers and plans): for program-level tests."""
import os
import sys

import numpy as np

import graphc as G
from graphc.codegen.plan import build_program
from graphc.targets.c.capabilities import C_CAPABILITIES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def program_of(inputs, outputs, updates=None, name="t", capabilities=C_CAPABILITIES):
    """The Program lowered for a target's capabilities (the C target's unless given)."""
    fn = G.function(inputs, outputs, updates=updates, backend="py", name=name)
    return build_program(fn.fgraph, fn.checker, capabilities)


def captured_function(build):
    """The py-backend Function that `build()` makes with G.function (its last one)."""
    captured, real = [], G.function

    def capture(*args, **kwargs):
        kwargs["backend"] = "py"
        captured.append(real(*args, **kwargs))
        return captured[-1]

    G.function = capture
    try:
        build()
    finally:
        G.function = real
    return captured[-1]


def bench_step_program(builder_name):
    """The Program of a bench/graphc_impl.py training step (MLP, LeNet, LSTM)."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    from bench import graphc_impl
    fn = captured_function(getattr(graphc_impl, builder_name))
    # (the plan checker proves symbolic offsets disjoint with sympy: a minute for LeNet's)
    check, G.config.check_plans = G.config.check_plans, False
    try:
        return build_program(fn.fgraph, fn.checker, C_CAPABILITIES)
    finally:
        G.config.check_plans = check


def op_case_programs(names, dtype="float32"):
    """(name, Program) for op-table cases (tests/op_cases.py), forward and gradient together."""
    from op_cases import CASES
    for name in names:
        build, makers, differentiable = CASES[name]
        rng = np.random.RandomState(0)
        values = [m(rng, dtype) for m in makers]
        xs = [G.tensor(f"x{k}", v.shape, v.dtype.name) for k, v in enumerate(values)]
        out = build(*xs)
        outs = [out]
        if differentiable and out.dtype.startswith("float"):
            floats = [x for x in xs if x.dtype.startswith("float")]
            outs += G.grad(G.sum(out * out), floats, disconnected_inputs="ignore")
        yield name, program_of(xs, outs, name=name)
