"""Convolutions compiled once into the runtime library (graphc/targets/c/conv_library.py): the
Winograd F(2x2, 3x3) forward / input gradient and F(3x3, 2x2) weight gradient take their sizes at
run time (templates/c/_winograd_functions.j2), the chunked im2col + gemm convs their sizes and
stencil (_conv_chunk_functions.j2). An in-process program calls the library's copy and carries
no body of its own; an AOT library defines its own and stands alone; results equal the py
reference in both dtypes, on odd sizes, every padding, ragged chunks of a symbolic batch.""" 
import os
import shutil
import subprocess

import numpy as np
import pytest

import graphc as G
from graphc.targets.c import runtime_lib

CC = os.environ.get("CC", "gcc")
WINOGRAD_ENTRY_POINTS = ("conv_winograd", "conv_winograd_grad_weights")
CHUNKED_ENTRY_POINTS = ("conv_chunked", "conv_chunked_grad_input", "conv_chunked_grad_weights")


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


# stride, padding, dilation, groups, x (C, H, W), C_out, kernel: AlexNet's kinds of stencil (11x11
# stride 4, grouped 5x5, 3x3) on odd sizes, and a dilated one
CHUNKED = {
    "stride4_11x11": ((4, 4), (2, 2), (1, 1), 1, (3, 23, 21), 4, (11, 11)),
    "grouped_5x5": ((1, 1), (2, 2), (1, 1), 2, (4, 7, 6), 6, (5, 5)),
    "stride2_3x3_uneven": ((2, 1), (1, 0), (1, 1), 1, (3, 9, 8), 5, (3, 3)),
    "dilated": ((1, 1), (2, 1), (2, 1), 1, (2, 8, 7), 3, (3, 2)),
}


@pytest.mark.parametrize("name", sorted(CHUNKED))
def test_library_chunked_conv_equals_reference_in_ragged_chunks(name, dtype, monkeypatch):
    """A symbolic batch and a budget of two images' column matrices: chunks of two, batches 1, 3
    and 5 (a ragged last chunk), the stencil and every size arguments of the library's functions."""
    stride, padding, dilation, groups, (c, h, w_), co, (kh, kw) = CHUNKED[name]
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "gemm")
    x = G.tensor("x", (G.dim("batch"), c, h, w_), dtype)
    w = G.tensor("w", (co, c // groups, kh, kw), dtype)
    y = G.conv2d(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    ho, wo = (int(d) for d in y.type.shape[2:])
    monkeypatch.setenv("GRAPHC_CONV_WORKSPACE",
                       str(2 * (c * kh * kw + co) * ho * wo * np.dtype(dtype).itemsize))
    gy = G.tensor("gy", y.type.shape, dtype)
    outs = [y] + G.grad((y * gy).sum(), [x, w])
    f = G.function([x, w, gy], outs)
    assert _kinds(f) == sorted(CHUNKED_ENTRY_POINTS)
    nbs = [k.params["NB"] for k in f.program.program.kernels if k.kind.startswith("conv_chunked")]
    assert all(str(nb) != "1" for nb in nbs), nbs  # (chunks of more than one image)
    ref = G.function([x, w, gy], outs, backend="py", opt_level="O0")
    rng = np.random.RandomState(0)
    wv = rng.standard_normal((co, c // groups, kh, kw)).astype(dtype)
    tol = 5e-5 if dtype == "float32" else 1e-11
    for n in (1, 3, 5):
        xv = rng.standard_normal((n, c, h, w_)).astype(dtype)
        gyv = rng.standard_normal((n, co, ho, wo)).astype(dtype)
        for got, want in zip(f(xv, wv, gyv), ref(xv, wv, gyv)):
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1.0, np.abs(want).max()))


def test_library_chunked_gradients_match_finite_differences(monkeypatch):
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "gemm")
    rng = np.random.RandomState(5)
    xv, wv = rng.standard_normal((3, 4, 7, 6)), rng.standard_normal((4, 2, 3, 2))
    G.testing.verify_grad(lambda x, w: G.conv2d(x, w, stride=(2, 1), padding=(1, 2), groups=2),
                          [xv, wv], backend="c")


def test_in_process_program_carries_no_chunked_conv_body(monkeypatch):
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "gemm")
    x = G.tensor4("x")
    w1, w2 = G.tensor("w1", (6, 3, 5, 5)), G.tensor("w2", (4, 3, 3, 3))
    y = G.conv2d(G.conv2d(x, w1, stride=(2, 2), padding=(2, 2)), w2, padding=(1, 1), groups=2)
    f = G.function([x, w1, w2], G.grad((y * y).sum(), [x, w1, w2]))
    source = f.program.source
    for entry in CHUNKED_ENTRY_POINTS:
        assert f"graphc_rt_s{entry}(gc_ck," in source
        assert f"void graphc_rt_s{entry}(const int64_t *geo," in source  # declared
        assert f"static void graphc_rt_s{entry}(" not in source
    assert "memcpy(" not in source and "+= srow[wo]" not in source  # (their bodies' copies)
    assert "winograd" not in source.lower()
    symbols = subprocess.run(["nm", "-D", "--defined-only", runtime_lib.library_path()],
                             capture_output=True, text=True, check=True).stdout.split()
    assert {f"graphc_rt_{P}{e}" for P in "sd" for e in CHUNKED_ENTRY_POINTS} <= set(symbols)


def test_programs_without_library_convs_neither_declare_nor_define_them(monkeypatch):
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "blocked")
    x, w = G.tensor4("x"), G.tensor("w", (4, 3, 3, 3))
    f = G.function([x, w], G.grad(G.conv2d(x, w, padding=(1, 1)).sum(), [x, w]))
    source = f.program.source.lower()
    assert "conv_blocked" in source
    assert "winograd" not in source and "chunked" not in source and "gc_ck" not in source


