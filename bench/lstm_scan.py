"""The scan LSTM's numbers in one run (issue #12): the training step (64->256, T=32, batch 32)
against the unrolled graph and PyTorch eager, interleaved; cold and warm compile in fresh
processes (an empty cache, then the same cache) at T=32 and T=512; the planned memory of the
step against T and against the unrolled step.

    python bench/lstm_scan.py [--rounds 10] [--threads N] [--steps-only] [--packed-ab]
    python bench/lstm_scan.py --thread-cpu [--threads 2] [--rounds 30]

Timings on a shared machine are noisy: each figure is the median of the rounds, with the best.
Compile times also come as CPU seconds (this process's, and gcc's as its children's), which
other sessions' load does not inflate the way it inflates wall time.

--thread-cpu: each thread's CPU time per step (graphc scan, torch eager), each in a fresh process
with OMP_WAIT_POLICY=passive, so a thread that waits sleeps and its CPU time is its work. On a
loaded machine, where wall times at 2 threads are 5-20x the quiet ones, the busiest thread's time
is the step's critical path without the other tenants (main's 36-37 ms read so under load 7-12
against its 37.3 ms quiet wall time; torch's 39-42 against 40.8).
"""
import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

_COMPILE = """
import os, sys, time
sys.path.insert(0, {root!r})
import graphc
from bench.peers import common
from bench import graphc_impl
# The data and the initial weights are made before the clock starts: making them is not
# compiling, and the data grows with T (T=512: ~0.015 s of CPU).
data, params = common.lstm_data(32, {T}, 64), common.lstm_params(64, 256)
graphc_impl.C.lstm_data = lambda *args, **kwargs: data
graphc_impl.C.lstm_params = lambda *args, **kwargs: params
t0, c0, g0 = time.perf_counter(), time.process_time(), os.times().children_user
step = graphc_impl.{builder}(seq_len={T})
t1, c1, g1 = time.perf_counter(), time.process_time(), os.times().children_user
step()
print(t1 - t0, c1 - c0, g1 - g0)
"""


def compile_seconds(builder, T, cache):
    """(wall, CPU, gcc CPU) seconds to build and compile the step in a fresh process (graphc
    already imported)."""
    env = dict(os.environ, GRAPHC_CACHE_DIR=cache, PYTHONPATH=ROOT)
    # An installed graphc has its bytecode: without it every fresh process compiles graphc's
    # modules from source (~0.02-0.03 s of a warm compile).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    out = subprocess.run([sys.executable, "-c", _COMPILE.format(root=ROOT, builder=builder, T=T)],
                         env=env, capture_output=True, text=True, check=True)
    return tuple(float(x) for x in out.stdout.strip().splitlines()[-1].split())


def step_times(rounds, packed_ab=False):
    """Per step: (median, best) wall seconds and (median, best) CPU seconds, the steps taking turns
    in each round and the order reversed every other round (on a loaded machine CPU time is the
    steadier figure: wall time counts the other sessions' turns on the cores). packed_ab: also
    the scan step built with GRAPHC_PACKED_GEMM=0 (its loop products left to the BLAS)."""
    import numpy as np
    from bench import graphc_impl
    from bench.peers import torch_peer
    steps = {"graphc scan": graphc_impl.lstm_step()}
    if packed_ab:
        os.environ["GRAPHC_PACKED_GEMM"] = "0"
        try:
            steps["graphc scan, BLAS"] = graphc_impl.lstm_step()
        finally:
            del os.environ["GRAPHC_PACKED_GEMM"]
    steps.update({"graphc unrolled": graphc_impl.lstm_step_unrolled(),
                  "torch eager": torch_peer.lstm_step()})
    for s in steps.values():
        s(), s()
    wall, cpu = {k: [] for k in steps}, {k: [] for k in steps}
    names = list(steps)
    for r in range(rounds):
        for k in (names if r % 2 == 0 else names[::-1]):
            t, c = time.perf_counter(), time.process_time()
            steps[k]()
            cpu[k].append(time.process_time() - c)
            wall[k].append(time.perf_counter() - t)
    return {k: (float(np.median(wall[k])), float(min(wall[k])), float(np.median(cpu[k])),
                float(min(cpu[k]))) for k in steps}


_THREAD_CPU = """
import os, sys
sys.path.insert(0, {root!r})
sys.path.insert(0, os.path.join({root!r}, "bench"))
import lstm_scan
if {peer!r} == "torch":
    import torch
    torch.set_num_threads({threads})
    from bench.peers import torch_peer
    step = torch_peer.lstm_step()
else:
    from bench import graphc_impl
    step = graphc_impl.lstm_step()
step(), step()
before = lstm_scan.thread_cpu_seconds()
for _ in range({rounds}):
    step()
after = lstm_scan.thread_cpu_seconds()
print(" ".join(str((after[t] - before.get(t, 0.0)) / {rounds}) for t in after))
"""


