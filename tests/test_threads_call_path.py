"""The per-call cost of a compiled function (issue 16): f(...) reaches the native call path
without a Python frame, small elementwise kernels enter no OpenMP region, and everything the
fast path does not take still goes to the checked path with its precise errors."""
import os
import re
import sys

import numpy as np
import pytest

import graphc as G
from graphc.errors import GraphcError
from graphc.targets.c.templates_dir import templates_root


def _python_frames_during(fn):
    events = []
    sys.setprofile(lambda frame, event, arg: events.append((event, frame.f_code.co_name)))
    try:
        fn()
    finally:
        sys.setprofile(None)
    return [name for event, name in events if event == "call"]


@pytest.fixture
def add():
    x, y = G.vector("x"), G.vector("y")
    f = G.function([x, y], x + y)
    if f._fast is None:
        pytest.skip("no fast call path (the gc_dispatch extension did not build)")
    return f


def test_a_fast_call_runs_no_python_frame(add):
    a, b = np.arange(4, dtype="float32"), np.ones(4, "float32")
    add(a, b)
    assert _python_frames_during(lambda: add(a, b)) == ["<lambda>"]   # only the test's own
    np.testing.assert_array_equal(add(a, b), a + b)


def test_keywords_and_lists_go_to_the_checked_path(add):
    a, b = np.arange(4, dtype="float32"), np.ones(4, "float32")
    np.testing.assert_array_equal(add(x=a, y=b), a + b)
    np.testing.assert_array_equal(add(a, y=b), a + b)
    np.testing.assert_array_equal(add([0, 1, 2, 3], b), a + b)


@pytest.mark.parametrize("bad,expected", [
    ((np.ones(4, "float64"), np.ones(4, "float32")), "x"),        # dtype
    ((np.ones(4, "float32"), np.ones((4, 1), "float32")), "y"),   # rank
    ((np.ones(4, "float32"), np.ones(3, "float32")), "y"),        # shape against the dim of x
])
def test_wrong_arguments_still_raise_an_error_naming_the_input(add, bad, expected):
    with pytest.raises(GraphcError) as err:
        add(*bad)
    assert expected in str(err.value)


def test_a_failed_run_raises_from_the_fast_path():
    x = G.vector("x")
    f = G.function([x], G.reshape(x, (2, 3)))
    if f._fast is None:
        pytest.skip("no fast call path")
    with pytest.raises(GraphcError):
        f(np.ones(5, "float32"))
    np.testing.assert_array_equal(f(np.arange(6, dtype="float32")), np.arange(6).reshape(2, 3))


def test_the_caller_does_not_keep_its_function_alive():
    import gc
    import weakref
    x = G.vector("x")
    f = G.function([x], x + 1)
    ref = weakref.ref(f)
    del f
    gc.collect()
    assert ref() is None


PAR = 262144  # GC_PAR_THRESHOLD: above it the flat elementwise loop runs on the OpenMP threads


@pytest.mark.parametrize("n", [PAR - 1, PAR, PAR + 1, 3 * 4096 + PAR + 7])
def test_flat_elementwise_agrees_on_both_sides_of_the_parallel_threshold(n):
    x, y = G.vector("x"), G.vector("y")
    f = G.function([x, y], G.tanh(x) * y + 1)
    a = np.linspace(-3, 3, n).astype("float32")
    b = np.linspace(1, 2, n).astype("float32")
    np.testing.assert_allclose(f(a, b), np.tanh(a) * b + 1, rtol=1e-6, atol=1e-6)


def test_a_small_flat_elementwise_kernel_skips_the_parallel_region():
    x, y = G.vector("x"), G.vector("y")
    src = G.function([x, y], x + y).program.source
    # The loop is a range function run by the runtime library's one parallel driver
    # (templates/c/_parallel_range.j2); the kernel passes its size test as `parallel`...
    assert re.search(r"graphc_rt_parallel_range\([^;]*, n > GC_PAR_THRESHOLD\);", src)
    assert "if(n > GC_PAR_THRESHOLD)" not in src   # no region entered with a false if()
    assert "#pragma omp parallel" not in src
    # ...and the driver runs the function on the calling thread before any region when it is 0
    with open(os.path.join(templates_root(), "c", "_parallel_range.j2")) as fh:
        driver = fh.read()
    serial = driver.index("if (!parallel ||")
    assert serial < driver.index("fn(bufs, dims, 0, n);") < driver.index("#pragma omp parallel")
