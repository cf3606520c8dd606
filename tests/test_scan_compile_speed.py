"""Compile-time work a scan should not cost (issue #12, round 2): OpenMP regions gcc outlines for
body kernels that never run threaded."""
import re

import numpy as np

import graphc as G
from graphc.targets.c.render_c import render_program

from program_cases import program_of


def _scan_copies_source(batch, width):
    """The rendered C of a scan whose body slices its input (strided copies, batch x width)."""
    X = G.tensor("X", (3, batch, 2 * width))
    h0 = G.constant(np.zeros((batch, width), np.float32))

    def step(x_t, h):
        return G.tanh(x_t[:, :width] + h) * G.sigmoid(x_t[:, width:])

    hs, _ = G.scan(step, sequences=X, outputs_info=h0, name="cell")
    return render_program(program_of([X], hs.sum(), name="scan_copies"), "scan_copies", "")


def _body_copies(source):
    bodies = re.findall(r"/\* body k\d+: strided_copy .*?\n(.*?)(?:if \(status\)|#pragma omp barrier)",
                        source, re.S)
    assert bodies, "the body was expected to slice with strided copies"
    return bodies


def test_small_body_copies_get_no_openmp_region():
    source = _scan_copies_source(batch=4, width=8)
    assert not any("#pragma omp parallel" in b for b in _body_copies(source))
    assert "_team" not in source  # a step this small runs on one thread, no team (loop.j2)


def test_body_copies_too_large_for_one_thread_are_shared_by_the_loops_team():
    # 512 x 1024 elements per step: above GC_PAR_THRESHOLD (262144), so threads take the step:
    # the loop opens one team (one region for all steps) and each copy takes its share of rows
    source = _scan_copies_source(batch=512, width=1024)
    bodies = _body_copies(source)
    assert not any("#pragma omp parallel" in b for b in bodies)
    assert all("for (int64_t o = lo; o < hi; o++)" in b for b in bodies)
    assert len(re.findall(r"#pragma omp parallel num_threads\(L\d+_team\)", source)) == 1


def test_bench_compile_measure_reports_wall_cpu_and_gcc_seconds(tmp_path):
    """bench/lstm_scan.py's fresh-process compile: (wall, CPU, gcc CPU); gcc runs only cold."""
    import importlib.util
    import os
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location("lstm_scan", os.path.join(root, "bench", "lstm_scan.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    cold = bench.compile_seconds("lstm_step", 3, str(tmp_path))
    warm = bench.compile_seconds("lstm_step", 3, str(tmp_path))
    assert len(cold) == len(warm) == 3 and min(cold + warm) >= 0
    assert cold[2] > 0 and warm[2] == 0  # the warm one loads the library gcc built cold
    assert warm[1] < cold[1]


def test_bench_thread_cpu_reads_each_threads_cpu_time():
    """bench/lstm_scan.py --thread-cpu: per-thread CPU seconds from /proc (the main thread's
    grows while it computes; another thread that only sleeps stays near 0)."""
    import importlib.util
    import os
    import threading
    import time
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location("lstm_scan", os.path.join(root, "bench", "lstm_scan.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    done = threading.Event()
    sleeper = threading.Thread(target=done.wait)
    sleeper.start()
    before = bench.thread_cpu_seconds()
    t0 = time.process_time()
    while time.process_time() - t0 < 0.3:
        sum(range(1000))
    after = bench.thread_cpu_seconds()
    done.set()
    sleeper.join()
    main = str(os.getpid())
    assert after[main] - before[main] >= 0.2
    assert after[str(sleeper.native_id)] - before[str(sleeper.native_id)] < 0.1
