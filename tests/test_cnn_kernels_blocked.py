"""The blocked direct convolution (lower_cnn_blocked.py, templates/c/_conv_blocked.j2) and the
branch-free pooling loops (templates/c/pool_max.j2, pool_avg.j2): compiled results equal the py
reference up to float rounding, in both dtypes, on sizes that end mid-vector and mid-tile (output
widths not a multiple of 8 or 4, channel counts not a multiple of the 4-channel tile, fewer
pixel vectors than the 3-vector tile), with every padding and stride combination the kernels
take; gradients match finite differences."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import graphc as G
from graphc.codegen.lower_cnn_blocked import phase_geometry

from program_cases import program_of

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> (x shape, w shape, stride, padding)
BLOCKED = {
    "3x3_pad1_odd": ((2, 3, 9, 11), (5, 3, 3, 3), (1, 1), (1, 1)),
    "5x3_stride2_mixed_pad": ((3, 4, 10, 13), (6, 4, 5, 3), (2, 2), (2, 1)),
    "1x1_stride2": ((1, 2, 7, 7), (3, 2, 1, 1), (2, 2), (0, 0)),
    "wide_row_pad_0_2": ((2, 5, 17, 19), (9, 5, 3, 3), (1, 1), (0, 2)),
    "one_pixel_out": ((2, 3, 3, 3), (4, 3, 3, 3), (1, 1), (0, 0)),
    "stride_2_1": ((2, 2, 8, 9), (1, 2, 3, 2), (2, 1), (1, 0)),
    # the padded copy (gc_cv_pad_image): stride-2 rows split by vectors and their tails, rows and
    # column phases no tap reads left out, rows shorter than a vector
    "1x1_stride2_wide_rows": ((2, 3, 34, 37), (4, 3, 1, 1), (2, 2), (0, 0)),
    "1x1_stride2_pad1_odd_phase_only": ((2, 3, 20, 21), (4, 3, 1, 1), (2, 2), (1, 1)),
    "3x3_stride2_pad1_wide_rows": ((2, 3, 33, 40), (5, 3, 3, 3), (2, 2), (1, 1)),
    "1x1_stride3": ((2, 2, 13, 14), (3, 2, 1, 1), (3, 3), (0, 0)),
    "2x2_stride3_pad1": ((1, 2, 11, 16), (3, 2, 2, 2), (3, 3), (1, 1)),
    "3x3_pad1_rows_under_a_vector": ((2, 2, 6, 5), (3, 2, 3, 3), (1, 1), (1, 1)),
}


def _conv_and_grads(x, w, stride, padding):
    y = G.conv2d(x, w, stride=stride, padding=padding)
    r = np.random.RandomState(3).uniform(0.5, 1.5, [int(d) for d in y.type.shape]).astype(y.dtype)
    return [y] + G.grad((y * r).sum(), [x, w])


def _conv_kinds(f):
    return [k.kind for k in f.program.program.kernels if k.kind.startswith("conv")]


def check_blocked_equals_reference(case, dtype, monkeypatch):
    """Compile the conv and its gradients with the blocked kernels forced, compare them with the
    py reference; returns the conv kernel kinds chosen (test_cnn_kernels_resnet.py uses it too)."""
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "blocked")
    xs, ws, stride, padding = case
    rng = np.random.RandomState(0)
    xv, wv = rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)
    x, w = G.tensor("x", xs, dtype), G.tensor("w", ws, dtype)
    outs = _conv_and_grads(x, w, stride, padding)
    f = G.function([x, w], outs)
    ref = G.function([x, w], outs, backend="py", opt_level="O0")(xv, wv)
    tol = 2e-5 if dtype == "float32" else 1e-12
    for got, want in zip(f(xv, wv), ref):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
    return _conv_kinds(f)


def expected_blocked_kernels(case):
    """conv_blocked kernels of a conv and its input gradient with the blocked kernels forced: the
    forward, and the input gradient's one (stride 1, padding below the kernel) or one per phase
    (a strided conv whose phases all have taps and need no cropping: phase_geometry)."""
    _, ws, stride, padding = case
    if padding[0] > ws[2] - 1 or padding[1] > ws[3] - 1:
        return 1
    phases = [phase_geometry(k, s, p) for k, s, p in zip(ws[2:], stride, padding)]
    return 1 + (len(phases[0]) * len(phases[1]) if all(phases) else 0)


@pytest.mark.parametrize("name", sorted(BLOCKED))
def test_blocked_conv_equals_reference(name, dtype, monkeypatch):
    kinds = check_blocked_equals_reference(BLOCKED[name], dtype, monkeypatch)
    assert kinds.count("conv_blocked") == expected_blocked_kernels(BLOCKED[name])
    assert kinds.count("conv_blocked_grad_weights") == 1


def test_blocked_conv_with_symbolic_image_sizes(monkeypatch):
    """One compiled function, several batches and image sizes (the slot sizes are expressions)."""
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "blocked")
    x = G.tensor4("x", dtype="float64")
    w = G.tensor("w", (6, 3, 3, 3), "float64")
    outs = _conv_and_grads_symbolic(x, w)
    f = G.function([x, w], outs)
    assert _conv_kinds(f) == ["conv_blocked", "conv_blocked", "conv_blocked_grad_weights"]
    ref = G.function([x, w], outs, backend="py", opt_level="O0")
    rng = np.random.RandomState(1)
    wv = rng.standard_normal((6, 3, 3, 3))
    for shape in ((1, 3, 5, 4), (3, 3, 12, 17), (2, 3, 3, 9)):
        xv = rng.standard_normal(shape)
        for got, want in zip(f(xv, wv), ref(xv, wv)):
            np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11)


def _conv_and_grads_symbolic(x, w):
    y = G.conv2d(x, w, padding=(1, 1))
    return [y] + G.grad((y * y).sum(), [x, w])


def test_blocked_weight_gradient_ignores_what_no_output_reads(monkeypatch):
    """An inf in a column no output reads (stride 2 leaves the last column out) must not reach
    the weight gradient as NaN through the lanes past the row's end (inf * 0)."""
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "blocked")
    x, w = G.tensor("x", (1, 1, 4, 6)), G.tensor("w", (2, 1, 3, 3))
    y = G.conv2d(x, w, stride=(2, 2))
    gw = G.grad(y.sum(), w)
    f = G.function([x, w], gw)
    assert "conv_blocked_grad_weights" in _conv_kinds(f)
    xv = np.ones((1, 1, 4, 6), np.float32)
    xv[0, 0, :, 5] = np.inf
    got = f(xv, np.ones((2, 1, 3, 3), np.float32))
    np.testing.assert_array_equal(got, np.full((2, 1, 3, 3), 2, np.float32))  # two outputs


