#!/usr/bin/env python
"""Run the benchmark workloads for every available peer (and graphc).

    python bench/run.py                       # everything, ~10 min on 2 cores
    python bench/run.py --quick               # fewer samples
    python bench/run.py --only mlp,tiny --peers numpy,jax,graphc
    python bench/run.py --list

Prints a markdown table and writes bench/results/run-<stamp>.json (+ latest.json).
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# Environment for child processes, taken before any peer is imported here (graphc
# and pytensor_peer set variables on import that must not leak into other peers).
BASE_ENV = dict(os.environ)

import numpy as np  # noqa: E402

from bench import harness as H  # noqa: E402
from bench.peers import PEER_NAMES, PEERS, PeerUnavailable, load_peer  # noqa: E402
from bench.peers import common as C  # noqa: E402

# name -> (builder, params, kind of result for the agreement check)
WORKLOADS = {
    "tiny": ("tiny_call", {}, "array"),
    "mlp": ("mlp_step", {"batch": 128}, "loss"),
    "elementwise": ("elementwise_chain", {"n": C.ELEM_N}, "array"),
    "lenet": ("lenet_step", {"batch": 64}, "loss"),
    "lstm": ("lstm_step", dict(C.LSTM_DEFAULTS), "loss"),
    "lstm_unrolled": ("lstm_step_unrolled", dict(C.LSTM_DEFAULTS), "loss"),  # graphc only
    "compile": ("cold_compile_mlp", {}, None),
}
ROW_NAMES = {
    "tiny": "tiny_call (z=x+y, 10 f32)",
    "mlp": "mlp_step (784-512-512-10, b=128)",
    "elementwise": "elementwise_chain (16M f32)",
    "lenet": "lenet_step (b=64, momentum)",
    "lstm": "lstm_step (64->256, T=32, b=32)",
    "lstm_unrolled": "lstm_step unrolled (no scan)",
    "compile": "compile_mlp cold / warm",
}

SLOW_STEP_S = 2.0   # steps slower than this get 3 samples and no extra warm-up
RETRIES = 0         # --retries: re-measure noisy entries up to this many times
WAIT_QUIET = 0.0    # --wait-quiet: seconds to wait for other processes to calm down
LOSS_RTOL = 1e-3
ARRAY_ATOL = 1e-4


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ references
_ref_cache = {}


def reference(workload):
    """Reference values: numpy peer's first two losses, or exact arrays."""
    if workload in _ref_cache:
        return _ref_cache[workload]
    builder, params, kind = WORKLOADS[workload]
    if workload == "elementwise":
        ref = C.elementwise_ref(C.elementwise_data(params["n"]))
    elif workload == "tiny":
        x, y = C.tiny_data()
        ref = x.astype(np.float64) + y
    else:
        from bench.peers import numpy_peer
        step = getattr(numpy_peer, builder.replace("_unrolled", ""))(**params)
        ref = [float(step()), float(step())]
    _ref_cache[workload] = ref
    return ref


def check(workload, values):
    kind = WORKLOADS[workload][2]
    ref = reference(workload)
    if kind == "loss":
        got = [float(C.to_numpy(v)) for v in values]
        err = max(abs(g - r) / max(abs(r), 1e-12) for g, r in zip(got, ref))
        return {"values": got, "ref": ref, "max_rel_err": err, "ok": bool(err <= LOSS_RTOL)}
    got = C.to_numpy(values[0]).astype(np.float64)
    if got.shape != ref.shape:
        return {"ok": False, "error": f"shape {got.shape} != {ref.shape}"}
    err = float(np.max(np.abs(got - ref)))
    return {"max_abs_err": err, "ok": bool(err <= ARRAY_ATOL)}


