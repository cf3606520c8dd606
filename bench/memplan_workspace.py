#!/usr/bin/env python
"""Planned workspace of the bench workloads (issue 16: bounded memory), without building C.

    python bench/memplan_workspace.py                        # every workload
    python bench/memplan_workspace.py --only vgg_bn,mlp --slots   # + the largest slots

Each workload's graph is optimized by the py backend (exactly as the C backend does), lowered for
the C target's capabilities and planned (codegen.plan.build_program): no gcc, no weights trained.
Per workload: the planned workspace at the bench's own batch (and input size), all
intermediates kept apart (the planner's "naive" figure), the number of workspace slots, and
the CPU seconds of lower + plan (the planner's share is reported separately).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for p in (ROOT, os.path.join(ROOT, "tests")):
    if p not in sys.path:
        sys.path.insert(0, p)

CNNS = ("cifar_quick", "vgg_bn", "resnet20", "alexnet_infer", "alexnet_train")
OTHERS = ("mlp", "lstm_scan")



def _builder(name):
    """(build, {input position: example array}) for a workload."""
    from bench import graphc_impl
    from bench.peers import cnn_common as CC
    from bench.peers import common as C
    if name in CNNS:
        from bench import graphc_cnn
        xv, yv = CC.data(name)
        return (lambda: graphc_cnn.cnn_step(name)), [xv, yv]
    if name == "mlp":
        return graphc_impl.mlp_step, list(C.mlp_data(128))
    if name == "lstm_scan":
        return graphc_impl.lstm_step, None
    raise SystemExit(f"unknown workload {name!r}: one of {', '.join(CNNS + OTHERS)}")


def _bind(fn, examples):
    """The dims of the function's inputs bound from the example arrays."""
    import sympy
    env = {}
    if not examples:
        return env
    for var, value in zip(fn.fgraph.inputs, examples):
        for d, n in zip(fn.fgraph.dims.shape(var), getattr(value, "shape", ())):
            if isinstance(d, sympy.Symbol):
                env[d] = n
    return env


def measure(name, show_slots=0):
    import sympy
    import graphc as G
    from graphc.codegen import memplan
    from graphc.codegen.plan import build_program
    from graphc.targets.c.capabilities import C_CAPABILITIES
    from program_cases import captured_function  # (tests/ is on sys.path above)
    build, examples = _builder(name)
    fn = captured_function(build)
    env = _bind(fn, examples)
    plan_cpu = [0.0]
    real_plan = memplan.plan_slots

    def timed_plan(program):
        t = time.process_time()
        try:
            return real_plan(program)
        finally:
            plan_cpu[0] += time.process_time() - t

    memplan.plan_slots = timed_plan
    check, G.config.check_plans = G.config.check_plans, False
    t0 = time.process_time()
    try:
        program = build_program(fn.fgraph, fn.checker, C_CAPABILITIES)
    finally:
        memplan.plan_slots = real_plan
        G.config.check_plans = check
    cpu = time.process_time() - t0

    def at(e):
        return int(sympy.sympify(e).xreplace({k: sympy.Integer(v) for k, v in env.items()}))

    row = {"workload": name, "workspace": at(program.workspace_bytes),
           "naive": at(program.naive_bytes), "slots": len(program.workspace_slots),
           "lower_plan_cpu_s": cpu, "plan_slots_cpu_s": plan_cpu[0],
           "symbolic": str(program.workspace_bytes)[:120]}
    if show_slots:
        sizes = sorted((at(size) for _, size in program.workspace_slots), reverse=True)
        row["largest_slots"] = sizes[:show_slots]
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(CNNS + OTHERS))
    ap.add_argument("--slots", type=int, default=0, metavar="K", help="also print the K largest slots")
    args = ap.parse_args()
    print("| workload | planned workspace | all kept apart | slots | lower + plan CPU s | plan_slots CPU s |")
    print("|---|---|---|---|---|---|")
    for name in args.only.split(","):
        r = measure(name, args.slots)
        print(f"| {name} | {r['workspace'] / 2**20:.2f} MiB | {r['naive'] / 2**20:.2f} MiB | {r['slots']} | "
              f"{r['lower_plan_cpu_s']:.2f} | {r['plan_slots_cpu_s']:.3f} |", flush=True)
        if args.slots:
            print("    largest slots (MiB): " + ", ".join(f"{s / 2**20:.1f}" for s in r["largest_slots"]),
                  flush=True)


if __name__ == "__main__":
    main()
