"""The race and bounds checker of the emulated CUDA build (GRAPHC_CUDA_RACECHECK=1 with
GRAPHC_CUDA_EMULATE=1, templates/cuda/gc_cuda_racecheck.h): kernels with planted races
(tests/templates/cuda/race_probe.cu.j2: a tree reduction missing its __syncthreads, threads and
blocks writing one output, a scatter-add without atomics, an in-place shift) and out-of-bounds
accesses are reported with the kernel, the memory and element, and both threads; their correct
forms are not. A call with hazards raises and changes no shared variable. The real build renders
no checker code."""
import os
import re
import shutil

import numpy as np
import pytest

import graphc as G
from graphc.errors import CompileError, RaceCheckError

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")

TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
N = 64  # the probes' length: one block of 64 threads covers it


@pytest.fixture(scope="module")
def racecheck_env():
    saved = {k: os.environ.get(k) for k in ("GRAPHC_CUDA_EMULATE", "GRAPHC_CUDA_RACECHECK")}
    os.environ.update(GRAPHC_CUDA_EMULATE="1", GRAPHC_CUDA_RACECHECK="1")
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


class RaceProbes:
    """A program y0, y1 = x * 2, x * 3 (and w += 1, a shared variable updated in place) with
    race_probe kernels appended, `modes` as [(mode, blocks, output 0 or 1)], built with the race
    checker."""

    def __init__(self, modes, stem):
        import jinja2
        from graphc.codegen.kernels import SPECS, KernelSpec
        from graphc.codegen.plan import build_program
        from graphc.codegen.program import Kernel
        from graphc.targets.c.cache_trust import check_file, private_dir
        from graphc.targets.c.jinja_env import make_environment
        from graphc.targets.c.templates_dir import templates_root
        from graphc.targets.cuda import render_cuda, toolchain
        from graphc.targets.cuda.executable import CudaProgram
        from graphc.targets.cuda.target import CUDA_CAPABILITIES
        x, idx = G.vector("x", dtype="float32"), G.tensor("idx", (None,), "int64")
        self.w = G.shared(np.ones(4, "float32"), name="w")
        self.fn = G.function([x, idx], [x * 2, x * 3 + G.cast(idx, "float32")],
                             updates=[(self.w, self.w + 1)], backend="py")
        self.program = build_program(self.fn.fgraph, self.fn.checker, CUDA_CAPABILITIES)
        xb, ib = (next(b for b in self.program.externals if b.name == name) for name in ("x", "idx"))
        outs = [b for b in self.program.externals if b.role == "output"]
        for mode, blocks, out in modes:
            self.program.kernels.append(Kernel("race_probe", [outs[out]], [xb, ib],
                                               {"n": xb.shape[0], "mode": mode, "blocks": blocks},
                                               label=f"probe {mode}"))
        env = make_environment(templates_root(), private_dir("jinja-cuda-test"), None,
                               filters=render_cuda.CUDA_FILTERS, check_file=check_file)
        env.loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(TEMPLATES), env.loader])
        env.globals["racecheck"] = True
        SPECS["race_probe"] = KernelSpec("race_probe", ("n", "mode", "blocks"))
        try:
            self.source = render_cuda.render_program(self.program, "race_probe", env=env)
        finally:
            del SPECS["race_probe"]
        src = os.path.join(private_dir("cuda-test"), f"{stem}.cu")
        with open(src, "w") as fh:
            fh.write(self.source)
        toolchain.build_units([src], src[:-3] + ".so")
        self.prog = CudaProgram(self.program, self.source, src[:-3] + ".so", self.fn.fgraph)

    def run(self, xv, iv):
        fg = self.fn.fgraph
        return self.prog.run_shared(self.fn.checker, [xv, iv], fg.shareds, fg.update_targets, 2)


PLANTED = [("tree_sum_no_sync", 1, 0), ("tree_sum", 1, 1), ("two_writers", 1, 0),
           ("one_writer_per_block", 2, 0), ("scatter_plain", 2, 0), ("scatter_atomic", 2, 1),
           ("read_past_end", 1, 0), ("shared_past_end", 1, 0), ("shift_in_place", 1, 0)]


def _inputs():
    xv = np.arange(N, dtype="float32") % 7
    iv = (np.arange(N) * 5 % 8).astype("int64")  # 8 targets, each hit 8 times
    return xv, iv