# ------------------------------------------------------------------ runners
def run_timed(workload, peer, res, mopts):
    builder_name, params, _ = WORKLOADS[workload]
    row = workload
    try:
        mod, kw = load_peer(peer)
        fn = getattr(mod, builder_name, None)
        if fn is None:
            raise PeerUnavailable(f"{peer} has no {builder_name}")
        t0 = time.perf_counter()
        step = fn(**params, **kw)
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        v1 = step()
        first_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        v2 = step()
        second_s = time.perf_counter() - t0
        chk = check(workload, [v1, v2])
        del v1, v2
        opts = dict(mopts)
        if second_s > SLOW_STEP_S:  # very slow step: a few samples are all we can afford
            opts.update(warmup=0, min_runs=3, min_time=0.0)
        if WAIT_QUIET:
            H.wait_for_quiet(WAIT_QUIET)
        load = list(os.getloadavg())
        timing = H.measure(step, **opts)
        for _ in range(RETRIES):  # noisy: wait for a quieter machine, keep the quieter sample
            if timing.other_cpu is None or timing.other_cpu <= H.NOISY:
                break
            log(f"  {peer:14s} noisy ({timing.other_cpu:.0%} other CPU): measuring again")
            H.wait_for_quiet(max(WAIT_QUIET, 15.0))
            again = H.measure(step, **dict(opts, warmup=1))
            if (again.other_cpu or 0) < timing.other_cpu:
                timing, load = again, list(os.getloadavg())
        e = H.Entry(row, peer, "ok", timing=timing.as_dict(), build_s=build_s,
                    first_call_s=first_s, note=getattr(step, "note", "") or "", check=chk,
                    loadavg=load)
        flag = "" if chk.get("ok", True) else f"  CHECK FAILED {chk}"
        oc = f"  other-cpu {timing.other_cpu:.0%}" if timing.other_cpu is not None else ""
        log(f"  {peer:14s} {H.fmt_time(timing.median):>10s}  iqr {H.fmt_time(timing.iqr):>9s}"
            f"  n={timing.runs}x{timing.number}  build {build_s:.1f}s first {first_s:.2f}s{oc}{flag}")
    except PeerUnavailable as ex:
        e = H.Entry(row, peer, "skipped", message=str(ex))
        log(f"  {peer:14s} skipped: {ex}")
    except Exception as ex:  # keep going: one broken peer must not stop the run
        tb = traceback.format_exc(limit=3)
        e = H.Entry(row, peer, "error", message=f"{type(ex).__name__}: {ex}"[:500])
        log(f"  {peer:14s} ERROR {type(ex).__name__}: {str(ex)[:300]}\n{tb}")
    step = None
    gc.collect()
    return res.add(e)


_CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
t0 = time.perf_counter()
out = {{}}
try:
    from bench.peers import load_peer, PeerUnavailable
    mod, kw = load_peer({peer!r})
    out["import_s"] = time.perf_counter() - t0
    # Make the data once untimed (numpy.random's import and set-up): every peer's timed build
    # makes it again, now at the cost of filling two arrays.
    from bench.peers import common as C
    C.mlp_data(); C.mlp_params()
    fn = getattr(mod, "cold_compile_mlp", None)
    if fn is None:
        raise PeerUnavailable("no cold_compile_mlp")
    out["seconds"] = fn(**kw)
    out["note"] = ""
except PeerUnavailable as e:
    out["skipped"] = str(e)
except Exception as e:
    out["error"] = type(e).__name__ + ": " + str(e)[:400]
