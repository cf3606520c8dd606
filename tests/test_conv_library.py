"""Convolutions compiled once into the runtime library (graphc/targets/c/conv_library.py): the
Winograd F(2x2, 3x3) forward / input gradient and F(3x3, 2x2) weight gradient take their sizes at
run time (templates/c/_winograd_functions.j2). An in-process program calls the library's copy and
carries no body of its own; an AOT library defines its own and stands alone; results equal the
py reference in both dtypes, on odd sizes, every padding, ragged chunks of a symbolic batch."""
import os
import shutil
import subprocess

import numpy as np
import pytest

import graphc as G
from graphc.targets.c import runtime_lib

CC = os.environ.get("CC", "gcc")
WINOGRAD_ENTRY_POINTS = ("conv_winograd", "conv_winograd_grad_weights")


def _winograd(monkeypatch, budget=None):
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "winograd")
    monkeypatch.setenv("GRAPHC_WINOGRAD_TILE", "2")  # (F(4x4, 3x3) stays inline)
    if budget is not None:
        monkeypatch.setenv("GRAPHC_CONV_WORKSPACE", str(budget))


def _conv_and_grads(x, w, padding):
    y = G.conv2d(x, w, padding=padding)
    gy = G.tensor("gy", x.type.shape[:1] + y.type.shape[1:], x.dtype)
    return [y] + G.grad((y * gy).sum(), [x, w]), gy


def _kinds(f):
    return sorted(k.kind for k in f.program.program.kernels if k.kind.startswith("conv"))


# padding, x (C, H, W), C_out: odd and even output sizes (whole and clipped 2x2 tiles), an image
# smaller than one tile, every padding the input gradient allows, channel counts that are no
# multiple of any vector width
CASES = {
    "pad1_odd": ((1, 1), (5, 7, 9), 3),
    "pad0_even": ((0, 0), (3, 6, 8), 4),
    "pad2_tiny": ((2, 2), (2, 2, 3), 5),
    "mixed_pad": ((0, 2), (3, 5, 4), 2),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_library_winograd_equals_reference_in_ragged_chunks(name, dtype, monkeypatch):
    """A symbolic batch and a budget of about two images' tiles: chunks of two, so batches 1, 3 and
    5 end in a ragged chunk, and every size reaches the library as an argument."""
    padding, (c, h, w_), co = CASES[name]
    tiles = ((h + 2 * padding[0] - 1) // 2 + 1) * ((w_ + 2 * padding[1] - 1) // 2 + 1)
    _winograd(monkeypatch, budget=2 * 16 * (c + co) * tiles * np.dtype(dtype).itemsize)
    x = G.tensor("x", (G.dim("batch"), c, h, w_), dtype)
    w = G.tensor("w", (co, c, 3, 3), dtype)
    outs, gy = _conv_and_grads(x, w, padding)
    f = G.function([x, w, gy], outs)
    assert _kinds(f) == ["conv_winograd", "conv_winograd", "conv_winograd_grad_weights"]
    ref = G.function([x, w, gy], outs, backend="py", opt_level="O0")
    rng = np.random.RandomState(0)
    wv = rng.standard_normal((co, c, 3, 3)).astype(dtype)
    tol = 5e-5 if dtype == "float32" else 1e-11
    for n in (1, 3, 5):
        xv = rng.standard_normal((n, c, h, w_)).astype(dtype)
        yshape = [n] + [int(d) for d in outs[0].type.shape[1:]]
        gyv = rng.standard_normal(yshape).astype(dtype)
        for got, want in zip(f(xv, wv, gyv), ref(xv, wv, gyv)):
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1.0, np.abs(want).max()))


def test_library_winograd_gradients_match_finite_differences(monkeypatch):
    _winograd(monkeypatch)
    rng = np.random.RandomState(2)
    xv, wv = rng.standard_normal((3, 2, 5, 7)), rng.standard_normal((3, 2, 3, 3))
    G.testing.verify_grad(lambda x, w: G.conv2d(x, w, padding=(2, 1)), [xv, wv], backend="c")


