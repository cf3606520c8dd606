"""Conv algorithm measurement on LeNet's layers (batch 64): 1->20 5x5 on 28x28, 20->50 5x5 on
12x12, float32. Times forward (conv2d) and backward (input gradient + weight gradient) for
graphc's im2col+gemm and direct kernels, torch (CPU) and numpy (im2col + one matmul).

Each implementation runs in its own process: torch brings its own OpenMP runtime, and two
runtimes spinning in one process ruin each other's timings.

    python bench/conv_lenet.py [repeats]
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python bench/conv_lenet.py   # one core

Measured on the 2-core dev box (float32, ms, best of 50-60; medians within 10%):
                       conv1 fwd  conv1 bwd(x,w)  conv2 fwd  conv2 bwd(x,w)
  2 threads  gemm         0.68       1.81           1.99       3.97
             direct       0.63       3.49           3.74      56.7
             torch 2.13   0.65       5.53           1.74       5.36
             numpy        1.04       2.82           3.73      14.8
  1 thread   gemm         0.90       1.86           3.06       6.08
             direct       1.26       7.01           9.93     114
             torch 2.13   0.88      10.65           3.29      10.33
             numpy        1.22       2.95           4.84      17.7
so graphc.targets.c.capabilities (conv_algorithm) picks gemm except for tiny gemms (depthwise
convolutions, C/groups*kh*kw <= 4). On a loaded machine multi-threaded timings swing 10x (every
OpenMP/OpenBLAS barrier waits for a descheduled thread); compare single-threaded there.
"""
import json
import os
import subprocess
import sys
import time

import numpy as np

LAYERS = [("conv1 1->20 5x5 on 28x28", (64, 1, 28, 28), (20, 1, 5, 5)),
          ("conv2 20->50 5x5 on 12x12", (64, 20, 12, 12), (50, 20, 5, 5))]
IMPLS = ["graphc gemm", "graphc direct", "torch", "numpy"]


def best_ms(fn, repeats):
    fn()
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.min(times)), 1e3 * float(np.median(times))


def _graphc(algo, xs, ws):
    import graphc as G
    from graphc.ir.ops.conv import Conv2dGradInput, Conv2dGradWeights
    x, w = G.tensor("x", xs, "float32"), G.tensor("w", ws, "float32")
    y = G.conv2d(x, w)
    gy = G.tensor("gy", y.type.shape, "float32")
    saved = os.environ.get("GRAPHC_CONV_ALGO")
    os.environ["GRAPHC_CONV_ALGO"] = algo  # read by the C target when it compiles
    try:
        fwd = G.function([x, w], y)
        bwd = G.function([x, w, gy], [Conv2dGradInput(input_hw=xs[2:])(gy, w),
                                       Conv2dGradWeights(kernel_hw=ws[2:])(x, gy)])
    finally:
        if saved is None:
            del os.environ["GRAPHC_CONV_ALGO"]
        else:
            os.environ["GRAPHC_CONV_ALGO"] = saved
    return (lambda xv, wv, gyv: fwd(xv, wv)), (lambda xv, wv, gyv: bwd(xv, wv, gyv))


def _torch(xs, ws):
    import torch
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())))
    conv = torch.nn.functional.conv2d

    def fwd(xv, wv, gyv):
        with torch.no_grad():
            conv(torch.from_numpy(xv), torch.from_numpy(wv))

    def bwd(xv, wv, gyv):  # grad_input + grad_weight without the forward
        x = torch.from_numpy(xv)
        w = torch.from_numpy(wv)
        torch.ops.aten.convolution_backward(torch.from_numpy(gyv), x, w, None, [1, 1], [0, 0],
                                            [1, 1], False, [0, 0], 1, [True, True, False])
    return fwd, bwd


def _numpy(xs, ws):
    from numpy.lib.stride_tricks import sliding_window_view

    def cols_of(x, kh, kw):
        c = sliding_window_view(x, (kh, kw), axis=(2, 3))  # n c ho wo kh kw
        n, ch, ho, wo = c.shape[:4]
        return c.transpose(1, 4, 5, 0, 2, 3).reshape(ch * kh * kw, n * ho * wo), (n, ho, wo)

    def fwd(x, w, gy):
        cols, (n, ho, wo) = cols_of(x, *w.shape[2:])
        y = w.reshape(w.shape[0], -1) @ cols
        return np.ascontiguousarray(y.reshape(w.shape[0], n, ho, wo).transpose(1, 0, 2, 3))

    def bwd(x, w, gy):
        cout, cin, kh, kw = w.shape
        n, _, ho, wo = gy.shape
        cols, _ = cols_of(x, kh, kw)
        g2 = gy.transpose(1, 0, 2, 3).reshape(cout, -1)
        gw = (g2 @ cols.T).reshape(w.shape)
        gcol = (w.reshape(cout, -1).T @ g2).reshape(cin, kh, kw, n, ho, wo)
        gx = np.zeros_like(x)
        for i in range(kh):
            for j in range(kw):
                gx[:, :, i:i + ho, j:j + wo] += gcol[:, i, j].transpose(1, 0, 2, 3)
        return gx, gw
    return fwd, bwd


def worker(impl, repeats):
    rng = np.random.RandomState(0)
    out = {}
    for name, xs, ws in LAYERS:
        if impl.startswith("graphc"):
            fwd, bwd = _graphc(impl.split()[1], xs, ws)
        else:
            fwd, bwd = (_torch if impl == "torch" else _numpy)(xs, ws)
        xv = rng.randn(*xs).astype("float32")
        wv = (rng.randn(*ws) * 0.1).astype("float32")
        gyv = rng.randn(xs[0], ws[0], xs[2] - ws[2] + 1, xs[3] - ws[3] + 1).astype("float32")
        out[name] = (best_ms(lambda: fwd(xv, wv, gyv), repeats),
                     best_ms(lambda: bwd(xv, wv, gyv), repeats))
    print(json.dumps(out))


def main():
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    results = {}
    for impl in IMPLS:
        proc = subprocess.run([sys.executable, __file__, "--worker", impl, str(repeats)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{impl}: failed: {proc.stderr.strip().splitlines()[-1:]}")
            continue
        results[impl] = json.loads(proc.stdout.strip().splitlines()[-1])
    threads = os.environ.get("OMP_NUM_THREADS", str(os.cpu_count()))
    print(f"cores {os.cpu_count()}, threads {threads}; ms, best (median) of {repeats} runs")
    for name, _, _ in LAYERS:
        print(f"\n{name:<28} {'forward':>16} {'backward (x, w)':>18}")
        for impl, res in results.items():
            (f, fm), (b, bm) = res[name]
            print(f"  {impl:<26} {f:7.2f} ({fm:6.2f}) {b:8.2f} ({bm:7.2f})")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], int(sys.argv[3]))
    else:
        main()
