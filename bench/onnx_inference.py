"""Inference latency of ONNX models imported by graphc vs onnxruntime (CPU), in one run.

    python bench/onnx_inference.py [--batches 1,64] [--repeats 30] [--threads N] [--conv3d] [--clock cpu]
                                   [--before]

The models are PyTorch's (tests/torch_models.py: LeNet and a ResNet-style CIFAR net with batch
norm), exported once to ONNX; both runtimes read the same file and get the same inputs. Each
cell is the median over 3 rounds of `repeats` calls after warm-up, the runtimes alternating
block by block so that a busy machine slows both alike. Needs torch, onnx and onnxruntime ('.[bench,onnx]').
--conv3d adds a 3-D block (Conv 8->16 3x3x3 pad 1, Relu, MaxPool 2x2x2 on 8x16x32x32), which
graphc composes from 2-D ops when it loads (graphc/onnx/convert_nn3d.py).
--clock cpu times each call by the calling thread's CPU time (time.thread_time) instead of the
wall clock: with --threads 1 both runtimes compute in that thread, so on a shared, loaded machine
the figure leaves out the time other processes held the core (a 10 ms call at load 4 on 2 cores
reads ~3x its CPU time by the wall clock). With more threads it counts only the caller's share:
use the wall clock there.
--before also times, in the same alternation, the same model compiled with this branch's kernel
choices switched off (BEFORE_SETTINGS: the conv epilogue kept as separate elementwise kernels,
dense layers on the BLAS),
so a change is measured against what it replaced in one process.
--profile prints, per model and batch, graphc's kernel table (graphc.profile) and onnxruntime's
own per-node times (SessionOptions.enable_profiling: median per node over the calls), kernel by
kernel; both are wall-clock times, so kernels longer than a scheduler slice read high on a
loaded machine.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
# The GRAPHC_ settings that undo this branch's kernel choices, for --before (each is part of the
# compile cache's key, so the two functions are two libraries).
BEFORE_SETTINGS = {"GRAPHC_CONV_EPILOGUE": "0", "GRAPHC_PACKED_GEMM": "0"}
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))


def _median_interleaved(calls, repeats, rounds=3, clock=time.perf_counter):
    """Blocks of `repeats` calls per runtime, alternated `rounds` times (call-by-call alternation
    makes each runtime's spinning thread pool fight the other's: 100x at batch 64 on 2 cores)."""
    times = {k: [] for k in calls}
    for _ in range(rounds):
        for k, fn in calls.items():
            for _ in range(3):
                fn()
            for _ in range(repeats):
                t0 = clock()
                fn()
                times[k].append(clock() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--batches", default="1,64")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--threads", type=int, default=0, help="threads for both (0: their defaults)")
    p.add_argument("--conv3d", action="store_true", help="also time a 3-D conv/pool block")
    p.add_argument("--before", action="store_true",
                   help="also time the model compiled with BEFORE_SETTINGS")
    p.add_argument("--profile", action="store_true",
                   help="also print graphc's and onnxruntime's per-kernel times")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall: time.perf_counter; cpu: the calling thread's CPU time (1 thread)")
    a = p.parse_args(argv)
    if a.clock == "cpu" and a.threads != 1:
        p.error("--clock cpu counts the calling thread only: give --threads 1 with it")
    clock = time.thread_time if a.clock == "cpu" else time.perf_counter
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
    models = [("LeNet", lambda: TM.export(TM.LeNet(), (2, 1, 28, 28)), (1, 28, 28)),
              ("ResNet-style", lambda: TM.export(TM.ResNetish(), (2, 3, 32, 32)), (3, 32, 32))]
    if a.conv3d:
        models.append(("Conv3d block", _conv3d_block, (8, 16, 32, 32)))
    for name, make, shape in models:
        torch.manual_seed(0)
        data = make()
        sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
        m = G.onnx.load(onnx.load_from_string(data))
        f = G.function(m.inputs, m.outputs[0])
        before = _compiled_with(G, m, BEFORE_SETTINGS) if a.before else None
        for batch in (int(b) for b in a.batches.split(",")):
            x = np.random.default_rng(0).standard_normal((batch,) + shape).astype("float32")
            np.testing.assert_allclose(f(x), sess.run(None, {"x": x})[0], rtol=1e-4, atol=1e-5)
            calls = {"graphc": lambda: f(x), "onnxruntime": lambda: sess.run(None, {"x": x})}
            if before is not None:
                np.testing.assert_allclose(before(x), f(x), rtol=1e-5, atol=1e-6)
                calls["before"] = lambda: before(x)
            t = _median_interleaved(calls, a.repeats, clock=clock)
            rows.append((name, batch, t["graphc"], t["onnxruntime"], t.get("before")))
            if a.profile:
                print(f"== {name}, batch {batch}\n{G.profile(f, x, repeat=a.repeats)}")
                print(_ort_profile(ort, data, a.threads, x, a.repeats), flush=True)
    print(f"onnxruntime {ort.__version__}, threads: {a.threads or 'default'}; median of "
          f"3 x {a.repeats} calls, alternating blocks; {a.clock} clock; load average "
          f"{os.getloadavg()[0]:.1f}")
    extra = " | before | before / ort" if a.before else ""
    print(f"| model | batch | graphc | onnxruntime | graphc / ort{extra} |\n|---|---|---|---|---|"
          + ("---|---|" if a.before else ""))
    for name, batch, g, o, b in rows:
        cells = f" {b * 1e3:.3f} ms | {b / o:.2f}x |" if b is not None else ""
        print(f"| {name} | {batch} | {g * 1e3:.3f} ms | {o * 1e3:.3f} ms | {g / o:.2f}x |{cells}")


def _compiled_with(G, m, settings):
    """G.function of the imported model compiled with the environment `settings` (restored)."""
    saved = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    try:
        return G.function(m.inputs, m.outputs[0])
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k)
            else:
                os.environ[k] = v


def _ort_profile(ort, data, threads, x, repeats):
    """onnxruntime's per-node kernel times (its profiler's *_kernel_time events), the median of
    each node over `repeats` calls after 3 warm-up calls, as a table."""
    import json
    import tempfile
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    so.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        so.profile_file_prefix = os.path.join(tmp, "ort")
        sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
        for _ in range(3 + repeats):
            sess.run(None, {"x": x})
        with open(sess.end_profiling()) as fh:
            events = json.load(fh)
    per_node = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_node.setdefault((e["name"][:-len("_kernel_time")], e["args"].get("op_name", "")),
                                []).append(e["dur"])
    lines = ["onnxruntime per node (median us):"]
    total = 0.0
    for (node, op), durs in per_node.items():
        med = statistics.median(durs[3:] or durs)
        total += med
        lines.append(f"  {node[-48:]:48s} {op:18s} {med:9.1f}")
    lines.append(f"  {'total':48s} {'':18s} {total:9.1f}")
    return "\n".join(lines)


def _conv3d_block():
    from onnx import TensorProto, helper as oh, numpy_helper as nh
    w = (np.random.default_rng(0).standard_normal((16, 8, 3, 3, 3)) * 0.1).astype("float32")
    nodes = [oh.make_node("Conv", ["x", "w"], ["c"], pads=[1] * 6), oh.make_node("Relu", ["c"], ["r"]),
             oh.make_node("MaxPool", ["r"], ["y"], kernel_shape=[2, 2, 2], strides=[2, 2, 2])]
    g = oh.make_graph(nodes, "conv3d", [oh.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                  ["n", 8, 16, 32, 32])],
                      [oh.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 16, 8, 16, 16])],
                      initializer=[nh.from_array(w, "w")])
    return oh.make_model(g, opset_imports=[oh.make_opsetid("", 17)]).SerializeToString()


if __name__ == "__main__":
    main()