def test_blocked_gradients_match_finite_differences(monkeypatch):
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "blocked")
    rng = np.random.RandomState(2)
    xv, wv = rng.standard_normal((2, 3, 5, 6)), rng.standard_normal((5, 3, 3, 2))
    G.testing.verify_grad(lambda x, w: G.conv2d(x, w, padding=(1, 1)), [xv, wv], backend="c")
    G.testing.verify_grad(lambda x, w: G.conv2d(x, w, stride=(2, 2), padding=(1, 0)), [xv, wv],
                          backend="c")


def _lowered_kinds(xs, ws, dtype="float32", **kw):
    x, w = G.tensor("x", xs, dtype), G.tensor("w", ws, dtype)
    y = G.conv2d(x, w, **kw)
    program = program_of([x, w], [y] + G.grad(y.sum(), [x, w]))
    return [k.kind for k in program.kernels if k.kind.startswith("conv")]


@pytest.mark.parametrize("kw, ws", [({"dilation": 2}, (8, 4, 3, 3)), ({"groups": 2}, (8, 2, 3, 3))])
def test_blocked_only_where_its_shape_allows(kw, ws, monkeypatch):
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "blocked")
    kinds = _lowered_kinds((2, 4, 9, 9), ws, **kw)
    assert not any(k.startswith("conv_blocked") for k in kinds)


def test_blocked_input_gradient_needs_padding_below_the_kernel_and_phases_with_taps(monkeypatch):
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "blocked")
    assert _lowered_kinds((2, 4, 9, 9), (8, 4, 3, 3), stride=2, padding=1).count("conv_blocked") == 5
    assert _lowered_kinds((2, 4, 4, 4), (8, 4, 3, 3), padding=3).count("conv_blocked") == 1
    # stride 3 > a 2-tap kernel: gx's rows 3a + 2 take no tap, stays im2col + gemm
    assert _lowered_kinds((2, 4, 9, 9), (8, 4, 2, 2), stride=3).count("conv_blocked") == 1


