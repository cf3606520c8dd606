#!/usr/bin/env python
"""gcc time per kernel kind of a CNN step (issue 16: cold compile <= 2 s).

    python bench/kernel_gcc_cost.py [--only cifar_quick,vgg_bn] [--top 5]

Per net: the step's Program (optimize, lower, plan; no build), each kernel's C as render_c
outlines it (one function per distinct body: what the program compiles once), then each distinct
body compiled alone with the program's flags (`gcc -O3 -c`, one translation unit holding the
program head and that function), in child-process user+system CPU seconds, less the same unit
without the function (the head: headers, declarations). Summed per kernel kind: how much of a
cold compile each kind costs, and how many distinct bodies it has. Loop kernels are left out (their
bodies render inline). The total of the parts is not the gcc time of the real units (each unit
pays the head once, and gcc's per-unit work is not additive), but the split is what to move.
"""
from __future__ import annotations

import argparse
import collections
import os
import resource
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from bench.peers import cnn_common as CC  # noqa: E402


def step_program(net):
    """The net's step (as bench/graphc_cnn.cnn_step builds it) lowered to a planned Program."""
    import graphc as G
    from bench import graphc_cnn as GC
    from graphc.codegen.plan import build_program
    from graphc.ir.fgraph import build_function_graph
    from graphc.ir.givens import theano_graph
    from graphc.passes import optimize
    from graphc.runtime.checks import ArgumentChecker
    from graphc.targets.c.capabilities import C_CAPABILITIES
    from graphc.config import config

    _, _, _, _, train, lr, mu, wd = CC.NETS[net]
    params = [G.shared(np.array(a), name=f"p{i}") for i, a in enumerate(CC.params(net))]
    x = G.tensor4("x")
    logits = GC.forward(net, x, params)
    if train:
        y = G.lvector("y")
        cost = G.mean(G.softmax_cross_entropy(logits, y))
        updates = {}
        for p, g in zip(params, G.grad(cost, params)):
            v = G.shared(np.zeros(p.get_value().shape, np.float32), name="v_" + p.name)
            g = g + np.float32(wd) * p if wd else g
            updates[v] = np.float32(mu) * v + g
            updates[p] = p - np.float32(lr) * updates[v]
        ins, outs = [x, y], [cost]
    else:
        ins, outs, updates = [x], [logits], {}
    outs, updates = theano_graph(ins, outs, updates, None, False, None, "step")
    fgraph = build_function_graph(ins, outs, updates)
    opt_graph, _ = optimize(fgraph, config.opt_level)
    checker = ArgumentChecker(opt_graph.inputs, opt_graph.dims)
    return build_program(opt_graph, checker, C_CAPABILITIES)


def bodies(program):
    """[(kind, label, uses, unit source)] per distinct kernel body (with the range function its
    loop runs in, if any: graphc/targets/c/range_functions.py), and the head-only source."""
    from graphc.targets.c import render_c
    from graphc.targets.c.outline import KernelFunction, _Renumbered
    from graphc.targets.c.range_functions import range_functions

    env = render_c.environment()
    ctx = render_c._blas_context(program.kernels)
    ranges, range_of = range_functions(env, program.kernels, "gc_entry_")
    for f in ranges:
        f.unit, f.linkage = 1, "static"
    distinct = collections.OrderedDict()
    for ki, kernel in enumerate(program.kernels):
        if kernel.kind == "loop":
            continue
        view = _Renumbered(kernel)
        body = env.get_template(f"c/{kernel.kind}.j2").render(k=view, reduce_helpers=ctx["reduce_helpers"],
                                                             range_fn=range_of.get(ki))
        key = (body, tuple(b.ctype for b in view.local_buffers))
        if key not in distinct:
            distinct[key] = (KernelFunction(f"gc_entry_k{len(distinct)}", kernel.kind, kernel.label, body,
                                            view.local_buffers, view.size_names, unit=1, linkage="hidden"),
                             [range_of[ki]] if ki in range_of else [])
        distinct[key][0].uses.append(ki)
    template = env.get_template("c/program_unit.c.j2")

    def unit(fns, range_fns):
        return template.render(name="cost", prefix="gc_entry_", wrapper="jit_wrapper", unit=1, n_units=2,
                               seq_kernels=[], seq_buffers=[], ws_chain=[], size_checks=[],
                               dim_names=[s.name for s in program.dim_symbols], workspace_bytes="0",
                               kernel_fns=fns, kernel_calls={}, range_fns=range_fns,
                               blas_prefix="scipy_", **ctx)
    return [(f.kind, f.label, len(f.uses), unit([f], r)) for f, r in distinct.values()], unit([], [])


def gcc_cpu(source, workdir):
    from graphc.targets.c.toolchain import cflags
    from graphc.config import config
    path = os.path.join(workdir, "unit.c")
    with open(path, "w") as fh:
        fh.write(source)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([config.cc] + cflags() + ["-c", path, "-o", path + ".o"], check=True)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def measure(net, top):
    program = step_program(net)
    units, head = bodies(program)
    with tempfile.TemporaryDirectory() as d:
        base = min(gcc_cpu(head, d) for _ in range(2))
        rows = [(kind, label, uses, max(0.0, gcc_cpu(src, d) - base), len(src) - len(head))
                for kind, label, uses, src in units]
    per_kind = collections.defaultdict(lambda: [0, 0, 0.0, 0, []])
    for kind, label, uses, cpu, nbytes in rows:
        e = per_kind[kind]
        e[0] += uses
        e[1] += 1
        e[2] += cpu
        e[3] += nbytes
        e[4].append((cpu, label))
    total = sum(e[2] for e in per_kind.values())
    print(f"\n{net}: {len(program.kernels)} kernels, {len(rows)} distinct bodies, "
          f"gcc {total:.2f} s over the bodies + {base:.2f} s per unit's head "
          f"(load {os.getloadavg()[0]:.1f})")
    print(f"  {'kind':28s} {'kernels':>7s} {'bodies':>6s} {'gcc s':>6s} {'share':>6s} {'KB C':>6s}  costliest")
    for kind, (n, nb, cpu, nbytes, items) in sorted(per_kind.items(), key=lambda kv: -kv[1][2]):
        worst = ", ".join(f"{c:.2f} {lab[:24]}" for c, lab in sorted(items, reverse=True)[:top])
        print(f"  {kind:28s} {n:7d} {nb:6d} {cpu:6.2f} {cpu / max(total, 1e-9):6.1%} {nbytes / 1024:6.1f}  {worst}")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="")
    ap.add_argument("--top", type=int, default=3)
    args = ap.parse_args()
    for net in [n for n in args.only.split(",") if n] or list(CC.NETS):
        measure(net, args.top)


if __name__ == "__main__":
    sys.exit(main())
