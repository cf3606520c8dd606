#!/usr/bin/env python
"""The CNN workloads of issue 16 for graphc and the peers present (bench/peers/cnn_common.py).

    python bench/cnn_run.py                                  # every net, graphc + torch + torch.compile
    python bench/cnn_run.py --only cifar_quick,resnet20 --peers graphc,torch --rounds 2
    python bench/cnn_run.py --contended                      # also each step beside a busy loop
    python bench/cnn_run.py --peers graphc,torch,jax --threads 1   # every peer on one thread

Per (net, peer), each in fresh processes, the peers interleaved per net and round:
  cold:  a process with empty on-disk caches builds the step and runs it once (compiling peers);
         the compile time reported is that less one measured step (the first step's own work);
  warm:  a second process with the caches the cold one filled does the same, then measures the
         step (median of >= 3 samples), and reports its peak resident memory (ru_maxrss: the
         whole process, imports included) and, for graphc, the planned workspace;
  contended (--contended): the warm process's measurement again with a busy loop on one core
         (started 0.3 s before, so that every timed step runs beside it), then quiet once more;
         the growth is the contended step over the mean of the quiet steps either side (the
         host's drift over the minutes of a cell cancels).
Prints markdown tables and writes bench/results/cnn-<stamp>.json.
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench import harness as H  # noqa: E402
from bench.peers import cnn_common as CC  # noqa: E402
from bench.peers.threads import thread_env  # noqa: E402

PEERS = {"graphc": ("bench.graphc_impl", {}), "torch": ("bench.peers.torch_peer", {"compile": False}),
         "torch.compile": ("bench.peers.torch_peer", {"compile": True}), "jax": ("bench.peers.jax_peer", {})}
COMPILING = {"graphc", "torch.compile", "jax"}
LOSS_RTOL = 2e-3
# JAX caches a jitted step's compiled executable on disk only with a directory set, and by default
# only compiles over 1 s: every compile is cached here, so a warm process is warm as the others'.
JAX_CACHE_ENV = {"JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def _values(v):
    """A step's result as a few floats: the loss, or an output's L1 norm and first entries."""
    import numpy as np
    from bench.peers import common as C
    a = np.asarray(C.to_numpy(v), dtype=np.float64)
    return [float(a)] if a.ndim == 0 else [float(np.abs(a).sum())] + a.ravel()[:4].tolist()


def child_main(args):
    """One process: build, first step, optionally measure; prints one JSON line."""
    import importlib
    import resource
    out = {}
    try:
        modname, kw = PEERS[args.peer]
        t0 = time.perf_counter()
        mod = importlib.import_module(modname)
        out["import_s"] = time.perf_counter() - t0
        CC.data(args.net), CC.params(args.net)  # the data once, untimed
        t0 = time.perf_counter()
        step = mod.cnn_step(args.net, **kw)
        v1 = step()
        out["compile_s"] = time.perf_counter() - t0  # build + the first step
        if getattr(step, "stages", None):  # graphc: weights / graph / function, CPU and wall
            out["stages"] = step.stages
        if args.measure:
            out["values"] = _values(v1) + _values(step())
            quick = dict(warmup=0, min_runs=3, min_time=args.min_time, max_time=args.max_time)
            from bench.contend import busy_loop
            out["timing"] = H.measure(step, **quick).as_dict()
            if args.contended:
                with busy_loop():
                    time.sleep(0.3)  # a fresh interpreter takes a while to start spinning
                    out["contended"] = H.measure(step, **quick).as_dict()
                out["quiet_after"] = H.measure(step, **quick).as_dict()
            if args.peer == "graphc":
                from bench.graphc_cnn import workspace_bytes
                out["workspace"] = workspace_bytes(step)
        out["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    except Exception as e:  # reported as this cell's error; the run goes on
        out["error"] = f"{type(e).__name__}: {str(e)[:400]}"
    print("@@RESULT@@" + json.dumps(out))
    return 0


def _child(net, peer, env, measure, args):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--net", net, "--peer", peer,
           "--min-time", str(args.min_time), "--max-time", str(args.max_time)]
    cmd += (["--measure"] if measure else []) + (["--contended"] if measure and args.contended else [])
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {args.timeout}s"}
    for line in p.stdout.splitlines():
        if line.startswith("@@RESULT@@"):
            return json.loads(line[len("@@RESULT@@"):])
    return {"error": f"exited {p.returncode}: {p.stderr.strip()[-400:]}"}


def run_cell(net, peer, args):
    cache = tempfile.mkdtemp(prefix="graphc-cnn-bench-")
    env = dict(os.environ, GRAPHC_CACHE_DIR=f"{cache}/graphc", TORCHINDUCTOR_CACHE_DIR=f"{cache}/inductor",
               **JAX_CACHE_ENV, JAX_COMPILATION_CACHE_DIR=f"{cache}/jax")
    if args.threads:
        env.update(thread_env(args.threads, os.environ.get("XLA_FLAGS", "")))
    try:
        cold = _child(net, peer, env, False, args) if peer in COMPILING and not args.skip_cold else {}
        warm = _child(net, peer, env, True, args)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    cell = dict(warm)
    if peer in COMPILING:  # build + first step, less one step: the compile alone
        step = warm["timing"]["median"] if "timing" in warm else 0.0
        cell["cold_s"], cell["warm_s"] = (c.get("compile_s", 0.0) - step if "compile_s" in c else None
                                          for c in (cold, warm))
        if args.skip_cold:  # the one process started with empty caches: its compile was cold
            cell["cold_s"], cell["warm_s"] = cell["warm_s"], None
            if "stages" in cell:
                cell["cold_stages"] = cell.pop("stages")
        if "error" in cold:
            cell.setdefault("error", "cold: " + cold["error"])
        if cold.get("stages"):
            cell["cold_stages"] = cold["stages"]
    return cell


def _median_cell(cells):
    ok = sorted((c for c in cells if "timing" in c), key=lambda c: c["timing"]["median"])
    if not ok:
        return cells[0]
    pick = dict(ok[(len(ok) - 1) // 2])
    pick["rounds"] = [c["timing"]["median"] for c in ok]
    return pick


def _mb(b):
    return f"{b / 2**20:.0f} MB" if b else ""


def tables(results, nets, peers):
    out = []
    ms = lambda c: f"{c['timing']['median'] * 1e3:.0f} ms" if "timing" in c else ("ERROR" if "error" in c else "")  # noqa: E731
    out += ["| net | " + " | ".join(peers) + " | graphc / best peer |", "|" + "---|" * (len(peers) + 2)]
    for n in nets:
        cells = [results[n].get(p, {}) for p in peers]
        others = [c["timing"]["median"] for p, c in zip(peers, cells) if p != "graphc" and "timing" in c]
        g = results[n].get("graphc", {})
        ratio = f"{g['timing']['median'] / min(others):.2f}x" if others and "timing" in g else ""
        out.append(f"| {CC.DESCRIPTIONS[n]} | " + " | ".join(ms(c) for c in cells) + f" | {ratio} |")
    out += ["", "Compile (build + first step - one step, fresh process): cold (empty caches) / warm; peak RSS "
            "(whole process); graphc's planned workspace:", "",
            "| net | " + " | ".join(f"{p} compile | {p} peak RSS" for p in peers) + " | graphc workspace |",
            "|" + "---|" * (2 * len(peers) + 2)]
    for n in nets:
        row = []
        for p in peers:
            c = results[n].get(p, {})
            comp = f"{c['cold_s']:.2f} / {c['warm_s']:.2f} s" if c.get("cold_s") is not None and c.get("warm_s") is not None else \
                (f"first step {c['compile_s']:.2f} s" if c.get("compile_s") else "")
            row += [comp, _mb(c.get("peak_rss"))]
        row.append(_mb(results[n].get("graphc", {}).get("workspace")))
        out.append(f"| {CC.DESCRIPTIONS[n]} | " + " | ".join(row) + " |")
    staged = [n for n in nets if results[n].get("graphc", {}).get("stages")]
    if staged:
        out += ["", "graphc's build, stage by stage, wall s (CPU s): `G.function` is what the compile "
                "target measures; the user's model graph (forward, loss, `G.grad`, updates) and the "
                "weights (drawn, made shared variables, momentum buffers) are not graphc's compile:", "",
                "| net | cold G.function | cold graph | cold weights | warm G.function | warm graph | warm weights |",
                "|---|---|---|---|---|---|---|"]
        for n in staged:
            g = results[n]["graphc"]
            row = []
            for kind in ("cold_stages", "stages"):
                st = g.get(kind) or {}
                row += [f"{st[k]['wall']:.2f} ({st[k]['cpu']:.2f})" if k in st else ""
                        for k in ("function", "graph", "weights")]
            out.append(f"| {CC.DESCRIPTIONS[n]} | " + " | ".join(row) + " |")
    if any("contended" in c for r in results.values() for c in r.values()):
        out += ["", "Step time beside a one-core busy loop, and its growth over the quiet step:", "",
                "| net | " + " | ".join(peers) + " |", "|" + "---|" * (len(peers) + 1)]
        for n in nets:
            row = []
            for p in peers:
                c = results[n].get(p, {})
                if "contended" in c and "timing" in c:
                    t = c["contended"]["median"]
                    row.append(f"{t * 1e3:.0f} ms ({t / _quiet_either_side(c):.2f}x)")
                else:
                    row.append("")
            out.append(f"| {CC.DESCRIPTIONS[n]} | " + " | ".join(row) + " |")
    notes = [f"- {n}/{p}: {c['error']}" for n in nets for p, c in results[n].items() if "error" in c]
    notes += [f"- {n}/{p}: loss {c['values'][0]:.5g} vs torch {results[n]['torch']['values'][0]:.5g}"
              for n in nets for p, c in results[n].items() if c.get("agrees") is False]
    return "\n".join(out + ([""] + notes if notes else []))


def _quiet_either_side(cell):
    """The quiet step a contended one is compared with: the mean of the medians before and after
    it (a cell from before the second quiet measurement: the one before)."""
    before = cell["timing"]["median"]
    after = cell.get("quiet_after", {}).get("median")
    return before if after is None else (before + after) / 2


def _check(results):
    for r in results.values():
        ref = r.get("torch", {}).get("values")
        for c in r.values():
            if ref and c.get("values"):
                c["agrees"] = all(abs(a - b) <= LOSS_RTOL * max(abs(b), 1e-6)
                                  for a, b in zip(c["values"], ref))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma list of nets: " + ",".join(CC.NETS))
    ap.add_argument("--peers", default="graphc,torch,torch.compile")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--contended", action="store_true")
    ap.add_argument("--threads", type=int, default=0, metavar="N",
                    help="cap every peer at N threads (OpenMP, BLAS, torch, JAX's NPROC); default: theirs")
    ap.add_argument("--min-time", type=float, default=3.0)
    ap.add_argument("--max-time", type=float, default=20.0)
    ap.add_argument("--timeout", type=int, default=1800)
    ap.add_argument("--skip-cold", action="store_true",
                    help="step times only: no cold process (torch.compile's cold compile takes minutes)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--net", help=argparse.SUPPRESS)
    ap.add_argument("--peer", help=argparse.SUPPRESS)
    ap.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child_main(args)
    nets = [n for n in args.only.split(",") if n] or list(CC.NETS)
    peers = [p for p in args.peers.split(",") if p]
    for n in nets:
        if n not in CC.NETS:
            ap.error(f"unknown net {n!r}; choose from {', '.join(CC.NETS)}")
    for p in peers:
        if p not in PEERS:
            ap.error(f"unknown peer {p!r}; choose from {', '.join(PEERS)}")
    meta = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "argv": sys.argv[1:],
            "machine": H.machine_info(), "rounds": args.rounds, "threads": args.threads or "default"}
    cells = {n: {p: [] for p in peers} for n in nets}
    os.makedirs(args.out, exist_ok=True)
    for r in range(args.rounds):
        for n in nets:
            for p in peers:
                log(f"round {r + 1}: {n} / {p} ...")
                c = run_cell(n, p, args)
                log("   " + json.dumps({k: v for k, v in c.items() if k not in ("timing", "contended", "quiet_after", "values")})
                    + (f" step {c['timing']['median'] * 1e3:.1f} ms" if "timing" in c else ""))
                cells[n][p].append(c)
                with open(os.path.join(args.out, "cnn-partial.json"), "w") as fh:  # a run cut short
                    json.dump({"meta": meta, "cells": cells}, fh)
    results = {n: {p: _median_cell(cs) for p, cs in row.items()} for n, row in cells.items()}
    _check(results)
    text = tables(results, nets, peers)
    print(f"CPU: {meta['machine']['cpu']} ({meta['machine']['cpu_count']} cores); {args.rounds} round(s); "
          f"threads: {meta['threads']}\n")
    print(text)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, time.strftime("cnn-%Y%m%d-%H%M%S.json"))
    with open(path, "w") as fh:
        json.dump({"meta": meta, "results": results}, fh, indent=1)
    print(f"\nwrote {os.path.relpath(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
