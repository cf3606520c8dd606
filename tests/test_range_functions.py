"""Threaded elementwise kernels run their loop as a range function through the runtime library's
one parallel loop (graphc/targets/c/range_functions.py, templates/c/_parallel_range.j2): an
OpenMP region per kernel cost gcc ~20-30 ms a body (issue 16, cold compile)."""
import ctypes
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import graphc as G
from graphc.targets.c import render_c, runtime_lib

from program_cases import program_of

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CC = os.environ.get("CC", "gcc")
needs_cc = pytest.mark.skipif(shutil.which(CC) is None, reason="needs a C compiler")

RANGE_FN = re.compile(r"^(static|GC_SEGMENT) void (gc_entry_r\d+)\(void \*const \*gc_p, "
                      r"const int64_t \*dims, const int64_t lo, const int64_t hi\)( \{|;)$", re.M)


def _layers(dtype, n_layers=3):
    """Dense layers alike (bias + tanh over a (batch, 61) product, in place), a 1-D kernel with two
    outputs over a (size,) vector, and a fixed-size update of a shared vector."""
    batch, size = G.dim("batch"), G.dim("size")
    x = G.tensor("x", (batch, 61), dtype)
    v = G.tensor("v", (size,), dtype)
    rng = np.random.RandomState(1)
    ws = [G.shared((rng.standard_normal((61, 61)) * 0.2).astype(dtype), name=f"w{i}")
          for i in range(n_layers)]
    bs = [G.shared(np.linspace(-1, 1, 61).astype(dtype) * (i + 1), name=f"b{i}")
          for i in range(n_layers)]
    h = x
    for w, b in zip(ws, bs):
        h = G.tanh(G.dot(h, w) + b)
    s = G.shared(np.zeros(5, dtype), name="s")
    e = G.exp(-v * v) * 3 + v
    return [x, v], [h, e, e * v], {s: s * 0.5 + 1}


def _reductions(dtype):
    """Static reductions: a middle axis (7 x rows x 33, summed over rows, fused with its
    producer) and rows (37 x cols, max over cols: NaN wins)."""
    rows, cols = G.dim("rows"), G.dim("cols")
    m = G.tensor("m", (7, rows, 33), dtype)
    n = G.tensor("n", (37, cols), dtype)
    return [m, n], [(m * m).sum(axis=1), n.max(axis=1), (n + 1).sum(axis=0)]


def test_static_reductions_over_rows_or_a_middle_axis_are_range_functions():
    inputs, outputs = _reductions("float64")
    program = program_of(inputs, outputs, name="range_reductions")
    source = render_c.render_program(program, "range_reductions", "")
    reduces = [k for k in program.kernels if k.kind == "reduce"]
    from graphc.targets.c.range_functions import runs_in_range
    assert [runs_in_range(k) for k in reduces].count(True) == 2  # not the sum over axis 0
    assert source.count("graphc_rt_parallel_range(gc_entry_r") == 2
    assert source.count("#pragma omp parallel") == 3  # the symbolic one's three branches


def test_threaded_elementwise_loops_are_range_functions_without_omp_regions():
    """Each distinct loop is one function; kernels call graphc_rt_parallel_range with it, and no
    elementwise kernel outside a loop body opens an OpenMP region of its own."""
    inputs, outputs, updates = _layers("float32")
    program = program_of(inputs, outputs, updates, name="range_layers")
    source = render_c.render_program(program, "range_layers", "")
    defined = [m.group(2) for m in RANGE_FN.finditer(source) if m.group(3) == " {"]
    calls = re.findall(r"graphc_rt_parallel_range\((gc_entry_r\d+), gc_rp, dims, ", source)
    assert len(defined) == len(set(defined)) >= 2 and set(calls) == set(defined)
    from graphc.targets.c.range_functions import range_functions
    ranges, range_of = range_functions(render_c.environment(), program.kernels, "gc_entry_")
    assert [f.name for f in ranges] == defined
    assert max(len(f.uses) for f in ranges) >= 2  # the layers alike share one loop
    assert "#pragma omp parallel" not in source
    # the fixed-size update (5 elements) stays an inline loop: too small to ever thread
    assert sum(k.kind == "elemwise" for k in program.kernels) > len(calls)


def test_a_range_function_called_from_two_units_is_defined_once():
    from graphc.targets.c.range_functions import place_in_units, range_functions
    inputs, outputs, updates = _layers("float64", n_layers=6)
    program = program_of(inputs, outputs, updates, name="range_units")
    ranges, range_of = range_functions(render_c.environment(), program.kernels, "gc_entry_")
    shared = max(ranges, key=lambda f: len(f.uses))
    cut = shared.uses[len(shared.uses) // 2]
    place_in_units(ranges, lambda ki: 0 if ki < cut else 1)
    assert (shared.unit, shared.linkage) == (0, "hidden")
    assert all(f.linkage == "static" for f in ranges if len({ki < cut for ki in f.uses}) == 1)


def test_split_units_define_each_range_function_once(monkeypatch):
    real = render_c.plan_segments
    monkeypatch.setattr(render_c, "plan_segments",
                        lambda *a, **kw: real(*a, **dict(kw, min_unit_cost=1)))
    inputs, outputs, updates = _layers("float64", n_layers=6)
    program = program_of(inputs, outputs, updates, name="range_units")
    sources = render_c.render_units(program, "range_units", "", 2)
    assert len(sources) == 2
    found = [(m.group(1), m.group(2), m.group(3)) for src in sources for m in RANGE_FN.finditer(src)]
    defined = [name for _, name, end in found if end == " {"]
    assert len(defined) == len(set(defined))
    for link, name, end in found:
        if end == ";":  # declared in the unit that calls it, defined hidden in the other
            assert link == "GC_SEGMENT" and ("GC_SEGMENT", name, " {") in found


_KEEP = []  # a program that loaded the runtime library with the BLAS its gemm resolves to


def runtime_library():
    if not _KEEP:
        x = G.matrix("x")
        _KEEP.append(G.function([x], G.dot(x, x), name="keep_runtime_loaded"))
        _KEEP[0](np.ones((2, 2), "float32"))
    return ctypes.CDLL(runtime_lib.library_path())


def _driver():
    lib = runtime_library()
    fn = lib.graphc_rt_parallel_range
    callback = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)
    fn.argtypes = [callback, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                   ctypes.c_int]
    fn.restype = None
    return fn, callback