@pytest.fixture(scope="module")
def planted_report(racecheck_env):
    probes = RaceProbes(PLANTED, "race_probe_planted")
    with pytest.raises(RaceCheckError) as info:
        probes.run(*_inputs())
    return probes, str(info.value)


def _lines(report, mode):
    return [line for line in report.splitlines() if f"(k" in line and f"race_probe probe {mode})" in line]


def test_a_reduction_missing_a_barrier_is_reported(planted_report):
    lines = _lines(planted_report[1], "tree_sum_no_sync")
    war = [line for line in lines if line.startswith("write-after-read hazard")]
    assert war and re.search(r"shared memory __shared__ gc_tree\[64\] element (\d+): thread \d+ of "
                             r"block 0 read it, then thread \d+ of block 0 writes it, in the same "
                             r"block with no __syncthreads\(\) between them", war[0]), war
    assert any(line.startswith("uninitialized shared memory read") for line in lines), lines
    assert not _lines(planted_report[1], "tree_sum")  # with the barrier: nothing


def test_two_threads_or_two_blocks_writing_one_output_are_reported(planted_report):
    report = planted_report[1]
    (same_block,) = _lines(report, "two_writers")
    assert re.match(r"write-after-write hazard in kernel gc_k\d+ \(k\d+: race_probe probe "
                    r"two_writers\): global memory buffer '[^']+' \(output b\d+\) element 0: thread 0 "
                    r"of block 0 wrote it, then thread 1 of block 0 writes it, in the same block with "
                    r"no __syncthreads\(\) between them", same_block), same_block
    (blocks,) = _lines(report, "one_writer_per_block")
    assert "thread 0 of block 0 wrote it, then thread 0 of block 1 writes it, in another block" in blocks


def test_a_scatter_without_atomics_is_reported_and_with_atomics_is_not(planted_report):
    lines = _lines(planted_report[1], "scatter_plain")
    assert any(line.startswith("read-after-write hazard") for line in lines), lines
    assert not _lines(planted_report[1], "scatter_atomic")


def test_an_in_place_shift_without_a_barrier_is_reported(planted_report):
    (line,) = _lines(planted_report[1], "shift_in_place")
    assert re.search(r"^write-after-read hazard .* element 1: thread 0 of block 0 read it, then "
                     r"thread 1 of block 0 writes it", line), line


def test_out_of_bounds_reads_and_writes_are_reported_and_not_done(planted_report):
    (read,) = _lines(planted_report[1], "read_past_end")
    assert re.search(r"^out-of-bounds read .*: thread 63 of block 0 reads 4 bytes at element 64 of "
                     r"global memory buffer 'x' \(input b\d+\), which has 64 elements", read), read
    (write,) = _lines(planted_report[1], "shared_past_end")
    assert re.search(r"^out-of-bounds write .*: thread 63 of block 0 writes 4 bytes at element 64 "
                     r"of shared memory __shared__ gc_row\[64\], which has 64 elements", write), write


def test_a_call_with_hazards_changes_no_shared_variable(planted_report):
    probes, report = planted_report
    assert report.startswith("CUDA racecheck found") and "changed no shared variable" in report
    np.testing.assert_array_equal(probes.w.get_value(), 1)  # w += 1 ran, and was put back


def test_correct_kernels_pass_with_their_values(racecheck_env):
    probes = RaceProbes([("tree_sum", 1, 0), ("scatter_atomic", 2, 1)], "race_probe_clean")
    xv, iv = _inputs()
    y0, y1 = probes.run(xv, iv)
    assert y0[0] == xv.sum()
    np.testing.assert_array_equal(y1[:8], np.bincount(iv, weights=xv, minlength=N)[:8])
    np.testing.assert_array_equal(probes.w.get_value(), 2)


def test_a_checked_element_that_a_conditional_would_narrow_fails_to_compile(racecheck_env):
    """`c ? x[i] : 0` is a float on a GPU; a checked element there would become an int."""
    with pytest.raises(CompileError, match=r"float-conversion"):
        RaceProbes([("ternary_to_int", 1, 0)], "race_probe_ternary")


def test_the_real_build_renders_no_checker_code():
    from program_cases import program_of
    from graphc.targets.cuda.render_cuda import environment, render_program
    from graphc.targets.cuda.target import CUDA_CAPABILITIES
    x = G.tensor("x", (None, None), "float32")
    program = program_of([x], [G.softmax(x), x.sum(axis=0), x.sum()], name="rc",
                         capabilities=CUDA_CAPABILITIES)
    real = render_program(program, "rc")
    checked = render_program(program, "rc", environment(racecheck=True))
    assert "gc_rc" not in real and "GC_RC" not in real
    assert "gc_rc_ptr<float>" in checked and "GC_RC_SHARED" in checked


