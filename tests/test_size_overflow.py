"""Size arithmetic that overflows int64 (issue 13, item 3): three 8 MiB inputs broadcast together
need 2^63 elements; the workspace size wrapped and the call crashed (in the AOT library with every
dim inside its documented 1..MAX_DIM). Every generated program checks its sizes, in double
precision, before any kernel runs (targets/c/size_bound.py): a clear error, ERR_DIM in the AOT
library, and nothing changed."""
import ctypes

import numpy as np
import pytest
import sympy

import graphc as G
from graphc.targets.c.size_bound import size_bound_to_c

N = 2 ** 21  # N**3 = 2**63


def _outer3_graph():
    x, y, z = G.vector("x"), G.vector("y"), G.vector("z")
    t = G.exp(x.dimshuffle(0, "x", "x") + y.dimshuffle("x", 0, "x") + z.dimshuffle("x", "x", 0))
    return [x, y, z], t.sum() + t.max()


def test_jit_call_whose_sizes_overflow_fails_cleanly():
    inputs, out = _outer3_graph()
    w = G.shared(np.zeros(2, "float32"), name="w")
    f = G.function(inputs, out, updates=[(w, w + 1)], backend="c")
    big = np.zeros(N, "float32")
    for call in (lambda: f(big, big, big), lambda: f(x=big, y=big, z=big)):  # fast, checked path
        with pytest.raises(G.RuntimeCheckError, match=r"more than 2\^62.*=2097152"):
            call()
    np.testing.assert_array_equal(w.get_value(), 0)
    small = np.zeros(3, "float32")
    assert float(f(small, small, small)) == pytest.approx(28.0)


def test_aot_library_reports_err_dim(tmp_path):
    inputs, out = _outer3_graph()
    export = G.aot.export({"f": G.function(inputs, out)}, str(tmp_path / "ovf"), name="ovf")
    lib = ctypes.CDLL(export.library)
    lib.ovf_create.restype = ctypes.c_void_p
    lib.ovf_create.argtypes = [ctypes.c_char_p]
    lib.ovf_last_error.restype = ctypes.c_char_p
    lib.ovf_last_error.argtypes = [ctypes.c_void_p]
    lib.ovf_destroy.argtypes = [ctypes.c_void_p]
    ptr = ctypes.c_void_p
    lib.ovf_f.argtypes = [ptr, ptr, ptr, ptr, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ptr]
    ctx = lib.ovf_create(None)
    try:
        big, res = np.zeros(N, "float32"), np.zeros((), "float32")
        args = [big.ctypes.data] * 3 + [N, N, N, res.ctypes.data]
        assert lib.ovf_f(ctx, *args) == 2  # OVF_ERR_DIM, as the header promises
        assert b"2^62" in lib.ovf_last_error(ctx)
        small = np.zeros(3, "float32")
        assert lib.ovf_f(ctx, *([small.ctypes.data] * 3 + [3, 3, 3, res.ctypes.data])) == 0
        assert float(res) == pytest.approx(28.0)
    finally:
        lib.ovf_destroy(ctx)


def test_bound_printer_over_approximates():
    d = sympy.Symbol("n", integer=True, positive=True)
    text = size_bound_to_c(sympy.ceiling(d / 64) * 64 + sympy.floor((d - 3) / 2) + sympy.Max(d, 5))
    assert text.count("(double)d_n") == 3 and "fmax" in text
    assert size_bound_to_c(sympy.Mod(d, 3)) is None  # unknown forms are skipped, not guessed
