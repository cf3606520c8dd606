#!/usr/bin/env python
"""One convolution layer's training work (forward, input and weight gradients) for graphc and torch
eager, interleaved in one process, CPU time (the machine is shared: wall time is noise).

    OMP_NUM_THREADS=1 python bench/conv_layers.py 100,32,16,16,32,5,1,2 --rounds 5
    python bench/conv_layers.py 64,64,32,32,64,3,1,1 --threads 2 --env GRAPHC_CONV_WORKSPACE=33554432

A layer is N,C,H,W,C_out,K,stride,pad (float32). --env sets a compile-time GRAPHC_ variable for a
second graphc variant (A/B of a lowering choice in one process). --part fwd|gi|gw times one kernel
alone (forward, input gradient, weight gradient; torch: aten.convolution_backward with one output)
instead of the three together."""
from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _out_size(layer):
    N, C, H, W, CO, K, S, P = layer
    return (H + 2 * P - K) // S + 1, (W + 2 * P - K) // S + 1


def _graphc_layer(G, np, layer, env, part="all"):
    N, C, H, W, CO, K, S, P = layer
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        rng = np.random.default_rng(0)
        x = G.tensor4("x")
        w = G.shared((rng.standard_normal((CO, C, K, K)) * 0.1).astype(np.float32), name="w")
        y = G.conv2d(x, w, stride=(S, S), padding=(P, P))
        gy = G.tensor4("gy")
        if part == "all":
            f = G.function([x], G.grad(G.sum(y * y), [x, w]))
        elif part == "fwd":  # (summed: a fresh 16 MB output per call measures page faults)
            f = G.function([x], G.sum(y))
        else:  # the one gradient: d sum(y * gy) is gy, so only that conv kernel runs
            g = G.grad(G.sum(y * gy), x if part == "gi" else w)
            f = G.function([x, gy], G.sum(g) if part == "gi" else g)
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    xv = rng.standard_normal((N, C, H, W)).astype(np.float32)
    gyv = rng.standard_normal((N, CO) + _out_size(layer)).astype(np.float32)
    if part in ("gi", "gw"):
        return lambda: f(xv, gyv)
    return lambda: f(xv)


def _torch_layer(torch, layer, part="all"):
    N, C, H, W, CO, K, S, P = layer
    x = torch.randn(N, C, H, W, requires_grad=True)
    w = (torch.randn(CO, C, K, K) * 0.1).requires_grad_()
    if part == "fwd":
        return lambda: torch.nn.functional.conv2d(x.detach(), w.detach(), stride=S, padding=P).sum()
    if part in ("gi", "gw"):
        gy = torch.randn((N, CO) + _out_size(layer))
        mask = [part == "gi", part == "gw", False]
        return lambda: torch.ops.aten.convolution_backward(
            gy, x.detach(), w.detach(), None, [S, S], [P, P], [1, 1], False, [0, 0], 1, mask)[
                0 if part == "gi" else 1].sum()

    def step():
        y = torch.nn.functional.conv2d(x, w, stride=S, padding=P)
        (y * y).sum().backward()
        x.grad = w.grad = None
    return step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("layer", help="N,C,H,W,C_out,K,stride,pad")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE for a graphc variant")
    ap.add_argument("--part", choices=("all", "fwd", "gi", "gw"), default="all")
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    sys.path.insert(0, ROOT)
    import numpy as np
    import graphc as G
    layer = [int(v) for v in args.layer.split(",")]
    steps = {"graphc": _graphc_layer(G, np, layer, {}, args.part)}
    for i, kv in enumerate(args.env):
        name, _, value = kv.partition("=")
        steps[f"graphc[{kv}]"] = _graphc_layer(G, np, layer, {name: value}, args.part)
    try:
        import torch
        torch.set_num_threads(args.threads)
        steps["torch"] = _torch_layer(torch, layer, args.part)
    except ImportError:
        pass
    times = {k: [] for k in steps}
    for s in steps.values():
        s()
    for _ in range(args.rounds):
        for k, s in steps.items():
            t0 = time.process_time()
            s()
            times[k].append(time.process_time() - t0)
    N, C, H, W, CO, K, S, P = layer
    ho, wo = (H + 2 * P - K) // S + 1, (W + 2 * P - K) // S + 1
    flops = (3 if args.part == "all" else 1) * 2 * N * CO * C * K * K * ho * wo
    best = min(min(t) for t in times.values())
    for k, t in times.items():
        m = min(t)
        print(f"{args.layer} {args.part} threads={args.threads} {k:32s} min {1e3 * m:8.1f} ms "
              f"{flops / m / 1e9:6.1f} GFLOP/s  {m / best:5.2f}x best", flush=True)


if __name__ == "__main__":
    main()