def thread_cpu_seconds(task_dir="/proc/self/task"):
    """{thread id: user + system CPU seconds} of this process's threads (Linux /proc)."""
    tick, out = os.sysconf("SC_CLK_TCK"), {}
    for tid in os.listdir(task_dir):
        try:
            with open(os.path.join(task_dir, tid, "stat")) as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        out[tid] = (int(fields[11]) + int(fields[12])) / tick
    return out


def thread_cpu_per_step(peer, threads, rounds):
    """Per-thread CPU seconds a step, busiest first (threads that did nothing left out)."""
    env = dict(os.environ, OMP_WAIT_POLICY="passive", PYTHONPATH=ROOT,
               **{v: str(threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
    out = subprocess.run([sys.executable, "-c", _THREAD_CPU.format(root=ROOT, peer=peer, threads=threads,
                                                                  rounds=rounds)],
                         env=env, capture_output=True, text=True, check=True)
    per = sorted((float(x) for x in out.stdout.strip().splitlines()[-1].split()), reverse=True)
    return [x for x in per if x > 5e-5]


def planned_bytes(builder, T):
    from bench import graphc_impl
    from program_cases import bench_step_program
    graphc_impl._planned = functools.partial(getattr(graphc_impl, builder), seq_len=T)
    return int(bench_step_program("_planned").workspace_bytes)


def compile_times(result):
    with tempfile.TemporaryDirectory() as cache:
        compile_seconds("lstm_step", 8, cache)  # writes the bytecode; T=8 is another program
        for T in (32, 512):
            cold = compile_seconds("lstm_step", T, cache)
            warm = compile_seconds("lstm_step", T, cache)
            result[f"compile T={T}"] = {"cold_s": cold[0], "warm_s": warm[0], "cold_cpu_s": cold[1],
                                        "cold_gcc_cpu_s": cold[2], "warm_cpu_s": warm[1]}
            print(f"scan compile T={T}: cold {cold[0]:.2f} s (CPU {cold[1]:.2f} s + gcc "
                  f"{cold[2]:.2f} s), warm {warm[0]:.3f} s (CPU {warm[1]:.3f} s)", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0, metavar="N",
                    help="cap graphc's OpenMP, the BLAS and torch at N threads (default: theirs)")
    ap.add_argument("--steps-only", action="store_true", help="only the step times")
    ap.add_argument("--packed-ab", action="store_true",
                    help="also time the scan step with its loop products left to the BLAS")
    ap.add_argument("--thread-cpu", action="store_true",
                    help="only each thread's CPU time a step (passive waits), graphc scan and torch")
    args = ap.parse_args()
    if args.thread_cpu:
        threads = args.threads or 2
        for peer in ("graphc scan", "torch eager"):
            per = thread_cpu_per_step(peer.split()[0], threads, args.rounds)
            print(f"{peer}, {threads} threads: busiest thread {per[0] * 1e3:.1f} ms a step, threads "
                  + ", ".join(f"{x * 1e3:.1f}" for x in per) + " ms", flush=True)
        return
    if args.threads:  # before numpy, torch or a graphc library loads a thread pool
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)
        try:  # (torch reads OMP_NUM_THREADS too; its intra-op pool is set for certain)
            import torch
            torch.set_num_threads(args.threads)
        except ImportError:
            pass
    result = {}
    if not args.steps_only:
        compile_times(result)
    result["step"] = step_times(args.rounds, args.packed_ab)
    for k, (med, best, cmed, cbest) in result["step"].items():
        print(f"step {k:18s} wall median {med * 1e3:7.1f} ms  best {best * 1e3:7.1f} ms | CPU "
              f"median {cmed * 1e3:7.1f} ms  best {cbest * 1e3:7.1f} ms", flush=True)
    ratio = result["step"]["graphc scan"][0] / result["step"]["torch eager"][0]
    cpu_ratio = result["step"]["graphc scan"][2] / result["step"]["torch eager"][2]
    print(f"scan / torch eager (medians): wall {ratio:.2f}, CPU {cpu_ratio:.2f}")
    if args.steps_only:
        return
    result["planned_bytes"] = {f"scan T={T}": planned_bytes("lstm_step", T) for T in (8, 16, 32, 64)}
    result["planned_bytes"]["unrolled T=32"] = planned_bytes("lstm_step_unrolled", 32)
    for k, v in result["planned_bytes"].items():
        print(f"planned workspace {k:14s} {v / 2**20:7.2f} MiB")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
