#!/usr/bin/env python
"""A CNN net's training step (bench/peers/cnn_common.py) for graphc and torch eager in ONE process,
interleaved rounds, CPU time per step: the step ratio on a shared machine, where wall times and
separate processes drift with the load.

    python bench/cnn_interleaved.py cifar_quick --threads 1 --rounds 3
    python bench/cnn_interleaved.py resnet20 --graphc-root /work/main   # graphc from another checkout
    python bench/cnn_interleaved.py cifar_quick --also torch.compile,jax     # the other peers too
    python bench/cnn_interleaved.py vgg_bn --threads 2 --clock wall --also torch.compile,jax  # quiet

CPU time counts every thread of this process (JAX's and torch's pools included; inductor's
compile workers are other processes, and compiling is over before the rounds start).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("net")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--graphc-root", default=ROOT, help="the checkout whose graphc is measured")
    ap.add_argument("--also", default="", help="more peers: torch.compile, jax (comma list)")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                    help="cpu: process CPU time (robust on a loaded machine, counts spinning threads); "
                         "wall: elapsed time (a quiet machine with more than one thread)")
    args = ap.parse_args()
    sys.path[:0] = [os.path.abspath(args.graphc_root), ROOT]
    from bench.peers.threads import thread_env  # (JAX's pool size too: NPROC, XLA_FLAGS)
    os.environ.update(thread_env(args.threads, os.environ.get("XLA_FLAGS", "")))
    import torch
    torch.set_num_threads(args.threads)
    import graphc
    from bench import graphc_cnn
    from bench.peers import torch_peer
    steps = {"graphc": graphc_cnn.cnn_step(args.net), "torch": torch_peer.cnn_step(args.net, compile=False)}
    for peer in filter(None, args.also.split(",")):
        if peer == "torch.compile":
            steps[peer] = torch_peer.cnn_step(args.net, compile=True)
        elif peer == "jax":
            from bench.peers import jax_peer
            steps[peer] = jax_peer.cnn_step(args.net)
        else:
            ap.error(f"unknown peer {peer!r}; choose from torch.compile, jax")
    for s in steps.values():
        s()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    times = {k: [] for k in steps}
    for _ in range(args.rounds):
        for k, s in steps.items():
            t0 = clock()
            s()
            times[k].append(clock() - t0)
    g, t = min(times["graphc"]), min(times["torch"])
    others = "".join(f"  {k} {1e3 * min(v):.0f} ms" for k, v in times.items() if k not in ("graphc", "torch"))
    best = min(min(v) for k, v in times.items() if k != "graphc")
    print(f"{args.net} threads={args.threads} clock={args.clock} graphc({os.path.dirname(graphc.__file__)}) "
          f"{1e3 * g:.0f} ms  torch {1e3 * t:.0f} ms  ratio {g / t:.2f}{others}  graphc / best peer "
          f"{g / best:.2f}  load {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
