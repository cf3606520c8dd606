#!/usr/bin/env python
"""Where a CNN step's compile time goes (issue 16: cold <= 2 s, warm <= 0.1 s), stage by stage,
in CPU time (the shared machine makes wall time noise).

    python bench/cnn_compile_cost.py                       # every net, cold then warm
    python bench/cnn_compile_cost.py --only resnet20 --profile /tmp/prof   # + cProfile dumps
    python bench/cnn_compile_cost.py --py-only --rounds 3   # Python stages only, no gcc

Per net, two fresh processes share one empty GRAPHC_CACHE_DIR: cold (empty caches) then warm (the
caches the cold one filled). Each builds the step with bench/graphc_cnn.cnn_step, in its stages:
weights (drawing them, shared variables, momentum buffers: not compile), graph (the user's model:
forward, loss, G.grad, updates: not graphc's compile, though graphc's shape inference and
differentiation run there) and G.function (what the compile target measures). Reported per stage:
process CPU seconds (time.process_time); for G.function also wall seconds, the CPU of its child
processes (gcc: RUSAGE_CHILDREN) and its own stages' CPU (Function.timings "<stage>_cpu":
build_graph, optimize, lower, plan, render, build, load; warm: cache_key, load), plus the load
average at the end.

--py-only runs G.function's Python stages only (build_graph, optimize, lower, plan, render) in a
fresh process per net and round, with no gcc and no cache: cold Python, sympy's caches empty. It
prints the sha256 of the rendered C, which must not change when only the Python gets faster.
GRAPHC_BENCH_TREE=/path/to/checkout measures that checkout's graphc instead (an A/B against a
baseline tree, interleaved round by round when --baseline names it).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.environ.get("GRAPHC_BENCH_TREE") or HERE  # whose graphc (and bench/) a child imports
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.peers import cnn_common as CC  # noqa: E402


def _children_cpu():
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def child(net, profile_path):
    from bench import graphc_cnn as GC
    prof = None
    if profile_path:
        import cProfile
        prof = cProfile.Profile(time.process_time)  # CPU seconds: wall is noise on a loaded machine
    CC.data(net)  # the input batch: not part of any stage
    gcc0 = _children_cpu()
    step = GC.cnn_step(net, profiler=prof)  # stages weights, graph, function (profiled: the last two)
    stages = dict(step.stages)
    f = step.function
    stages["function"]["gcc_cpu"] = _children_cpu() - gcc0
    stages["function"]["timings"] = {k: v for k, v in f.timings.items() if isinstance(v, float)}
    if prof:
        prof.dump_stats(profile_path)
    stages["loadavg"] = os.getloadavg()[0]
    print("@@" + json.dumps(stages))


def py_only_function(timings, sources):
    """A stand-in for G.function that runs its Python stages only, timed as the driver times them
    (CPU seconds under "<stage>_cpu"), and keeps the rendered C in `sources`."""
    from graphc import compiler as C
    from graphc.codegen.plan import build_program, note_naive_bytes
    from graphc.config import config
    from graphc.ir.fgraph import build_function_graph
    from graphc.ir.givens import theano_graph
    from graphc.passes import optimize
    from graphc.runtime.checks import ArgumentChecker
    from graphc.targets import get_target

    def function(inputs, outputs, updates=None):
        with C._Stage(timings, "build_graph"):
            single = not isinstance(outputs, (list, tuple))
            outs, pairs = theano_graph(inputs, [outputs] if single else list(outputs), updates,
                                       None, False, None, "graphc_fn")
            fgraph = build_function_graph(inputs, outs, pairs)
        target = get_target("c")
        with C._Stage(timings, "optimize"):
            opt_graph, _ = optimize(fgraph, config.opt_level)
        checker = ArgumentChecker(opt_graph.inputs, opt_graph.dims)
        program = build_program(opt_graph, checker, target.capabilities,
                                stage=lambda name: C._Stage(timings, name))
        note_naive_bytes(program, fgraph)
        with C._Stage(timings, "render"):
            sources.extend(target.render(program, "graphc_fn"))
        return program
    return function


def py_only_child(net, profile_path):
    import hashlib
    import graphc as G
    from bench import graphc_cnn as GC
    prof = None
    if profile_path:
        import cProfile
        prof = cProfile.Profile()  # (wall clock: process_time's syscall per event slows it 5x)
    CC.data(net)
    timings, sources = {}, []
    G.function = py_only_function(timings, sources)  # graphc_cnn calls G.function by attribute
    step = GC.cnn_step(net, profiler=prof)
    if prof:
        prof.dump_stats(profile_path)
    stages = dict(step.stages)
    stages["function"]["timings"] = {k: v for k, v in timings.items() if k.endswith("_cpu")}
    stages["function"]["gcc_cpu"] = 0.0
    stages["c_sha256"] = hashlib.sha256("\n".join(sources).encode()).hexdigest()[:16]
    stages["loadavg"] = os.getloadavg()[0]
    print("@@" + json.dumps(stages))


def run(net, env, profile_path, py_only=False):
    cmd = [sys.executable, os.path.abspath(__file__), "--py-child" if py_only else "--child", net]
    if profile_path:
        cmd += ["--profile", profile_path]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    for line in p.stdout.splitlines():
        if line.startswith("@@"):
            return json.loads(line[2:])
    raise RuntimeError(f"{net}: exited {p.returncode}: {p.stderr[-2000:]}")


def fmt(r):
    f = r["function"]
    t = f["timings"]
    parts = " ".join(f"{k[:-4]}={v:.3f}" for k, v in t.items() if k.endswith("_cpu") and v >= 0.0005)
    return (f"G.function cpu {f['cpu']:.3f} wall {f['wall']:.3f} gcc {f['gcc_cpu']:.2f} [cpu: {parts}]  "
            f"| graph {r['graph']['cpu']:.3f}  weights {r['weights']['cpu']:.3f}  load {r['loadavg']:.1f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="")
    ap.add_argument("--profile", default="", help="directory for cProfile dumps (net-cold/warm.prof)")
    ap.add_argument("--warm-only-cache", default="", help="reuse this cache dir (skips cold if filled)")
    ap.add_argument("--py-only", action="store_true", help="Python stages only, no gcc, no cache")
    ap.add_argument("--rounds", type=int, default=1, help="--py-only: fresh processes per net")
    ap.add_argument("--baseline", default="", help="--py-only: a checkout to alternate with, round by round")
    ap.add_argument("--child", default="")
    ap.add_argument("--py-child", default="")
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.profile)
    if args.py_child:
        return py_only_child(args.py_child, args.profile)
    if args.py_only:
        return py_only_main(args)
    nets = [n for n in args.only.split(",") if n] or list(CC.NETS)
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
    results = {}
    for net in nets:
        cache = args.warm_only_cache or tempfile.mkdtemp(prefix="graphc-cc-")
        env = dict(os.environ, GRAPHC_CACHE_DIR=os.path.join(cache, "graphc"))
        prof = (lambda kind: os.path.join(args.profile, f"{net}-{kind}.prof") if args.profile else "")
        try:
            results[net] = {kind: run(net, env, prof(kind)) for kind in ("cold", "warm")}
        finally:
            if not args.warm_only_cache:
                shutil.rmtree(cache, ignore_errors=True)
        for kind in ("cold", "warm"):
            print(f"{net:14s} {kind}: {fmt(results[net][kind])}", flush=True)
    print(json.dumps(results))


def py_only_main(args):
    """Cold Python per net: --rounds fresh processes, each tree in turn (this one, --baseline)."""
    nets = [n for n in args.only.split(",") if n] or list(CC.NETS)
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
    trees = [("this", ROOT)] + ([("base", os.path.abspath(args.baseline))] if args.baseline else [])
    results = {}
    for net in nets:
        for r in range(args.rounds):
            for label, tree in trees:
                env = dict(os.environ, GRAPHC_BENCH_TREE=tree)
                env["PYTHONPATH"] = tree + os.pathsep + env.get("PYTHONPATH", "")
                prof = os.path.join(args.profile, f"{net}-{label}-{r}.prof") if args.profile else ""
                res = run(net, env, prof, py_only=True)
                results.setdefault(net, {}).setdefault(label, []).append(res)
                t = res["function"]["timings"]
                parts = " ".join(f"{k[:-4]}={v:.3f}" for k, v in t.items())
                print(f"{net:14s} {label} r{r}: python {sum(t.values()):.3f} [{parts}] C {res['c_sha256']} "
                      f"graph {res['graph']['cpu']:.3f} load {res['loadavg']:.1f}", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    sys.exit(main())
