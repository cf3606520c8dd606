"""Step time on a quiet machine and beside a one-core busy loop (issue 16's shared-machine target):
graphc (this checkout), graphc-base (another checkout, --baseline PATH) and torch eager, each in a
fresh process, interleaved per round (A B C, A B C, ...), the busy loop started before the child
and stopped after it.

    python bench/threads_contention.py --rounds 3
    python bench/threads_contention.py --baseline /tmp/old --only logreg,tiny --rounds 5

    python bench/threads_contention.py --nets vgg_bn,alexnet_train --baseline /tmp/old --rounds 3

Workloads: `logreg`, Theano's tutorial logistic regression step (400 x 784, L2, SGD: many small
kernels, the case that collapsed: 66-78 s for 10000 steps with two threads beside a busy core);
`mlp` and `lenet` (bench/run.py's steps), `elementwise` (the 16M-element chain), `tiny` (x + y on
10 floats: per-call overhead). Prints one markdown row per (workload, peer): median step time
quiet, contended, and the growth contended / quiet.

`--nets` (bench/peers/cnn_common.py's CNN steps) measures differently: one process per (net, peer)
builds the step once, then alternates quiet and contended phases in it (`--phases` rounds of
`--samples` steps each, the busy loop started 0.3 s before its phase), so the machine's drift over
the minutes a net takes hits both sides alike; growth = median contended / median quiet step.

`--kernels NET` (graphc only) says where a net's contended step loses: one process alternates
quiet and contended phases of G.profile calls (one call each, the profiling build) and prints,
per kernel, the median time quiet and beside the busy loop, split by the thread count the call
ran on (the thread choice's arm), the kernels that grew most first, and the totals per kind.

    python bench/threads_contention.py --kernels alexnet_infer --phases 3 --samples 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

WORKLOADS = ["logreg", "mlp", "lenet", "elementwise", "tiny"]


def _graphc_logreg():
    import numpy as np
    import graphc as G
    rng = np.random.RandomState(0)
    n, feats = 400, 784
    xv = rng.randn(n, feats).astype("float32")
    yv = rng.randint(0, 2, n).astype("float32")
    x, y = G.matrix("x"), G.vector("y")
    w = G.shared(rng.randn(feats).astype("float32") * 0.01, name="w")
    b = G.shared(np.float32(0.0), name="b")
    p1 = G.sigmoid(G.dot(x, w) + b)
    xent = -y * G.log(p1) - (1 - y) * G.log(1 - p1)
    cost = G.mean(xent) + 0.01 * G.sum(w ** 2)
    gw, gb = G.grad(cost, [w, b])
    train = G.function([x, y], cost, updates=[(w, w - 0.1 * gw), (b, b - 0.1 * gb)])
    return lambda: train(xv, yv)


def _torch_logreg():
    import numpy as np
    import torch
    rng = np.random.RandomState(0)
    n, feats = 400, 784
    xv = torch.from_numpy(rng.randn(n, feats).astype("float32"))
    yv = torch.from_numpy(rng.randint(0, 2, n).astype("float32"))
    w = torch.from_numpy(rng.randn(feats).astype("float32") * 0.01).requires_grad_()
    b = torch.zeros((), requires_grad=True)

    def step():
        p1 = torch.sigmoid(xv @ w + b)
        xent = -yv * torch.log(p1) - (1 - yv) * torch.log(1 - p1)
        cost = xent.mean() + 0.01 * (w ** 2).sum()
        cost.backward()
        with torch.no_grad():
            w.sub_(0.1 * w.grad)
            b.sub_(0.1 * b.grad)
            w.grad = None
            b.grad = None
        return cost
    return step


def _build(peer, workload):
    if workload == "logreg":
        return _torch_logreg() if peer == "torch" else _graphc_logreg()
    if peer == "torch":
        from peers import torch_peer as impl
        kwargs = {"compile": False}
    else:
        import graphc_impl as impl
        kwargs = {}
    name = {"mlp": "mlp_step", "lenet": "lenet_step", "elementwise": "elementwise_chain",
            "tiny": "tiny_call"}[workload]
    return getattr(impl, name)(**kwargs)


def child(peer, workload, min_time):
    sys.path.insert(0, os.environ.get("THREADS_BENCH_ROOT", ROOT))  # whose graphc to import
    step = _build(peer, workload)
    for _ in range(3):
        step()
    # batch calls so that a sample is >= 20 ms (the tiny call is ~1 us)
    t0 = time.perf_counter()
    step()
    one = max(time.perf_counter() - t0, 1e-7)
    batch = max(1, int(0.02 / one))
    samples, start = [], time.perf_counter()
    while time.perf_counter() - start < min_time or len(samples) < 5:
        t0 = time.perf_counter()
        for _ in range(batch):
            step()
        samples.append((time.perf_counter() - t0) / batch)
    print(json.dumps({"median": statistics.median(samples), "min": min(samples)}))


def _cnn_step(peer, net):
    if peer == "torch":
        from bench.peers import torch_peer
        return torch_peer.cnn_step(net, compile=False)
    from bench import graphc_cnn
    return graphc_cnn.cnn_step(net)


def cnn_child(peer, net, phases, samples):
    """Quiet and contended phases alternating in this one process (see the module's doc)."""
    sys.path.insert(0, os.environ.get("THREADS_BENCH_ROOT", ROOT))  # whose graphc (and bench/)
    from contend import busy_loop
    step = _cnn_step(peer, net)
    step()
    times = {False: [], True: []}
    for _ in range(phases):
        for contended in (False, True):
            with busy_loop(contended):
                time.sleep(0.3 if contended else 0)
                for _ in range(samples):
                    t0 = time.perf_counter()
                    step()
                    times[contended].append(time.perf_counter() - t0)
    print(json.dumps({"quiet": times[False], "contended": times[True]}))


def _run_cnn_child(peer, net, baseline, phases, samples):
    env = dict(os.environ, THREADS_BENCH_ROOT=baseline if peer == "graphc-base" else ROOT)
    cmd = [sys.executable, __file__, "--cnn-child", peer, net, "--phases", str(phases),
           "--samples", str(samples)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        return None, (out.stderr.strip().splitlines() or ["failed"])[-1]
    return json.loads(out.stdout.strip().splitlines()[-1]), None


def _pair_growth(res, samples):
    """The median over phases of (contended phase / the mean of the quiet phases either side of
    it): the machine's drift between phases cancels more than in the ratio of medians."""
    q = [statistics.median(res["quiet"][i:i + samples]) for i in range(0, len(res["quiet"]), samples)]
    c = [statistics.median(res["contended"][i:i + samples]) for i in range(0, len(res["contended"]), samples)]
    ratios = [c[i] / (q[i] if i + 1 >= len(q) else (q[i] + q[i + 1]) / 2) for i in range(len(c))]
    return statistics.median(ratios)


def cnn_main(args, peers):
    print("| net | peer | quiet | beside a busy core | growth | growth, pairs |")
    print("|---|---|---|---|---|---|")
    for net in args.nets.split(","):
        for peer in peers:
            res, err = _run_cnn_child(peer, net, args.baseline, args.phases, args.samples)
            if res is None:
                print(f"| {net} | {peer} | failed: {err[:80]} | | |", flush=True)
                continue
            mq, mc = statistics.median(res["quiet"]), statistics.median(res["contended"])
            print(f"| {net} | {peer} | {_fmt(mq)} | {_fmt(mc)} | {mc / mq:.2f}x | "
                  f"{_pair_growth(res, args.samples):.2f}x |", flush=True)
            print(f"{net} {peer} quiet {[round(t * 1e3) for t in res['quiet']]} contended "
                  f"{[round(t * 1e3) for t in res['contended']]} load {os.getloadavg()[0]:.1f}",
                  file=sys.stderr, flush=True)


def kernels_child(net, phases, samples):
    """Per-kernel times of `net`'s step, quiet and contended phases alternating (module doc)."""
    sys.path.insert(0, os.environ.get("THREADS_BENCH_ROOT", ROOT))
    import ctypes
    from contend import busy_loop
    import graphc as G
    from bench.peers import cnn_common as CC
    step = _cnn_step("graphc", net)
    step()
    xv, yv = CC.data(net)
    args = (xv, yv) if CC.NETS[net][4] else (xv,)
    gomp = ctypes.CDLL("libgomp.so.1")  # the calling thread's count, as the last call left it
    calls, kernels = [], None
    for _ in range(phases):
        for contended in (False, True):
            with busy_loop(contended):
                time.sleep(0.3 if contended else 0)
                step()  # untimed: its reading still spans the phase before
                for _ in range(samples):
                    rep = G.profile(step.function, *args, repeat=1, warmup=0, compare=False, peak=False)
                    kernels = kernels or [(k.index, k.kind, k.ops) for k in rep.kernels]
                    calls.append({"contended": contended, "threads": gomp.omp_get_max_threads(),
                                  "call": rep.call_seconds, "kernels": [k.seconds for k in rep.kernels]})
    print(json.dumps({"kernels": kernels, "calls": calls}))


def kernels_main(args):
    env = dict(os.environ, THREADS_BENCH_ROOT=args.baseline or ROOT)
    cmd = [sys.executable, __file__, "--kernels-child", args.kernels, "--phases", str(args.phases),
           "--samples", str(args.samples)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        sys.exit(out.stderr.strip()[-2000:])
    res = json.loads(out.stdout.strip().splitlines()[-1])
    kernels, calls = res["kernels"], res["calls"]
    groups = {}  # (contended, threads) -> the calls
    for c in calls:
        groups.setdefault((c["contended"], c["threads"]), []).append(c)
    keys = sorted(groups)
    quiet = [k for k in keys if not k[0]]
    base = max(quiet, key=lambda k: len(groups[k])) if quiet else keys[0]

    def med(key, i=None):
        return statistics.median(c["call"] if i is None else c["kernels"][i] for c in groups[key])

    names = [f"{'contended' if k[0] else 'quiet'} {k[1]} thr ({len(groups[k])})" for k in keys]
    print(f"CPU: {_cpu()}; {os.cpu_count()} cpus; load {os.getloadavg()[0]:.1f}; {args.kernels}, "
          f"medians per kernel; growth over {names[keys.index(base)]}\n")
    print("| kernel | kind | ops | " + " | ".join(names) + " |")
    print("|---|---|---|" + "---|" * len(keys))
    print("| call | | | " + " | ".join(f"{med(k) * 1e3:.1f} ms ({med(k) / med(base):.2f}x)" for k in keys) + " |")
    worst = max((k for k in keys if k[0]), key=lambda k: len(groups[k]), default=base)
    order = sorted(range(len(kernels)), key=lambda i: med(base, i) - med(worst, i))
    shown = [i for i in order if med(worst, i) > 0.005 * med(worst)][:args.top]
    for i in shown:
        idx, kind, ops = kernels[i]
        cells = [f"{med(k, i) * 1e3:.2f} ({med(k, i) / max(med(base, i), 1e-9):.2f}x)" for k in keys]
        print(f"| k{idx} | {kind} | {ops[:40]} | " + " | ".join(cells) + " |")
    kinds = {}
    for i, (_, kind, _) in enumerate(kernels):
        kinds.setdefault(kind, []).append(i)
    print("\n| kind | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(keys))
    for kind, idx in sorted(kinds.items(), key=lambda kv: -sum(med(worst, i) for i in kv[1])):
        tot = {k: sum(med(k, i) for i in idx) for k in keys}
        print(f"| {kind} ({len(idx)}) | " + " | ".join(
            f"{tot[k] * 1e3:.1f} ms ({tot[k] / max(tot[base], 1e-9):.2f}x)" for k in keys) + " |")


def _run_child(peer, workload, contended, baseline, min_time):
    from contend import busy_loop
    env = dict(os.environ)
    env["THREADS_BENCH_ROOT"] = baseline if peer == "graphc-base" else ROOT
    cmd = [sys.executable, __file__, "--child", peer, workload, "--min-time", str(min_time)]
    with busy_loop(contended):
        time.sleep(0.3 if contended else 0)  # the busy loop is running before the step starts
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
    if out.returncode != 0:
        return None, out.stderr.strip().splitlines()[-1:] or ["failed"]
    return json.loads(out.stdout.strip().splitlines()[-1])["median"], None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(WORKLOADS))
    ap.add_argument("--peers", default="graphc,torch")
    ap.add_argument("--baseline", help="another checkout's root: adds the peer graphc-base")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=1.0)
    ap.add_argument("--child", nargs=2, metavar=("PEER", "WORKLOAD"))
    ap.add_argument("--nets", help="comma list of CNN nets (cnn_common.NETS) instead of --only")
    ap.add_argument("--phases", type=int, default=3, help="--nets: quiet/contended phase pairs")
    ap.add_argument("--samples", type=int, default=3, help="--nets: steps timed per phase")
    ap.add_argument("--cnn-child", nargs=2, metavar=("PEER", "NET"))
    ap.add_argument("--kernels", metavar="NET", help="graphc's kernels of one CNN net, quiet vs contended")
    ap.add_argument("--top", type=int, default=25, help="--kernels: rows shown")
    ap.add_argument("--kernels-child", metavar="NET")
    args = ap.parse_args()
    if args.child:
        child(*args.child, args.min_time)
        return
    if args.cnn_child:
        cnn_child(*args.cnn_child, args.phases, args.samples)
        return
    if args.kernels_child:
        kernels_child(args.kernels_child, args.phases, args.samples)
        return
    if args.kernels:
        kernels_main(args)
        return
    peers = args.peers.split(",") + (["graphc-base"] if args.baseline else [])
    if args.nets:
        print(f"CPU: {_cpu()}; {os.cpu_count()} cpus; {args.phases} phase pairs of {args.samples} "
              "steps, median step per side\n")
        cnn_main(args, peers)
        return
    results = {}
    for r in range(args.rounds):
        for workload in args.only.split(","):
            for contended in (False, True):
                for peer in peers:
                    t, err = _run_child(peer, workload, contended, args.baseline, args.min_time)
                    results.setdefault((workload, peer, contended), []).append(t)
                    load = os.getloadavg()[0]
                    print(f"round {r} {workload:12s} {peer:12s} {'contended' if contended else 'quiet':9s} "
                          f"{'%.4g ms' % (t * 1e3) if t else err} load {load:.1f}", file=sys.stderr, flush=True)
    print(f"\nCPU: {_cpu()}; {os.cpu_count()} cpus; rounds {args.rounds}, median round per cell\n")
    print("| workload | peer | quiet | beside a busy core | growth |")
    print("|---|---|---|---|---|")
    for workload in args.only.split(","):
        for peer in peers:
            q = [t for t in results[(workload, peer, False)] if t]
            c = [t for t in results[(workload, peer, True)] if t]
            if not q or not c:
                print(f"| {workload} | {peer} | failed | | |")
                continue
            mq, mc = statistics.median(q), statistics.median(c)
            print(f"| {workload} | {peer} | {_fmt(mq)} | {_fmt(mc)} | {mc / mq:.2f}x |")


def _fmt(t):
    return f"{t * 1e6:.2f} us" if t < 1e-3 else f"{t * 1e3:.2f} ms"


def _cpu():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()
