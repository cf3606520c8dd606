"""Inference latency of ONNX models imported by graphc vs onnxruntime (CPU), in one run.

    python bench/onnx_inference.py [--batches 1,64] [--repeats 30] [--threads N]

The models are PyTorch's (tests/torch_models.py: LeNet and a ResNet-style CIFAR net with batch
norm), exported once to ONNX; both runtimes read the same file and get the same inputs. Each
cell is the median over 3 rounds of `repeats` calls after warm-up, the runtimes alternating
block by block so that a busy machine slows both alike. Needs torch, onnx and onnxruntime ('.[bench,onnx]').
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))


def _median_interleaved(calls, repeats, rounds=3):
    """Blocks of `repeats` calls per runtime, alternated `rounds` times (call-by-call alternation
    makes each runtime's spinning thread pool fight the other's: 100x at batch 64 on 2 cores)."""
    times = {k: [] for k in calls}
    for _ in range(rounds):
        for k, fn in calls.items():
            for _ in range(3):
                fn()
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--batches", default="1,64")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--threads", type=int, default=0, help="threads for both (0: their defaults)")
    a = p.parse_args(argv)
    if a.threads:
        os.environ["OMP_NUM_THREADS"] = str(a.threads)
    import onnx
    import onnxruntime as ort
    import torch
    import torch_models as TM
    import graphc as G

    so = ort.SessionOptions()
    if a.threads:
        so.intra_op_num_threads = a.threads
    rows = []
    for name, make, shape in (("LeNet", TM.LeNet, (1, 28, 28)),
                              ("ResNet-style", TM.ResNetish, (3, 32, 32))):
        torch.manual_seed(0)
        data = TM.export(make(), (2,) + shape)
        sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
        m = G.onnx.load(onnx.load_from_string(data))
        f = G.function(m.inputs, m.outputs[0])
        for batch in (int(b) for b in a.batches.split(",")):
            x = np.random.default_rng(0).standard_normal((batch,) + shape).astype("float32")
            np.testing.assert_allclose(f(x), sess.run(None, {"x": x})[0], rtol=1e-4, atol=1e-5)
            t = _median_interleaved({"graphc": lambda: f(x),
                                     "onnxruntime": lambda: sess.run(None, {"x": x})}, a.repeats)
            rows.append((name, batch, t["graphc"], t["onnxruntime"]))
    print(f"onnxruntime {ort.__version__}, threads: {a.threads or 'default'}; median of "
          f"3 x {a.repeats} calls, alternating blocks")
    print(f"| model | batch | graphc | onnxruntime | graphc / ort |\n|---|---|---|---|---|")
    for name, batch, g, o in rows:
        print(f"| {name} | {batch} | {g * 1e3:.3f} ms | {o * 1e3:.3f} ms | {g / o:.2f}x |")


if __name__ == "__main__":
    main()