def test_racecheck_needs_the_emulator(monkeypatch):
    monkeypatch.delenv("GRAPHC_CUDA_EMULATE", raising=False)
    monkeypatch.setenv("GRAPHC_CUDA_RACECHECK", "1")
    from graphc.targets.cuda import toolchain
    with pytest.raises(CompileError, match="set GRAPHC_CUDA_EMULATE=1 as well"):
        toolchain.racechecking()


def _rnn(dtype):
    xs, h0 = G.tensor("xs", (None, 2, 3), dtype), G.tensor("h0", (2, 4), dtype)
    w, u = G.tensor("w", (3, 4), dtype), G.tensor("u", (4, 4), dtype)
    hs, _ = G.scan(lambda x_t, h, w, u: G.tanh(G.dot(x_t, w) + G.dot(h, u)),
                   sequences=xs, outputs_info=h0, non_sequences=[w, u])
    loss = G.sum(hs[-1] ** 2) + G.sum(hs)
    return [xs, h0, w, u], [hs] + G.grad(loss, [xs, w, u])


def _chunked_conv(dtype, monkeypatch):
    # a budget of two images per chunk: a batch of 5 runs as chunks of 2, 2, 1
    from test_cuda_conv_chunked import _conv_graph, _two_images_per_chunk
    _two_images_per_chunk(monkeypatch, dtype)
    return _conv_graph(dtype)


def _reductions(dtype):
    """Long rows (the two-pass split reduction: the emulator's slices are 256 long), a few
    columns (the column kernel), argmax, softmax and its cross-entropy with their gradients, and
    a float32 elementwise chain long enough for the vector kernel."""
    a, c = G.dim("a"), G.dim("c")
    x, labels = G.tensor("x", (a, c), dtype), G.tensor("labels", (a,), "int64")
    v = G.tensor("v", (None,), "float32")
    xent = G.softmax_cross_entropy(x, labels)
    outs = [x.sum(axis=1), x.max(axis=1), x.sum(axis=0), x.argmax(axis=1), G.softmax(x),
            G.log_softmax(x), xent, G.grad(G.sum(xent) + G.sum(G.softmax(x) ** 2), x),
            G.exp(v) * 2 + v * v]
    return [x, labels, v], outs


def test_scans_conv_chunks_and_reductions_are_race_free(racecheck_env, monkeypatch):
    """One racecheck build of a scan with its BPTT gradient, chunked convolution with both
    gradients, split and column reductions, argmax, softmax and softmax cross-entropy with their
    gradients and a vector-load elementwise kernel; a hazard would raise RaceCheckError. (The whole
    kernel table runs under the checker in test_cuda_kernels_emulated.py, float64.)"""
    dtype = "float64"
    parts = [_rnn(dtype), _chunked_conv(dtype, monkeypatch), _reductions(dtype)]
    inputs = [x for ins, _ in parts for x in ins]
    outputs = [y for _, outs in parts for y in outs]
    f = G.function(inputs, outputs, target="cuda", name="racecheck_combined")
    kinds = {k.kind for k in f.program.program.kernels}
    assert {"loop", "conv_chunked", "conv_chunked_grad_input", "conv_chunked_grad_weights",
            "reduce", "argmax", "softmax", "softmax_xent", "elemwise"} <= kinds
    assert "gc_rc_ptr" in f.program.source and "_v(" in f.program.source
    ref = G.function(inputs, outputs, backend="py")
    rng = np.random.RandomState(0)
    values = [rng.standard_normal((3, 2, 3)), rng.standard_normal((2, 4)),
              rng.standard_normal((3, 4)) * 0.5, rng.standard_normal((4, 4)) * 0.5,
              rng.standard_normal((5, 4, 6, 5)), rng.standard_normal((6, 2, 3, 2)),
              rng.standard_normal((3, 600)), rng.randint(0, 600, 3).astype("int64"),
              rng.standard_normal(4100).astype("float32")]
    for got, want in zip(f(*values), ref(*values)):
        np.testing.assert_allclose(got, want, rtol=1e-5 if got.dtype == "float32" else 1e-9,
                                   atol=1e-6 if got.dtype == "float32" else 1e-9)