@needs_cc
@pytest.mark.parametrize("threads, n, grain, parallel, want", [
    (2, 10 * 4096 + 5, 4096, 1, [(0, 6 * 4096), (6 * 4096, 10 * 4096 + 5)]),  # 11 blocks: 6 + 5
    (3, 7, 1, 1, [(0, 3), (3, 5), (5, 7)]),  # schedule(static): the first 7 % 3 threads one more
    (3, 2, 1, 1, [(0, 1), (1, 2)]),  # fewer items than threads
    (2, 4096, 4096, 1, [(0, 4096)]),  # one block: no region
    (2, 10 ** 6, 4096, 0, [(0, 10 ** 6)]),  # the caller's size test said no
    (1, 10 ** 6, 4096, 1, [(0, 10 ** 6)]),  # one thread
    (2, 0, 4096, 1, []),  # nothing to do: not called
])
def test_the_parallel_loop_splits_items_as_openmp_static_does(threads, n, grain, parallel, want):
    fn, callback = _driver()
    gomp = ctypes.CDLL("libgomp.so.1")
    before = gomp.omp_get_max_threads()
    pieces, lock = [], threading.Lock()

    def record(bufs, dims, lo, hi):
        with lock:
            pieces.append((lo, hi, threading.get_ident()))
    cb = callback(record)
    gomp.omp_set_num_threads(threads)
    try:
        fn(cb, None, None, n, grain, parallel)
    finally:
        gomp.omp_set_num_threads(before)
    assert sorted((lo, hi) for lo, hi, _ in pieces) == want
    assert len({t for _, _, t in pieces}) == len(want)  # one piece per thread


_RUN = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    import numpy as np
    import graphc as G
    from test_range_functions import _layers, _reductions
    TOL = {{"float32": dict(rtol=2e-5, atol=2e-6), "float64": dict(rtol=1e-12, atol=1e-13)}}
    rng = np.random.RandomState(3)
    for dtype in ("float32", "float64"):
        inputs, outputs, updates = _layers(dtype)
        f = G.function(inputs, outputs, updates=updates, name="range_" + dtype)
        assert "graphc_rt_parallel_range(" in f.program.source
        ref = G.function(inputs, outputs, updates=updates, backend="py", name="range_ref_" + dtype)
        # odd sizes: 4409 x 61 and 300007 elements (above the threshold, not whole blocks), then
        # small ones (one thread, whatever the count)
        for rows, size in ((4409, 300007), (3, 5), (1, 1)):
            x = rng.standard_normal((rows, 61)).astype(dtype)
            v = rng.standard_normal(size).astype(dtype)
            for got, want in zip(f(x, v), ref(x, v)):
                np.testing.assert_allclose(got, want, **TOL[dtype])
        inputs, outputs = _reductions(dtype)
        f = G.function(inputs, outputs, name="range_red_" + dtype)
        ref = G.function(inputs, outputs, backend="py", name="range_red_ref_" + dtype)
        # 7 x 1201 x 33 and 37 x 7301 elements (above the threshold), then small ones
        for rows, cols in ((1201, 7301), (2, 3)):
            m = rng.standard_normal((7, rows, 33)).astype(dtype)
            n = rng.standard_normal((37, cols)).astype(dtype)
            n[5, cols // 2] = np.nan
            for got, want in zip(f(m, n), ref(m, n)):
                np.testing.assert_allclose(got, want, **TOL[dtype])
    print("ok")
""")


@needs_cc
@pytest.mark.parametrize("threads", [1, 2])
def test_range_kernels_equal_the_reference(threads, tmp_path):
    script = _RUN.format(tests=os.path.join(ROOT, "tests"))
    env = dict(os.environ, OMP_NUM_THREADS=str(threads),
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=600, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ok" in proc.stdout


@needs_cc
def test_an_aot_library_runs_its_own_parallel_loop(tmp_path):
    """An exported library stands alone: a static copy of the parallel loop, no graphc_rt_ symbol
    left to find elsewhere."""
    inputs, outputs, updates = _layers("float32", n_layers=2)
    f = G.function(inputs, outputs[:2], name="range_aot")
    export = G.aot.export({"f": f}, str(tmp_path / "r"), name="rangeaot")
    with open(os.path.join(export.directory, "src", "rangeaot.c")) as fh:
        source = fh.read()
    assert source.count("static void graphc_rt_parallel_range(") == 1
    if shutil.which("nm"):
        undefined = subprocess.run(["nm", "-u", export.library], capture_output=True, text=True,
                                   check=True).stdout
        assert "graphc_rt_" not in undefined
