"""GPU rows of the benchmark: graphc's CUDA target next to PyTorch CUDA (eager and
torch.compile) and JAX on the GPU, in one run, on the workloads of bench/run.py:

    MLP train step (b128), LeNet train step (b64), the 16M-element elementwise chain (numpy in
    and out, and device-resident), per-call overhead of a tiny x + y, and the cold compile of the
    MLP step (nvcc vs the C target's gcc).

Targets (issue 11): LeNet and MLP steps no slower than torch CUDA eager; the device-resident
chain at >= 70 % of the GPU's measured copy bandwidth (device-to-device cudaMemcpy, read +
write).

Run where a GPU exists: python bench/gpu_rows.py [--out gpu_rows.json] [--quick]
(bench/gpu_check.sh runs it on a lent GPU machine). Without a GPU it says what is missing and
exits with status 2. A peer that cannot run (no torch, JAX without a GPU) is a row saying why.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback

os.environ.setdefault("GRAPHC_TARGET", "cuda")  # graphc_impl's builders compile for the GPU
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from bench.harness import measure  # noqa: E402
from bench.peers import PeerUnavailable  # noqa: E402
from bench.peers import common as C  # noqa: E402


def _graphc_rows(quick):
    import graphc as G
    from bench import graphc_impl
    from graphc.targets.cuda.device import DeviceArray
    rows = {}
    rows["mlp_step_b128"] = graphc_impl.mlp_step(128)
    rows["lenet_step_b64"] = graphc_impl.lenet_step(64)
    rows["chain_16M_numpy_io"] = graphc_impl.elementwise_chain()
    x = G.vector("x")
    a, b = np.float32(C.ELEM_A), np.float32(C.ELEM_B)
    f = G.function([x], G.tanh(x * a + b) * G.sigmoid(x) + G.exp(-x * x), target="cuda")
    f.program.host_outputs = "borrow"  # the program's output buffer: no allocation per call
    xd = DeviceArray.from_host(C.elementwise_data())
    rows["chain_16M_device"] = lambda: f(xd) and _sync()
    rows["tiny_call"] = graphc_impl.tiny_call()
    return rows


def _sync():
    from graphc.targets.cuda.device import sync
    sync()
    return True


def _torch_rows(compile):
    try:
        import torch
        import torch.nn.functional as F
        from bench.peers import torch_peer
    except Exception as e:  # noqa: BLE001
        raise PeerUnavailable(f"torch not importable: {e}") from e
    if not torch.cuda.is_available():
        raise PeerUnavailable("torch sees no CUDA device")
    dev = torch.device("cuda")

    def train(model, data, opt_kw, opt=torch.optim.SGD):
        model = model.to(dev)
        x, y = (torch.from_numpy(np.ascontiguousarray(v)).to(dev) for v in data)
        step = torch_peer._train_step(model, opt(model.parameters(), **opt_kw), x, y, compile,
                                      F.cross_entropy)
        return lambda: step().item()  # .item() waits for the step, as graphc's numpy loss does

    rows = {"mlp_step_b128": train(torch_peer.MLP(C.mlp_params()), C.mlp_data(128),
                                   {"lr": C.MLP_LR}),
            "lenet_step_b64": train(torch_peer.LeNet(C.lenet_params()), C.lenet_data(64),
                                    {"lr": C.LENET_LR, "momentum": C.LENET_MOMENTUM})}

    def chain(x):
        return torch.tanh(x * C.ELEM_A + C.ELEM_B) * torch.sigmoid(x) + torch.exp(-x * x)
    fn = torch.compile(chain) if compile else chain
    xh = C.elementwise_data()
    xd = torch.from_numpy(xh).to(dev)
    rows["chain_16M_numpy_io"] = lambda: fn(torch.from_numpy(xh).to(dev)).cpu().numpy()
    rows["chain_16M_device"] = lambda: (fn(xd), torch.cuda.synchronize())
    tx, ty = (torch.from_numpy(v) for v in C.tiny_data())
    add = torch.compile(lambda a, b: a + b) if compile else torch.add
    rows["tiny_call"] = lambda: add(tx.to(dev), ty.to(dev)).cpu().numpy()
    return rows


def _jax_rows():
    try:
        import jax
        from bench.peers import jax_peer
    except Exception as e:  # noqa: BLE001
        raise PeerUnavailable(f"jax not importable: {e}") from e
    if not any(d.platform == "gpu" for d in jax.devices()):
        raise PeerUnavailable(f"JAX has no GPU device here ({jax.devices()})")
    return {"mlp_step_b128": jax_peer.mlp_step(128), "lenet_step_b64": jax_peer.lenet_step(64),
            "chain_16M_numpy_io": jax_peer.elementwise_chain(), "tiny_call": jax_peer.tiny_call()}


def copy_bandwidth():
    """Device-to-device copy of 256 MB: GB/s counting read + write."""
    from graphc.targets.cuda.device import DeviceArray, sync
    src = DeviceArray((64 * 1024 * 1024,), "float32")
    dst = DeviceArray(src.shape, "float32")
    dst.copy_from(src)
    sync()
    best = min(_timed(lambda: (dst.copy_from(src), sync())) for _ in range(7))
    return 2 * src.nbytes / best / 1e9


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def compile_times():
    """Seconds to compile the MLP train step from an empty cache, on each target."""
    import graphc as G
    from bench import graphc_impl
    out = {}
    for target in ("cuda", "c"):
        with tempfile.TemporaryDirectory() as cache:
            saved, G.config.cache_dir = G.config.cache_dir, cache
            saved_target, G.config.backend = G.config.backend, target
            try:
                t0 = time.perf_counter()
                graphc_impl.mlp_step(128)
                out[target] = time.perf_counter() - t0
            finally:
                G.config.cache_dir, G.config.backend = saved, saved_target
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="gpu_rows.json")
    ap.add_argument("--quick", action="store_true", help="shorter timings (a smoke run)")
    args = ap.parse_args()
    from graphc.targets.cuda import availability
    lacking = availability.missing()
    if lacking:
        print("bench/gpu_rows.py needs a GPU: missing " + ", ".join(lacking))
        return 2
    timing = dict(min_time=0.2, max_time=3.0, min_runs=5) if args.quick else \
        dict(min_time=1.0, max_time=20.0)
    peers = {"graphc cuda": lambda: _graphc_rows(args.quick),
             "torch cuda eager": lambda: _torch_rows(False),
             "torch.compile cuda": lambda: _torch_rows(True), "jax gpu": _jax_rows}
    results = {"copy_GBps": copy_bandwidth(), "rows": {}, "notes": {}}
    for peer, build in peers.items():
        try:
            rows = build()
        except PeerUnavailable as e:
            results["notes"][peer] = str(e)
            continue
        except Exception as e:  # noqa: BLE001 - one peer's failure is a row, not the end
            results["notes"][peer] = f"ERROR {type(e).__name__}: {e}"
            traceback.print_exc()
            continue
        for workload, fn in rows.items():
            try:
                t = measure(fn, **timing)
                results["rows"].setdefault(workload, {})[peer] = t.median
            except Exception as e:  # noqa: BLE001
                results["rows"].setdefault(workload, {})[peer] = f"ERROR {type(e).__name__}: {e}"
    try:
        results["compile_mlp_s"] = compile_times()
    except Exception as e:  # noqa: BLE001
        results["compile_mlp_s"] = f"ERROR {type(e).__name__}: {e}"
    chain = results["rows"].get("chain_16M_device", {}).get("graphc cuda")
    if isinstance(chain, float):
        results["chain_share_of_copy"] = 2 * 4 * C.ELEM_N / chain / 1e9 / results["copy_GBps"]
    _print(results)
    with open(args.out, "w") as fh:
        json.dump(results, fh, indent=1)
    return 0


def _print(results):
    peers = ["graphc cuda", "torch cuda eager", "torch.compile cuda", "jax gpu"]
    print(f"device copy bandwidth: {results['copy_GBps']:.0f} GB/s (read + write)")
    print("| workload | " + " | ".join(peers) + " |")
    print("|---" * (len(peers) + 1) + "|")
    for workload, by_peer in results["rows"].items():
        cells = []
        for p in peers:
            v = by_peer.get(p, "-")
            cells.append(f"{v * 1e3:.3f} ms" if isinstance(v, float) else str(v))
        print(f"| {workload} | " + " | ".join(cells) + " |")
    for peer, note in results["notes"].items():
        print(f"{peer}: {note}")
    if "chain_share_of_copy" in results:
        print(f"chain (device-resident) at {results['chain_share_of_copy'] * 100:.0f} % of the "
              "copy bandwidth (target >= 70 %)")
    print(f"MLP step compile from an empty cache: {results.get('compile_mlp_s')}")


if __name__ == "__main__":
    sys.exit(main())
