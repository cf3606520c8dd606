#!/usr/bin/env python
"""One convolution layer's three kernels SEPARATELY (forward, input gradient, weight gradient) for
graphc and torch eager, interleaved in one process, CPU time (the machine is shared: wall time is
noise). bench/conv_layers.py times the three together; this says which kernel a choice changes.

    python bench/conv_kernels.py 128,64,8,8,64,3,1,1 --rounds 7
    python bench/conv_kernels.py 128,16,32,32,32,1,2,0 --env GRAPHC_CONV_ALGO=gemm
    python bench/conv_kernels.py 128,64,8,8,64,3,1,1 --graphc-root /work/main   # another checkout

A layer is N,C,H,W,C_out,K,stride,pad (float32). Each --env NAME=VALUE adds a graphc variant
compiled with that GRAPHC_ setting (an A/B of a lowering choice in one process)."""
from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KINDS = ("fwd", "gi", "gw")


def _graphc_kernels(G, np, layer, env):
    N, C, H, W, CO, K, S, P = layer
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        rng = np.random.default_rng(0)
        x, w = G.tensor("x", (N, C, H, W)), G.tensor("w", (CO, C, K, K))
        y = G.conv2d(x, w, stride=(S, S), padding=(P, P))
        gy = G.tensor("gy", tuple(int(d) for d in y.type.shape))
        gx, gw = G.grad((y * gy).sum(), [x, w])
        fns = {"fwd": G.function([x, w], y), "gi": G.function([x, w, gy], gx),
               "gw": G.function([x, w, gy], gw)}
        kinds = {k: [q.kind for q in f.program.program.kernels if q.kind.startswith("conv")]
                 for k, f in fns.items()}
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    xv = rng.standard_normal((N, C, H, W)).astype(np.float32)
    wv = (rng.standard_normal((CO, C, K, K)) * 0.1).astype(np.float32)
    gyv = rng.standard_normal(tuple(int(d) for d in y.type.shape)).astype(np.float32)
    calls = {"fwd": lambda: fns["fwd"](xv, wv), "gi": lambda: fns["gi"](xv, wv, gyv),
             "gw": lambda: fns["gw"](xv, wv, gyv)}
    return calls, kinds


def _torch_kernels(torch, layer):
    N, C, H, W, CO, K, S, P = layer
    x, w = torch.randn(N, C, H, W), torch.randn(CO, C, K, K) * 0.1
    y = torch.nn.functional.conv2d(x, w, stride=S, padding=P)
    gy = torch.randn_like(y)
    g = torch.nn.grad
    return {"fwd": lambda: torch.nn.functional.conv2d(x, w, stride=S, padding=P),
            "gi": lambda: g.conv2d_input(x.shape, w, gy, stride=S, padding=P),
            "gw": lambda: g.conv2d_weight(x, w.shape, gy, stride=S, padding=P)}, None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("layer", help="N,C,H,W,C_out,K,stride,pad")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE for a graphc variant")
    ap.add_argument("--no-default", action="store_true", help="only the --env variants")
    ap.add_argument("--graphc-root", default=ROOT, help="the checkout whose graphc is measured")
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    sys.path.insert(0, os.path.abspath(args.graphc_root))
    import numpy as np
    import graphc as G
    layer = [int(v) for v in args.layer.split(",")]
    peers = {} if args.no_default else {"graphc": _graphc_kernels(G, np, layer, {})}
    for kv in args.env:
        envs = dict(e.partition("=")[::2] for e in kv.split(","))
        peers[f"graphc[{kv}]"] = _graphc_kernels(G, np, layer, envs)
    try:
        import torch
        torch.set_num_threads(args.threads)
        peers["torch"] = _torch_kernels(torch, layer)
    except ImportError:
        pass
    times = {(p, k): [] for p in peers for k in KINDS}
    for calls, _ in peers.values():
        for c in calls.values():
            c()
    for _ in range(args.rounds):
        for p, (calls, _) in peers.items():
            for k in KINDS:
                t0 = time.process_time()
                calls[k]()
                times[p, k].append(time.process_time() - t0)
    print(f"{args.layer} threads={args.threads} (min CPU ms over {args.rounds} rounds; load "
          f"{os.getloadavg()[0]:.1f})")
    for p, (_, kinds) in peers.items():
        cells = " / ".join(f"{1e3 * min(times[p, k]):7.2f}" for k in KINDS)
        print(f"  {p:44s} fwd / gi / gw {cells}   {kinds or ''}", flush=True)


if __name__ == "__main__":
    main()