def test_blocked_conv_on_two_threads_and_a_batch_smaller_than_the_threads(tmp_path):
    """Two OpenMP threads: images split over the slots, and one image split by output-channel
    blocks; the weight gradient adds the threads' partial sums. (A fresh process: the thread
    count is fixed at its start.)"""
    script = textwrap.dedent("""
        import numpy as np, graphc as G
        for n in (1, 5):
            x = G.tensor("x", (n, 4, 20, 21), "float64"); w = G.tensor("w", (9, 4, 3, 3), "float64")
            y = G.conv2d(x, w, padding=(1, 1))
            outs = [y] + G.grad((y * y).sum(), [x, w])
            f = G.function([x, w], outs)
            assert "conv_blocked_grad_weights" in [k.kind for k in f.program.program.kernels]
            ref = G.function([x, w], outs, backend="py", opt_level="O0")
            rng = np.random.RandomState(n)
            xv, wv = rng.standard_normal((n, 4, 20, 21)), rng.standard_normal((9, 4, 3, 3))
            for got, want in zip(f(xv, wv), ref(xv, wv)):
                np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-10)
        print("ok")
    """)
    env = dict(os.environ, OMP_NUM_THREADS="2", GRAPHC_CONV_ALGO="blocked",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ok" in proc.stdout


# --- pooling: the branch-free interior columns and the clipped border --------------------------

# (x shape, kernel, stride, padding): interior and border columns, ceil-mode windows past the
# image, a window as wide as the image, stride 1 and 2, ties and a NaN
POOLS = [((2, 3, 9, 11), (3, 3), (2, 2), (0, 0)), ((2, 3, 9, 11), (3, 3), (2, 2), (1, 1)),
         ((1, 2, 7, 13), (2, 3), (1, 2), (1, 0)), ((1, 2, 5, 5), (5, 5), (1, 1), (2, 2)),
         ((1, 1, 4, 20), (2, 2), (2, 2), (0, 0))]


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("case", range(len(POOLS)))
def test_pooling_equals_reference(case, mode, dtype):
    xs, kernel, stride, padding = POOLS[case]
    rng = np.random.RandomState(case)
    xv = rng.standard_normal(xs).astype(dtype)
    xv[0, 0, 1, 1] = np.nan
    xv.flat[7] = xv.flat[8]  # a tie: the first wins (its gradient lands there)
    xv[-1, -1, 2, 3:6] = 4.0
    x = G.tensor("x", xs, dtype)
    pool = G.max_pool2d if mode == "max" else G.avg_pool2d
    y = pool(x, kernel, stride=stride, padding=padding)
    r = rng.uniform(0.5, 1.5, [int(d) for d in y.type.shape]).astype(dtype)
    outs = [y, G.grad((y * r).sum(), x)]
    got = G.function([x], outs)(xv)
    want = G.function([x], outs, backend="py", opt_level="O0")(xv)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-6 if dtype == "float32" else 1e-13, atol=1e-6)


# --- the measured rule (CCapabilities.blocked_conv_pays) ----------------------------------------

# (x shape, w shape, conv kwargs) -> the conv kernels lowering picks with no GRAPHC_CONV_ALGO
RULE = [
    # CIFAR-10 quick's conv2: all three blocked
    (((2, 32, 16, 16), (32, 32, 5, 5), {"padding": 2}),
     ["conv_blocked", "conv_blocked", "conv_blocked_grad_weights"]),
    # ResNet-20's strided 16 -> 32: the input gradient of a strided conv stays im2col + gemm
    (((2, 16, 16, 16), (32, 16, 3, 3), {"padding": 1, "stride": 2}),
     ["conv_blocked", "conv_chunked_grad_input", "conv_blocked_grad_weights"]),
    # a strided 1x1 shortcut's forward is blocked (its padded copy reads one row and one column
    # phase in two); its gradients stay gemms
    (((2, 16, 16, 16), (32, 16, 1, 1), {"stride": 2}),
     ["conv_blocked", "conv_chunked_grad_input", "conv_chunked_grad_weights"]),
    # past 64 channels on both sides, a gemm
    (((2, 96, 8, 8), (128, 96, 1, 1), {"stride": 2}),
     ["conv_chunked", "conv_chunked_grad_input", "conv_chunked_grad_weights"]),
    # a 1x1 conv with stride 1 is a plain gemm
    (((2, 16, 16, 16), (32, 16, 1, 1), {}),
     ["conv_chunked", "conv_chunked_grad_input", "conv_chunked_grad_weights"]),
    # LeNet's "valid" conv2: its input gradient would mostly read padding
    (((2, 20, 12, 12), (50, 20, 5, 5), {}),
     ["conv_blocked", "conv_chunked_grad_input", "conv_blocked_grad_weights"]),
    # ResNet-20's third stage (64 channels, 8x8): all three blocked (Winograd before the forward's
    # image groups)
    (((2, 64, 8, 8), (64, 64, 3, 3), {"padding": 1}),
     ["conv_blocked", "conv_blocked", "conv_blocked_grad_weights"]),
    # 64 -> 128 (VGG's third conv): Winograd forward, input gradient and weight gradient
    (((2, 64, 8, 8), (128, 64, 3, 3), {"padding": 1}),
     ["conv_winograd", "conv_winograd", "conv_winograd_grad_weights"]),
    # 128 channels: none
    (((2, 128, 4, 4), (128, 128, 3, 3), {"padding": 1}),
     ["conv_winograd", "conv_winograd", "conv_winograd_grad_weights"]),
    # AlexNet's conv1 (stride 4): blocked forward, not its weight gradient
    (((1, 3, 35, 35), (96, 3, 11, 11), {"stride": 4}),
     ["conv_blocked", "conv_chunked_grad_input", "conv_chunked_grad_weights"]),
]


