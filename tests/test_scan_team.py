"""A loop whose step is large enough for threads runs all its steps on one team of threads
(templates/c/loop.j2's team mode, issue #12 round 6): each body kernel takes its share of the
work (elementwise and copy kernels by rows or blocks of elements, the packed product by column
panels) and a barrier follows it, instead of a fork and join per threaded kernel while the
cell's small kernels ran on one thread. Checked: which loops get a team (rendered C), and that
results and gradients on 2 and 3 threads equal the py target's (fresh processes: the thread
count is fixed at a process's start), float32 and float64, with shares that do not divide
evenly; the profiling build of a team loop runs and reports its body's kernels."""
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import graphc as G
from graphc.targets.c.render_c import render_program

from program_cases import program_of
from test_scan_packed_gemm import lstm_training, recurrence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEAM_REGION = re.compile(r"#pragma omp parallel num_threads\(L\d+_team\)")


def _source(inputs, outputs, name):
    return render_program(program_of(inputs, outputs, name=name), name, "")


def test_lstm_training_loops_both_run_on_a_team():
    """B=7, H=200: the step's product is 7 x 800 by 200 (1.1 M multiply-adds, a product that
    threads on its own), so the forward loop and BPTT each open one team for all their steps; the
    products split by panels; BPTT's small sum (b's gradient, 800 a step) runs on the first thread."""
    inputs, outputs, _ = lstm_training("float32", B=7, H=200)
    source = _source(inputs, outputs, "team_lstm")
    assert len(TEAM_REGION.findall(source)) == 2
    assert len(re.findall(r"graphc_rt_sgemm_packed_part\(\d, 7,", source)) == 2
    assert "graphc_rt_sgemm_packed(0," not in source
    assert source.count("if (gc_team_tid == 0) {") == 1 and source.count("if (status) break;") == 1
    loops = source[source.index("_team = "):]
    assert "#pragma omp barrier" in loops and "if (status) return status;\n            /* body" not in loops


def test_small_step_keeps_one_thread_and_no_region():
    """H=42: 7 x 168 by 42 a step (49 K multiply-adds): no team, the loop as before."""
    inputs, outputs, _ = lstm_training("float32")
    source = _source(inputs, outputs, "small_lstm")
    assert not TEAM_REGION.search(source) and "#pragma omp barrier" not in source
    assert "graphc_rt_sgemm_packed(0," in source


def test_symbolic_step_decides_at_run_time():
    """A batch not known at compile time: the team's size is chosen per call from the step's
    size (one thread below the thresholds)."""
    B = G.dim("B")
    X = G.tensor("X", (3, B, 16))
    U = G.tensor("U", (16, 16))
    h0 = G.tensor("h0", (B, 16))
    hs, _ = G.scan(lambda x, h: G.tanh(x + G.dot(h, U)), sequences=X, outputs_info=h0)
    source = _source([X, U, h0], [hs], "team_symbolic")
    [region] = re.findall(r"const int (L\d+)_team = ([^;]*);", source, re.S)
    assert "d_B" in region[1] and "GC_LOOP_TEAM_MACS" in region[1]


def test_body_with_a_kernel_that_cannot_share_keeps_per_kernel_regions(monkeypatch):
    """The products left to the BLAS (GRAPHC_PACKED_GEMM=0) run whole: no team."""
    monkeypatch.setenv("GRAPHC_PACKED_GEMM", "0")
    inputs, outputs, _ = lstm_training("float32", B=7, H=200)
    assert not TEAM_REGION.search(_source(inputs, outputs, "blas_lstm"))


def test_nested_loop_gets_no_team_inside_a_team():
    """An inner scan is one kernel of the outer body: the outer loop (which cannot share it)
    has no team, and the inner loop, in a body, never opens one."""
    dt, B, H = "float32", 64, 160  # the inner step: 64 x 160 by 160 (1.6 M multiply-adds)
    X = G.tensor("X", (2, 2, B, H), dt)
    U = G.tensor("U", (H, H), dt)
    h0 = G.tensor("h0", (B, H), dt)

    def outer_step(block, h):
        hs, _ = G.scan(lambda x, g: G.tanh(x + G.dot(g, U)), sequences=block, outputs_info=h)
        return hs[-1]

    hs, _ = G.scan(outer_step, sequences=X, outputs_info=h0, name="outer")
    assert not TEAM_REGION.search(_source([X, U, h0], [hs], "nested_team"))


_RUN = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    import numpy as np, graphc as G
    from graphc.testing import verify_grad
    from test_scan_packed_gemm import lstm_training, recurrence
    TOL = {{"float32": dict(rtol=2e-4, atol=2e-5), "float64": dict(rtol=1e-10, atol=1e-12)}}

    def same(inputs, outputs, values, dtype, name):
        f = G.function(inputs, outputs, backend="c", name=name)
        assert "_team = " in f.program.source, name
        want = G.function(inputs, outputs, backend="py", name=name)(*values)
        for _ in range(2):  # the second call starts from the team's last buffers
            for g, w in zip(f(*values), want):
                np.testing.assert_allclose(g, w, **TOL[dtype])
        return f

    for dtype in ("float32", "float64"):
        # 7 rows of 200 units: shares of 704 and 696 elements (2 threads), 25 float32 panels
        inputs, outputs, values = lstm_training(dtype, T=3, B=7, H=200)
        f = same(inputs, outputs, values, dtype, "team_lstm_" + dtype)
    # 13 rows x 300 columns, accumulated into a copy of the state (alpha -0.5, beta 1)
    inputs, outputs, values = recurrence("float64", 13, 300, steps=4, accumulate=True)
    same(inputs, outputs, values, "float64", "team_acc")
    # the profiling build: the body's kernels are timed on the team's first thread
    report = str(G.profile(f, *lstm_training("float64", T=3, B=7, H=200)[2], repeat=2))
    assert "iterations a call" in report, report

    H = 160  # 11 x 640 by 160 a step: 1.1 M multiply-adds, a team

    def fn(X, h0, c0, W, U, b):
        def cell(x, h, c):
            z = G.dot(x, W) + G.dot(h, U) + b
            i, f = G.sigmoid(z[:, :H]), G.sigmoid(z[:, H:2 * H])
            g, o = G.tanh(z[:, 2 * H:3 * H]), G.sigmoid(z[:, 3 * H:])
            c_new = f * c + i * g
            return o * G.tanh(c_new), c_new
        (hs, cs), _ = G.scan(cell, sequences=X, outputs_info=[h0, c0])
        return hs + 0.5 * cs
    r = np.random.default_rng(5)
    shapes = [(2, 11, 4), (11, H), (11, H), (4, 4 * H), (H, 4 * H), (4 * H,)]
    assert verify_grad(fn, [r.standard_normal(s) * 0.4 for s in shapes], backend="c")
    print("ok")
""")


@pytest.mark.parametrize("threads", [2, 3])
def test_team_results_and_gradients_equal_the_references(threads, tmp_path):
    script = _RUN.format(tests=os.path.join(ROOT, "tests"))
    env = dict(os.environ, OMP_NUM_THREADS=str(threads),
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=600, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ok" in proc.stdout
