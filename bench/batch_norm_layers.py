#!/usr/bin/env python
"""Training batch norm, forward and backward, as one op (G.batch_norm_train) against the form it
replaced (reductions and elementwise ops: normalization.batch_norm_train_composed), on the layers
of ResNet-20 (batch 128) and VGG+BN (batch 64), float32. Both compiled in ONE process and timed
interleaved, round by round: per-call CPU ms (time.process_time, all threads) and wall ms.

    python bench/batch_norm_layers.py --rounds 5
    OMP_NUM_THREADS=1 python bench/batch_norm_layers.py
    python bench/batch_norm_layers.py --fold relu       # relu(bn(x)): folded vs unfolded
    python bench/batch_norm_layers.py --fold add_relu   # relu(bn(x) + s), s a residual input

--fold compares the step with batch norm's ReLU (and residual add) folded into its kernels
(graphc/passes/fuse_batch_norm.py) against the same graph with that pass off; the columns then
read "folded" for "fused" and "unfolded" for "composed".

The function per layer: y, mean, var = bn(x, gamma, beta); outputs y and the gradients of
sum(y * r) to x, gamma and beta (r a fixed input), as in a train step.
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

import numpy as np  # noqa: E402

import graphc as G  # noqa: E402
from graphc.ir.ops.normalization import batch_norm_train_composed  # noqa: E402

LAYERS = {"resnet 16x32x32": (128, 16, 32, 32), "resnet 32x16x16": (128, 32, 16, 16),
          "resnet 64x8x8": (128, 64, 8, 8), "vgg 64x32x32": (64, 64, 32, 32),
          "vgg 128x16x16": (64, 128, 16, 16), "vgg 256x8x8": (64, 256, 8, 8), "dense 512": (64, 512)}


def build(form, shape, fold=None, disabled=()):
    from graphc.config import config
    x, r = G.tensor("x", shape), G.tensor("r", shape)
    gamma, beta = G.tensor("gamma", (shape[1],)), G.tensor("beta", (shape[1],))
    y = form(x, gamma, beta)[0]
    ins, wrt = [x, r, gamma, beta], [x, gamma, beta]
    if fold == "relu":
        y = G.relu(y)
    elif fold == "add_relu":  # a residual input s; its gradient is an output too, as in ResNet
        s = G.tensor("s", shape)
        y = G.relu(y + s)
        ins, wrt = ins + [s], wrt + [s]
    saved, config.disabled_passes = config.disabled_passes, list(disabled)
    try:
        return G.function(ins, [y] + G.grad((y * r).sum(), wrt))
    finally:
        config.disabled_passes = saved


def per_call(f, args, min_time):
    f(*args)
    n, c0, w0 = 0, time.process_time(), time.perf_counter()
    while time.perf_counter() - w0 < min_time or n < 3:
        f(*args)
        n += 1
    return (time.process_time() - c0) / n * 1e3, (time.perf_counter() - w0) / n * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=0.5)
    ap.add_argument("--only", default="", help="comma list of layer names (substrings)")
    ap.add_argument("--fold", choices=("relu", "add_relu"), default=None,
                    help="folded vs unfolded batch norm + relu (or + residual add + relu)")
    args = ap.parse_args()
    rng = np.random.RandomState(0)
    forms = {"fused": G.batch_norm_train, "composed": batch_norm_train_composed}
    print(f"load {os.getloadavg()[0]:.1f}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'default')}")
    print("| layer | fused CPU ms | composed CPU ms | composed / fused | fused wall ms | composed wall ms |")
    print("|---|---|---|---|---|---|")
    for name, shape in LAYERS.items():
        if args.only and not any(s in name for s in args.only.split(",")):
            continue
        vals = [rng.standard_normal(shape).astype("float32"), rng.uniform(0.5, 1.5, shape).astype("float32"),
                rng.uniform(0.5, 1.5, shape[1]).astype("float32"), rng.standard_normal(shape[1]).astype("float32")]
        if args.fold:
            vals = vals + [rng.standard_normal(shape).astype("float32")] * (args.fold == "add_relu")
            fs = {"fused": build(G.batch_norm_train, shape, args.fold),
                  "composed": build(G.batch_norm_train, shape, args.fold, ["fuse_batch_norm"])}
        else:
            fs = {k: build(form, shape) for k, form in forms.items()}
        got = {k: [] for k in fs}
        for _ in range(args.rounds):
            for k, f in fs.items():
                got[k].append(per_call(f, vals, args.min_time))
        med = {k: (statistics.median(c for c, _ in v), statistics.median(w for _, w in v)) for k, v in got.items()}
        print(f"| {name} {shape} | {med['fused'][0]:.2f} | {med['composed'][0]:.2f} | "
              f"{med['composed'][0] / med['fused'][0]:.2f} | {med['fused'][1]:.2f} | {med['composed'][1]:.2f} |",
              flush=True)
    print(f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    sys.exit(main())
