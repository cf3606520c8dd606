#!/usr/bin/env python
"""A CNN's training step with batch norm's ReLU / residual add folded into its kernels
(graphc/passes/fuse_batch_norm.py) against the same step with the pass turned off, both compiled
in ONE process and timed interleaved, round by round: per-step CPU ms (all threads) and wall ms,
the median of each. Also the kernel counts of both programs.

    python bench/batch_norm_fold_step.py resnet20 --threads 1 --rounds 5
    python bench/batch_norm_fold_step.py vgg_bn --threads 2
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def timed(step, min_time):
    step()
    n, c0, w0 = 0, time.process_time(), time.perf_counter()
    while time.perf_counter() - w0 < min_time or n < 2:
        step()
        n += 1
    return (time.process_time() - c0) / n * 1e3, (time.perf_counter() - w0) / n * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("net")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=2.0)
    args = ap.parse_args()
    from bench.peers.threads import thread_env
    os.environ.update(thread_env(args.threads, os.environ.get("XLA_FLAGS", "")))
    from bench import graphc_cnn
    from graphc.config import config
    steps = {}
    for form, disabled in (("folded", []), ("unfolded", ["fuse_batch_norm"])):
        config.disabled_passes = disabled  # (a warm load rebuilds its program now, with these)
        steps[form] = step = graphc_cnn.cnn_step(args.net)
        kinds = [k.kind for k in step.function.program.program.kernels]
        print(f"{form}: {len(kinds)} kernels, {kinds.count('elemwise')} elementwise, compile "
              f"{step.stages['function']['wall']:.1f} s wall", flush=True)
    config.disabled_passes = []
    got = {k: [] for k in steps}
    for _ in range(args.rounds):
        for k, step in steps.items():
            got[k].append(timed(step, args.min_time))
    print(f"{args.net}, {args.threads} thread(s), load {os.getloadavg()[0]:.1f}, {args.rounds} rounds (median)")
    print("| form | CPU ms | wall ms |")
    print("|---|---|---|")
    for k, v in got.items():
        print(f"| {k} | {statistics.median(c for c, _ in v):.1f} | {statistics.median(w for _, w in v):.1f} |")
    c = {k: statistics.median(x for x, _ in v) for k, v in got.items()}
    print(f"folded / unfolded CPU: {c['folded'] / c['unfolded']:.3f}")


if __name__ == "__main__":
    sys.exit(main())