@pytest.mark.parametrize("case", range(len(RULE)))
def test_blocked_is_chosen_by_the_measured_rule(case, monkeypatch):
    monkeypatch.delenv("GRAPHC_CONV_ALGO", raising=False)
    (xs, ws, kw), want = RULE[case]
    assert sorted(_lowered_kinds(xs, ws, **kw)) == sorted(want)


def test_other_forced_algorithms_never_choose_blocked(monkeypatch):
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "gemm")
    assert not any(k.startswith("conv_blocked") for k in _lowered_kinds((2, 16, 8, 8), (16, 16, 3, 3), padding=1))


@pytest.mark.parametrize("vector_bytes", [16, 64])
def test_blocked_conv_with_other_vector_widths(vector_bytes, tmp_path):
    """The portable width (16 bytes: SSE, NEON) and the widest the scratch is sized for (64: the
    AVX-512 hook; gcc lowers it to two AVX2 registers here), via GRAPHC_CFLAGS in a fresh process
    (its own runtime library build)."""
    script = textwrap.dedent("""
        import numpy as np, graphc as G
        for dtype in ("float32", "float64"):
            for xs, ws, stride, pad in (((2, 3, 9, 21), (5, 3, 3, 3), (1, 1), (1, 1)),
                                        ((1, 4, 11, 37), (6, 4, 5, 3), (2, 2), (2, 1)),
                                        ((1, 3, 20, 37), (4, 3, 1, 1), (2, 2), (1, 1)),
                                        ((1, 2, 12, 40), (3, 2, 3, 3), (2, 2), (1, 1))):
                x, w = G.tensor("x", xs, dtype), G.tensor("w", ws, dtype)
                y = G.conv2d(x, w, stride=stride, padding=pad)
                outs = [y] + G.grad((y * y).sum(), [x, w])
                f = G.function([x, w], outs)
                assert "conv_blocked_grad_weights" in [k.kind for k in f.program.program.kernels]
                rng = np.random.RandomState(0)
                xv, wv = rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)
                ref = G.function([x, w], outs, backend="py", opt_level="O0")(xv, wv)
                tol = 2e-5 if dtype == "float32" else 1e-11
                for got, want in zip(f(xv, wv), ref):
                    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
        print("ok")
    """)
    env = dict(os.environ, GRAPHC_CONV_ALGO="blocked", GRAPHC_CFLAGS=f"-DGC_CONV_VBYTES={vector_bytes}",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=600, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ok" in proc.stdout


@pytest.mark.parametrize("channels", [16, 32])
def test_cuda_target_keeps_the_chunked_convs(channels):
    """The CUDA target has no conv_blocked (nor conv_winograd) template: its lowering must not
    pick them (a 3x3 conv of 32 channels failed to compile for CUDA since Winograd came in)."""
    from graphc.targets.cuda.target import CUDA_CAPABILITIES
    x, w = G.tensor("x", (2, channels, 8, 8)), G.tensor("w", (channels, channels, 3, 3))
    y = G.conv2d(x, w, padding=1)
    program = program_of([x, w], [y] + G.grad(y.sum(), [x, w]), capabilities=CUDA_CAPABILITIES)
    kinds = sorted(k.kind for k in program.kernels if k.kind.startswith("conv"))
    assert kinds == ["conv_chunked", "conv_chunked_grad_input", "conv_chunked_grad_weights"]


def test_profiler_counts_the_blocked_kernels_products(monkeypatch):
    """Forward, input and weight gradient each do N*C*CO*KH*KW*HO*WO multiply-adds."""
    from graphc.profiler.cost import kernel_flops
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "blocked")
    x, w = G.tensor("x", (2, 3, 9, 11)), G.tensor("w", (5, 3, 3, 3))
    y = G.conv2d(x, w, padding=1)
    program = program_of([x, w], [y] + G.grad(y.sum(), [x, w]))
    blocked = [k for k in program.kernels if k.kind.startswith("conv_blocked")]
    assert len(blocked) == 3
    assert [kernel_flops(k, {}) for k in blocked] == [2 * 2 * 3 * 5 * 9 * 9 * 11] * 3