def test_in_process_program_calls_the_library_and_carries_no_winograd_body(monkeypatch):
    """Two layers of different sizes: six calls of the library's two functions, declared and not
    defined in the program (the library defines them once, exported)."""
    _winograd(monkeypatch)
    x = G.tensor4("x")
    w1 = G.tensor("w1", (6, 3, 3, 3))
    w2 = G.tensor("w2", (5, 6, 3, 3))
    h = G.conv2d(x, w1, padding=(1, 1))
    y = G.conv2d(h, w2, padding=(0, 0))
    f = G.function([x, w1, w2], G.grad((y * y).sum(), [x, w1, w2]))
    assert _kinds(f).count("conv_winograd_grad_weights") == 2
    source = f.program.source
    assert source.count("graphc_rt_sconv_winograd(gc_wg,") == 4  # two forwards, two gx
    assert source.count("graphc_rt_sconv_winograd_grad_weights(gc_wg,") == 2
    for entry in WINOGRAD_ENTRY_POINTS:  # declared, never defined: no body, no static copy
        assert f"void graphc_rt_s{entry}(const int64_t *g," in source
        assert f"static void graphc_rt_s{entry}(" not in source
    assert "/* a = A^T q */" not in source and "/* b = B^T d */" not in source
    symbols = subprocess.run(["nm", "-D", "--defined-only", runtime_lib.library_path()],
                             capture_output=True, text=True, check=True).stdout.split()
    for P in "sd":
        for entry in WINOGRAD_ENTRY_POINTS:
            assert f"graphc_rt_{P}{entry}" in symbols
    rng = np.random.RandomState(1)
    args = [rng.standard_normal(s).astype("float32") for s in ((2, 3, 7, 6), (6, 3, 3, 3), (5, 6, 3, 3))]
    ref = G.function([x, w1, w2], G.grad((y * y).sum(), [x, w1, w2]), backend="py", opt_level="O0")
    for got, want in zip(f(*args), ref(*args)):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4 * np.abs(want).max())


def test_programs_without_winograd_neither_declare_nor_define_it(monkeypatch):
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "gemm")
    x, w = G.tensor4("x"), G.tensor("w", (4, 3, 3, 3))
    f = G.function([x, w], G.grad(G.conv2d(x, w, padding=(1, 1)).sum(), [x, w]))
    assert "winograd" not in f.program.source.lower()


@pytest.mark.skipif(shutil.which(CC) is None or shutil.which("nm") is None,
                    reason="needs a C compiler and nm")
def test_aot_library_with_winograd_stands_alone(tmp_path, monkeypatch):
    """An exported library defines its own static Winograd functions: it links neither graphc's
    runtime library nor needs a graphc_rt_ symbol from anywhere, and its C example computes the
    in-process function's result."""
    _winograd(monkeypatch)
    batch = G.dim("batch")
    rng = np.random.RandomState(4)
    x = G.tensor("x", (batch, 3, 7, 5))
    w1 = G.shared(rng.standard_normal((6, 3, 3, 3)).astype("float32"), name="w1")
    w2 = G.shared(rng.standard_normal((4, 6, 3, 3)).astype("float32"), name="w2")
    y = G.conv2d(G.relu(G.conv2d(x, w1, padding=(1, 1))), w2, padding=(1, 1))
    cost = (y * y).mean()
    updates = {p: p - 1e-3 * g for p, g in zip([w1, w2], G.grad(cost, [w1, w2]))}
    f_infer = G.function([x], y, name="wg_infer")
    f_train = G.function([x], cost, updates=updates, name="wg_train")
    assert "conv_winograd_grad_weights" in _kinds(f_train)
    export = G.aot.export({"infer": f_infer, "train": f_train}, str(tmp_path / "wg"), name="wg")
    with open(os.path.join(export.directory, "src", "wg.c")) as fh:
        source = fh.read()
    assert "static void graphc_rt_sconv_winograd(" in source
    assert "static void graphc_rt_sconv_winograd_grad_weights(" in source
    undefined = subprocess.run(["nm", "-u", export.library], capture_output=True, text=True,
                               check=True).stdout
    assert "graphc_rt_" not in undefined
    needed = subprocess.run(["readelf", "-d", export.library], capture_output=True, text=True,
                            check=True).stdout
    assert "graphc_rt" not in needed
    main = os.path.join(export.directory, "wg_main")
    if shutil.which("make"):
        subprocess.run(["make", "-s", f"CC={CC}"], cwd=export.directory, check=True,
                       capture_output=True)
    else:
        subprocess.run([CC, "-O2", "-o", "wg_main", "main.c", "-I.", "-L.", "-lwg",
                        "-Wl,-rpath,$ORIGIN", "-Wl,-rpath-link,."], cwd=export.directory,
                       check=True, capture_output=True)
    xv = rng.standard_normal((3, 3, 7, 5)).astype("float32")
    xv.tofile(tmp_path / "x.bin")
    subprocess.run([main, "infer", "3", "x.bin", "y.bin"], cwd=str(tmp_path), check=True,
                   capture_output=True)
    got = np.fromfile(tmp_path / "y.bin", "float32").reshape(3, 4, 7, 5)
    np.testing.assert_allclose(got, f_infer(xv), rtol=1e-5, atol=1e-5)
