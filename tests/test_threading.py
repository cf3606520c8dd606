"""graphc's one thread pool: products large enough to be cut over the OpenMP threads (the runtime
library's gemm) agree with numpy, in every branch; the BLAS runs single-threaded; in-process
programs link the runtime library and AOT sources carry the helper themselves."""
import ctypes
import os
import subprocess

import numpy as np
import pytest

import graphc as G
from graphc.targets.c import runtime_lib

# Every product below has at least this many multiply-adds, so it takes a threaded branch.
PAR_MIN = 1 << 20


def _tol(dtype):
    return dict(rtol=2e-5, atol=1e-4) if dtype == "float32" else dict(rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("m,n,k", [(67, 301, 77),    # M <= N: columns of C cut between threads
                                   (301, 67, 77),    # M > N: rows cut
                                   (129, 130, 65)])  # blocks of 16 that do not divide the size
@pytest.mark.parametrize("trans", ["nn", "tn", "nt", "tt"])
def test_large_products_agree_with_numpy_in_every_cut(m, n, k, trans, dtype):
    assert m * n * k >= PAR_MIN
    rng = np.random.RandomState(m + n + k)
    a = rng.randn(*((k, m) if trans[0] == "t" else (m, k))).astype(dtype)
    b = rng.randn(*((n, k) if trans[1] == "t" else (k, n))).astype(dtype)
    x, y = G.matrix("a", dtype), G.matrix("b", dtype)
    f = G.function([x, y], G.dot(x.T if trans[0] == "t" else x, y.T if trans[1] == "t" else y))
    want = (a.T if trans[0] == "t" else a) @ (b.T if trans[1] == "t" else b)
    np.testing.assert_allclose(f(a, b), want, **_tol(dtype))


def test_a_batch_of_products_runs_whole_items_per_thread(dtype):
    rng = np.random.RandomState(1)
    a, b = rng.randn(5, 70, 90).astype(dtype), rng.randn(5, 90, 80).astype(dtype)
    assert a.shape[0] * 70 * 80 * 90 >= PAR_MIN
    x, y = G.tensor3("a", dtype), G.tensor3("b", dtype)
    np.testing.assert_allclose(G.function([x, y], G.matmul(x, y))(a, b), a @ b, **_tol(dtype))


def test_a_large_update_in_place_reads_the_weights_from_before_the_call(dtype):
    """The gemm-update kernel (W -= lr * x.T @ g, written into W) cut over threads."""
    rng = np.random.RandomState(2)
    w0 = rng.randn(200, 300).astype(dtype)
    xv, gv = rng.randn(64, 200).astype(dtype), rng.randn(64, 300).astype(dtype)
    w = G.shared(w0.copy(), name="W")
    x, g = G.matrix("x", dtype), G.matrix("g", dtype)
    f = G.function([x, g], G.sum(w), updates={w: w - 0.1 * G.dot(x.T, g)})
    total = f(xv, gv)
    np.testing.assert_allclose(total, w0.sum(), rtol=1e-5 if dtype == "float32" else 1e-12)
    np.testing.assert_allclose(w.get_value(), w0 - 0.1 * (xv.T @ gv), **_tol(dtype))


def test_in_process_programs_link_the_runtime_library():
    x, y = G.matrix("x"), G.matrix("y")
    f = G.function([x, y], G.dot(x, y))
    lib = runtime_lib.library_path()
    assert os.path.exists(lib)
    assert "graphc_rt_sgemm" in f.program.source and "cblas_sgemm" not in f.program.source
    deps = subprocess.run(["ldd", f.program.lib_path], capture_output=True, text=True).stdout
    assert os.path.abspath(lib) in deps


def test_the_blas_runs_single_threaded_once_a_product_ran():
    x, y = G.matrix("x"), G.matrix("y")
    G.function([x, y], G.dot(x, y))(np.ones((4, 4), "float32"), np.ones((4, 4), "float32"))
    import scipy_openblas32
    blas = ctypes.CDLL(os.path.join(scipy_openblas32.get_lib_dir(),
                                    f"lib{scipy_openblas32.get_library()}.so"))
    assert blas.scipy_openblas_get_num_threads() == 1


def test_aot_libraries_carry_the_gemm_helper_instead_of_linking_the_runtime(tmp_path):
    x, y = G.matrix("x"), G.matrix("y")
    G.aot.export({"mm": G.function([x, y], G.dot(x, y))}, str(tmp_path), name="mm")
    assert "static void graphc_rt_sgemm(" in open(tmp_path / "src" / "mm.c").read()
    deps = subprocess.run(["ldd", str(tmp_path / "libmm.so")], capture_output=True, text=True).stdout
    assert os.path.abspath(runtime_lib.library_path()) not in deps


def test_the_runtime_library_built_at_install_is_used():
    if not os.path.isdir(runtime_lib.SHIPPED_DIR) or G.config.extra_cflags:
        pytest.skip("no runtime library was built at install here (a checkout without setup.py "
                    "build_ext), or GRAPHC_CFLAGS asks for another build")
    assert os.path.dirname(runtime_lib.library_path()) == runtime_lib.SHIPPED_DIR


def test_other_flags_get_their_own_runtime_library_in_the_cache(tmp_path, monkeypatch, dtype):
    """With GC_GEMM_PAR_MIN=0 every product is cut, down to blocks a thread gets nothing of."""
    monkeypatch.setattr(G.config, "cache_dir", str(tmp_path))
    monkeypatch.setattr(G.config, "extra_cflags", ["-DGC_GEMM_PAR_MIN=0"])
    assert runtime_lib.library_path().startswith(str(tmp_path / "runtime"))
    rng = np.random.RandomState(9)
    for m, n, k in [(3, 5, 4), (5, 3, 4), (1, 1, 1), (40, 33, 7)]:
        a, b = rng.randn(m, k).astype(dtype), rng.randn(k, n).astype(dtype)
        x, y = G.matrix("a", dtype), G.matrix("b", dtype)
        np.testing.assert_allclose(G.function([x, y], G.dot(x, y))(a, b), a @ b, **_tol(dtype))


# --- shared variables touched from several threads (issue 13 item 14) -----------------------

@pytest.mark.parametrize("backend", ["c", "py"])
def test_two_functions_updating_one_shared_variable_from_two_threads(backend):
    """Each call holds the lock of every shared variable it touches: no update is lost, and a
    third function reading the variable never sees it half-written."""
    import threading
    n_calls, size = (150, 1 << 17) if backend == "c" else (60, 1 << 17)
    w = G.shared(np.zeros(size, "float32"), name="w")
    v = G.shared(np.zeros(4, "float32"), name="v")
    add1 = G.function([], [], updates={w: w + 1}, backend=backend)                  # in place
    add2 = G.function([], [], updates={w: w + 2, v: v + 1}, backend=backend)        # two locks
    spread = G.function([], w.max() - w.min(), backend=backend)
    torn, errors = [], []

    def loop(fn, count):
        try:
            for _ in range(count):
                out = fn()
                if fn is spread and out != 0:
                    torn.append(float(out))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=loop, args=(add1, n_calls)),
               threading.Thread(target=loop, args=(add2, n_calls)),
               threading.Thread(target=loop, args=(spread, n_calls))]
    for t in threads:
        t.start()
    for k in range(n_calls):  # and the main thread reads it too
        value = w.get_value()
        if value.max() != value.min():
            torn.append("get_value")
    for t in threads:
        t.join()
    assert not errors, errors
    assert not torn, torn[:5]
    np.testing.assert_array_equal(w.get_value(), np.full(size, 3.0 * n_calls, "float32"))
    np.testing.assert_array_equal(v.get_value(), np.full(4, n_calls, "float32"))


def test_a_function_without_shared_variables_takes_only_its_program_lock():
    x = G.vector("x")
    f = G.function([x], x + 1)
    if f._fast is None:
        pytest.skip("no fast call path")
    assert f._lock is f.program.lock and f._shared_lock is None