print("@@RESULT@@" + json.dumps(out))
"""


def _child_env(cache):
    env = dict(BASE_ENV)
    flags = env.get("PYTENSOR_FLAGS", "")
    env["PYTENSOR_FLAGS"] = ",".join(f for f in [flags, f"base_compiledir={cache}/pytensor"] if f)
    env["TORCHINDUCTOR_CACHE_DIR"] = f"{cache}/inductor"
    env["JAX_COMPILATION_CACHE_DIR"] = f"{cache}/jax"
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    env["GRAPHC_CACHE_DIR"] = f"{cache}/graphc"
    env["NUMBA_CACHE_DIR"] = f"{cache}/numba"
    return env


def _child(peer, env, timeout):
    code = _CHILD.format(root=ROOT, peer=peer)
    try:
        p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout}s"}
    for line in p.stdout.splitlines():
        if line.startswith("@@RESULT@@"):
            return json.loads(line[len("@@RESULT@@"):])
    return {"error": f"child exited {p.returncode}: {p.stderr.strip()[-400:]}"}


def run_compile(peer, res, timeout=600):
    """Cold (empty on-disk caches) and warm (caches from the cold run) compile of
    the MLP train step, each in a fresh interpreter."""
    row = "compile"
    kw = dict(next(k for n, _, k in PEERS if n == peer))
    if kw.get("compile") is False:
        return None  # eager torch: nothing to compile
    if peer != "graphc-base":  # (another checkout's graphc can only be imported in a child)
        try:
            mod, _ = load_peer(peer)
        except PeerUnavailable as ex:
            log(f"  {peer:14s} skipped: {ex}")
            return res.add(H.Entry(row, peer, "skipped", message=str(ex)))
        if not hasattr(mod, "cold_compile_mlp"):
            return None  # not a compiling peer (numpy)
    cache = tempfile.mkdtemp(prefix="graphc-bench-cold-")
    try:
        env = _child_env(cache)
        if WAIT_QUIET:
            H.wait_for_quiet(WAIT_QUIET)
        mon = H.CpuMonitor()
        cold = _child(peer, env, timeout)
        warm = _child(peer, env, timeout) if "seconds" in cold else {}
        other = mon.other()
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    if "skipped" in cold:
        e = H.Entry(row, peer, "skipped", message=cold["skipped"])
    elif "error" in cold:
        e = H.Entry(row, peer, "error", message=cold["error"])
    else:
        e = H.Entry(row, peer, "ok", cold_s=cold["seconds"], warm_s=warm.get("seconds"),
                    import_s=cold.get("import_s"), other_cpu=other,
                    note=f"import {cold.get('import_s', 0):.1f}s (not included)")
    if e.status == "ok":
        log(f"  {peer:14s} cold {e.cold_s:.2f}s  warm {H.fmt_time(e.warm_s)}  "
            f"(import {e.import_s:.1f}s)  other-cpu {other or 0:.0%}")
    else:
        log(f"  {peer:14s} {e.status}: {e.message}")
    return res.add(e)


def thread_env(n):
    """Environment variables that cap the thread pools of all peers at ``n``."""
    from bench.peers.threads import thread_env as peers_thread_env  # JAX's NPROC included
    return peers_thread_env(n, BASE_ENV.get("XLA_FLAGS", ""))


def run_worker(peer, workloads, quick, res, timeout=1800):
    """Run ``workloads`` for one peer in a fresh interpreter (isolates thread
    pools / BLAS instances of different libraries and survives crashes)."""
    fd, out = tempfile.mkstemp(prefix="graphc-bench-", suffix=".json")
    os.close(fd)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", peer, "--worker-out", out,
           "--only", ",".join(workloads), "--wait-quiet", str(WAIT_QUIET),
           "--retries", str(RETRIES)] + (["--quick"] if quick else [])
    try:
        p = subprocess.run(cmd, timeout=timeout, stdout=subprocess.DEVNULL, env=BASE_ENV)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        rc = f"timeout {timeout}s"
    try:
        with open(out) as fh:
            data = json.load(fh)
        for d in data["entries"]:
            res.add(H.Entry(**d))
    except (OSError, ValueError, KeyError):
        for w in workloads:
            res.add(H.Entry(w, peer, "error",
                            message=f"worker process died (rc={rc}) before reporting"))
    finally:
        os.unlink(out)


def median_round(rounds):
    """Per (workload, peer), the entry of the median round (by its median time; for the compile
    row, cold and warm are each the median over the rounds). One round: its entries as they are."""
    if len(rounds) == 1:
        return rounds[0].entries
    out, keys = [], []
    for rr in rounds:
        for e in rr.entries:
            if (e.workload, e.peer) not in keys:
                keys.append((e.workload, e.peer))
    for w, p in keys:
        found = [e for rr in rounds for e in [rr.get(w, p)] if e is not None]
        ok = sorted((e for e in found if e.status == "ok" and e.median is not None),
                    key=lambda e: e.median)
        if not ok:
            out.append(found[0])
            continue
        pick = dataclasses.replace(ok[(len(ok) - 1) // 2])
        if pick.cold_s is not None:
            warms = sorted(e.warm_s for e in ok if e.warm_s is not None)
            pick.warm_s = warms[(len(warms) - 1) // 2] if warms else None
        values = ", ".join(H.fmt_time(e.median) for e in ok)
        pick.note = (pick.note + "; " if pick.note else "") + \
            f"median of {len(ok)} rounds ({values})"
        out.append(pick)
    return out


def peer_versions():
    out = {}
    for name in PEER_NAMES:
        if name == "graphc-base":
            out[name] = BASE_ENV.get("GRAPHC_BENCH_BASELINE", "unavailable: no --baseline")
            continue
        try:
            mod, _ = load_peer(name)
            info = getattr(mod, "info", None)
            out[name] = info() if info else "available"
        except PeerUnavailable as ex:
            out[name] = f"unavailable: {ex}"
    return out


def _byte_compile_graphc():
    """Write graphc's bytecode, as installing a wheel does. The peers come from wheels with their
    .pyc files; a source checkout run with PYTHONDONTWRITEBYTECODE set would otherwise recompile
    graphc's modules in every fresh process, inside the timed cold compile."""
    import compileall
    import graphc
    compileall.compile_dir(os.path.dirname(graphc.__file__), quiet=1)
    baseline = BASE_ENV.get("GRAPHC_BENCH_BASELINE")
    if baseline:
        compileall.compile_dir(os.path.join(baseline, "graphc"), quiet=1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma list of workloads: " + ",".join(WORKLOADS))
    ap.add_argument("--peers", default="", help="comma list of peers: " + ",".join(PEER_NAMES))
    ap.add_argument("--quick", action="store_true", help="fewer samples (about half the time)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"), help="JSON directory")
    ap.add_argument("--no-json", action="store_true")
    ap.add_argument("--list", action="store_true", help="list workloads and peers and exit")
    ap.add_argument("--in-process", action="store_true",
                    help="run all peers in this process (default: one fresh process per peer)")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="SEC",
                    help="before each measurement wait up to SEC seconds for other processes "
                         "to leave the CPUs (< 15%% busy); the machine is shared")
    ap.add_argument("--retries", type=int, default=0, metavar="N",
                    help="re-measure an entry up to N times while other processes keep more "
                         "than 20%% of the CPUs busy (waits up to 15 s for quiet first); keeps "
                         "the quietest measurement")
    ap.add_argument("--threads", type=int, default=0, metavar="N",
                    help="limit every peer to N threads (OMP/OpenBLAS/MKL/Numba/torch env, "
                         "XLA single-thread flags for N=1); default: library defaults. "
                         "N=1 gives far steadier numbers on a shared machine")
    ap.add_argument("--rounds", type=int, default=1, metavar="N",
                    help="measure everything N times, the peers interleaved (A B C, A B C, ...), "
                         "and report per cell the median round: on a shared machine whose speed "
                         "drifts, every peer then sees the same drift")
    ap.add_argument("--baseline", default="", metavar="PATH",
                    help="also time the graphc of another checkout at PATH as peer graphc-base "
                         "(the commit before a change), interleaved with this one")
    ap.add_argument("--contended", action="store_true",
                    help="run every peer's timed workloads beside a one-core busy loop "
                         "(bench/contend.py): how each copes with a shared machine")
    ap.add_argument("--worker", help=argparse.SUPPRESS)       # internal: run one peer
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.list:
        print("workloads:", ", ".join(WORKLOADS))
        print("peers:", ", ".join(PEER_NAMES))
        for k, v in peer_versions().items():
            print(f"  {k}: {v}")
        return 0
    workloads = [w.strip() for w in args.only.split(",") if w.strip()] or list(WORKLOADS)
    peers = [p.strip() for p in args.peers.split(",") if p.strip()] or \
        [p for p in PEER_NAMES if p != "graphc-base"]
    if args.baseline:
        BASE_ENV["GRAPHC_BENCH_BASELINE"] = os.path.abspath(args.baseline)
        if "graphc-base" not in peers:
            peers.append("graphc-base")
    for w in workloads:
        if w not in WORKLOADS:
            ap.error(f"unknown workload {w!r}; choose from {', '.join(WORKLOADS)}")
    for p in peers:
        if p not in PEER_NAMES:
            ap.error(f"unknown peer {p!r}; choose from {', '.join(PEER_NAMES)}")

    global WAIT_QUIET, RETRIES
    WAIT_QUIET = args.wait_quiet
    RETRIES = args.retries
    if args.threads and not args.worker:
        BASE_ENV.update(thread_env(args.threads))
    if args.quick:
        mopts = dict(warmup=1, min_runs=5, min_time=0.3, max_time=4.0)
    else:
        mopts = dict(warmup=2, min_runs=7, min_time=1.0, max_time=8.0)

    if not args.worker:
        _byte_compile_graphc()

    if args.worker:
        res = H.Results()
        for w in workloads:
            if w != "compile":
                log(f"[{w}] {ROW_NAMES[w]}")
                run_timed(w, args.worker, res, mopts)
        with open(args.worker_out, "w") as fh:
            json.dump(res.to_json(), fh, default=str)
        return 0

    t_start = time.perf_counter()
    res = H.Results()
    res.meta = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "argv": sys.argv[1:],
                "quick": args.quick, "measure": mopts, "machine": H.machine_info(),
                "row_names": ROW_NAMES, "threads": args.threads or "library defaults",
                "contended": args.contended}
    log("memcpy bandwidth ...")
    res.meta["memcpy"] = H.memcpy_bandwidth()
    log(f"  {res.meta['memcpy']['gbps_best']:.1f} GB/s best, "
        f"{res.meta['memcpy']['gbps_median']:.1f} GB/s median (read+write)")
    res.meta["versions"] = {p: v for p, v in peer_versions().items() if p in peers}

    timed = [w for w in workloads if w != "compile"]
    rounds = []
    for r in range(max(1, args.rounds)):
        if args.rounds > 1:
            log(f"##### round {r + 1} of {args.rounds}")
        rr = H.Results()
        if args.in_process:
            for w in timed:
                log(f"[{w}] {ROW_NAMES[w]}")
                for p in peers:
                    run_timed(w, p, rr, mopts)
        elif timed:
            from bench.contend import busy_loop
            for p in peers:
                log(f"=== {p} (fresh process{', beside a busy loop' if args.contended else ''})")
                with busy_loop(args.contended):
                    run_worker(p, timed, args.quick, rr)
        if "compile" in workloads:
            log(f"[compile] {ROW_NAMES['compile']} (fresh processes)")
            for p in peers:
                run_compile(p, rr)
        rounds.append(rr)
    res.entries = median_round(rounds)
    res.meta["rounds"] = len(rounds)
    res.sort(list(WORKLOADS), PEER_NAMES)

    res.meta["memcpy_after"] = H.memcpy_bandwidth()
    res.meta["wall_s"] = time.perf_counter() - t_start
    print()
    print(res.table())
    print()
    mc = res.meta["memcpy"]
    print(f"memcpy {mc['gbps_best']:.1f} GB/s (before), "
          f"{res.meta['memcpy_after']['gbps_best']:.1f} GB/s (after); "
          f"total wall time {res.meta['wall_s']:.0f} s")
    if not args.no_json:
        path = res.write_json(args.out)
        print(f"wrote {os.path.relpath(path, os.getcwd())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