@pytest.mark.skipif(shutil.which(CC) is None or shutil.which("nm") is None,
                    reason="needs a C compiler and nm")
def test_aot_library_with_winograd_stands_alone(tmp_path, monkeypatch):
    """An exported library defines its own static Winograd and chunked conv functions: it links
    neither graphc's runtime library nor needs a graphc_rt_ symbol from anywhere, and its C
    example computes the in-process function's result."""
    _winograd(monkeypatch)  # (the 5x5 stride-2 conv, which Winograd cannot take: chunked)
    batch = G.dim("batch")
    rng = np.random.RandomState(4)
    x = G.tensor("x", (batch, 3, 13, 11))
    w0 = G.shared(rng.standard_normal((4, 3, 5, 5)).astype("float32"), name="w0")
    w1 = G.shared(rng.standard_normal((6, 4, 3, 3)).astype("float32"), name="w1")
    w2 = G.shared(rng.standard_normal((4, 6, 3, 3)).astype("float32"), name="w2")
    h = G.conv2d(x, w0, stride=(2, 2), padding=(2, 2))  # (batch, 4, 7, 6)
    y = G.conv2d(G.relu(G.conv2d(h, w1, padding=(1, 1))), w2, padding=(1, 1))
    cost = (y * y).mean()
    params = [w0, w1, w2]
    updates = {p: p - 1e-3 * g for p, g in zip(params, G.grad(cost, params))}
    f_infer = G.function([x], y, name="wg_infer")
    f_train = G.function([x], cost, updates=updates, name="wg_train")
    assert {"conv_winograd_grad_weights", "conv_chunked_grad_weights"} <= set(_kinds(f_train))
    export = G.aot.export({"infer": f_infer, "train": f_train}, str(tmp_path / "wg"), name="wg")
    with open(os.path.join(export.directory, "src", "wg.c")) as fh:
        source = fh.read()
    for entry in WINOGRAD_ENTRY_POINTS + ("conv_chunked", "conv_chunked_grad_weights"):
        assert f"static void graphc_rt_s{entry}(" in source, entry
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
    xv = rng.standard_normal((3, 3, 13, 11)).astype("float32")
    xv.tofile(tmp_path / "x.bin")
    subprocess.run([main, "infer", "3", "x.bin", "y.bin"], cwd=str(tmp_path), check=True,
                   capture_output=True)
    got = np.fromfile(tmp_path / "y.bin", "float32").reshape(3, 4, 7, 6)
    np.testing.assert_allclose(got, f_infer(xv), rtol=1e-5, atol=1e-5)
