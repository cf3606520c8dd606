"""The AOT profiling build: graphc.aot.export(..., profile=True) times each kernel in the library
(<name>_profile, <name>_profile_kernel, <name>_profile_reset) and main.c's -t prints them; the
normal export has none of it, and the profiled library computes the same results."""
import ctypes
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

import graphc as G

CC = os.environ.get("CC", "gcc")
pytestmark = pytest.mark.skipif(shutil.which(CC) is None, reason="needs a C compiler")


def _step():
    rng = np.random.RandomState(0)
    w = G.shared(rng.randn(5, 3).astype("float32"), name="w")
    x = G.tensor("x", (G.dim("batch"), 5))
    loss = (G.tanh(G.dot(x, w)) ** 2).mean()
    return G.function([x], loss, updates={w: w - 0.5 * G.grad(loss, w)}, name="aot_prof"), w


def _main(directory, name):
    if shutil.which("make"):
        subprocess.run(["make", "-s", f"CC={CC}"], cwd=directory, check=True,
                       capture_output=True)
    else:
        subprocess.run([CC, "-O2", "-o", f"{name}_main", "main.c", "-I.", "-L.", f"-l{name}",
                        "-Wl,-rpath,$ORIGIN", "-Wl,-rpath-link,."], cwd=directory, check=True)
    return os.path.join(directory, f"{name}_main")


def test_aot_profile_build(tmp_path):
    f, w = _step()
    w0 = w.get_value()
    out = G.aot.export({"step": f}, str(tmp_path / "p"), name="pstep", profile=True)
    plain = G.aot.export({"step": f}, str(tmp_path / "n"), name="nstep")
    assert "gc_prof" not in open(os.path.join(plain.directory, "src", "nstep.c")).read()
    assert "_profile" not in open(plain.header).read()
    assert "pstep_profile(const pstep_ctx *ctx" in open(out.header).read()

    xs = np.random.RandomState(1).randn(3 * 4, 5).astype("float32")
    xs.tofile(tmp_path / "x.bin")
    proc = subprocess.run([_main(out.directory, "pstep"), "-t", "step", "4", "x.bin", "loss.bin"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    losses = np.fromfile(tmp_path / "loss.bin", "float32")
    expected = [float(f(xs[k * 4:(k + 1) * 4])) for k in range(3)]  # the same training steps
    np.testing.assert_allclose(losses, expected, rtol=1e-5)
    w.set_value(w0)
    n = len(f.program.program.kernels)
    lines = proc.stdout.splitlines()
    assert re.match(r"step: 3 calls, [\d.]+ ms a call in the library", lines[0]), proc.stdout
    assert [re.sub(r"^\s*[\d.]+ ms\s+[\d.]+%\s+", "", ln) for ln in lines[1:1 + n]] == \
        [f"k{k} {kern.kind} {kern.label}" for k, kern in enumerate(f.program.program.kernels)]
    assert "outside kernels" in lines[1 + n]

    # The C API itself: counters of the calls made, kernels inside the run.
    lib = ctypes.CDLL(out.library)
    lib.pstep_create.restype = ctypes.c_void_p
    lib.pstep_create.argtypes = [ctypes.c_char_p]
    lib.pstep_step.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p]
    lib.pstep_profile.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p,
                                  ctypes.c_int64]
    lib.pstep_profile_kernel.restype = ctypes.c_char_p
    lib.pstep_profile_reset.argtypes = [ctypes.c_void_p]
    lib.pstep_destroy.argtypes = [ctypes.c_void_p]
    ctx = lib.pstep_create(None)
    loss = np.zeros((), "float32")
    for _ in range(2):
        assert lib.pstep_step(ctx, xs.ctypes.data, 12, loss.ctypes.data) == 0
    c = np.zeros(4 + 3 * n)
    assert lib.pstep_profile(ctx, b"step", c.ctypes.data, len(c)) == len(c)
    assert c[0] == 2 and 0 <= c[4:4 + n].sum() <= c[1]
    assert c[2] <= c[4 + n] and c[4 + 2 * n:].min() >= 0  # the last call's kernels after its start
    assert lib.pstep_profile(ctx, b"nope", c.ctypes.data, len(c)) == -1
    assert lib.pstep_profile(ctx, b"step", c.ctypes.data, 3) == -1
    assert lib.pstep_profile_kernel(b"step", n) is None
    lib.pstep_profile_reset(ctx)
    assert lib.pstep_profile(ctx, b"step", c.ctypes.data, len(c)) == len(c) and not c.any()
    lib.pstep_destroy(ctx)
