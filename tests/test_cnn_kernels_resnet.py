"""ResNet-20's conv paths (branch resnet-conv): the blocked forward's image groups (small images
whose pixel vectors do not fill whole 3-vector tiles are padded GC_CONV_Q to a slot, so a tile may
span images), compiled vs the py reference in both dtypes, with a last group shorter than the
others, channel counts off the 4-channel tile, strides, and two threads; gradients vs finite
differences."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import graphc as G
from test_cnn_kernels_blocked import check_blocked_equals_reference, expected_blocked_kernels

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> (x shape, w shape, stride, padding); the forward's vectors per image (HO * vectors per
# row) are not a multiple of 3 at 8 floats / 4 doubles per vector, so images are grouped by 3
GROUPED = {
    # ResNet's third stage in small: 8x8, 5 images (groups of 3 and 2), 7 output channels
    "8x8_last_group_short": ((5, 6, 8, 8), (7, 6, 3, 3), (1, 1), (1, 1)),
    # 5x3 outputs: one vector per row, 4 images (groups of 3 and 1)
    "narrow_rows": ((4, 3, 5, 3), (5, 3, 3, 3), (1, 1), (1, 1)),
    # a strided conv to 8x8 (its input gradient by phases), 9 output channels
    "stride_2_to_8x8": ((4, 5, 15, 15), (9, 5, 3, 3), (2, 2), (1, 1)),
    # fewer images than a group
    "two_images": ((2, 4, 7, 7), (4, 4, 3, 3), (1, 1), (1, 1)),
}


@pytest.mark.parametrize("name", sorted(GROUPED))
def test_grouped_blocked_conv_equals_reference(name, dtype, monkeypatch):
    kinds = check_blocked_equals_reference(GROUPED[name], dtype, monkeypatch)
    assert kinds.count("conv_blocked") == expected_blocked_kernels(GROUPED[name])


def test_grouped_blocked_conv_with_symbolic_sizes():
    """One function for several batches and image sizes: grouped (8x8, 5x5) and not (12x12:
    12 vectors per image) from the same compiled kernel, which 64 channels now choose."""
    x = G.tensor4("x", dtype="float64")
    w = G.tensor("w", (64, 64, 3, 3), "float64")
    y = G.conv2d(x, w, padding=(1, 1))
    outs = [y] + G.grad((y * y).sum(), [x, w])
    f = G.function([x, w], outs)
    kinds = [k.kind for k in f.program.program.kernels if k.kind.startswith("conv")]
    assert kinds == ["conv_blocked", "conv_blocked", "conv_blocked_grad_weights"]
    ref = G.function([x, w], outs, backend="py", opt_level="O0")
    rng = np.random.RandomState(1)
    wv = rng.standard_normal((64, 64, 3, 3)) * 0.1
    for shape in ((4, 64, 8, 8), (1, 64, 5, 5), (2, 64, 12, 12)):
        xv = rng.standard_normal(shape)
        for got, want in zip(f(xv, wv), ref(xv, wv)):
            np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-10 * np.abs(want).max())


def test_grouped_blocked_gradients_match_finite_differences(monkeypatch):
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "blocked")
    rng = np.random.RandomState(2)
    xv, wv = rng.standard_normal((4, 2, 5, 3)), rng.standard_normal((3, 2, 3, 3))
    G.testing.verify_grad(lambda x, w: G.conv2d(x, w, padding=(1, 1)), [xv, wv], backend="c")


def test_grouped_blocked_conv_on_two_threads(tmp_path):
    """Two threads: 7 images in groups of 3, 3, 1 over two slots; 2 images (one group, fewer
    groups than threads: split by output-channel blocks). A fresh process (the thread count is
    fixed at its start)."""
    script = textwrap.dedent("""
        import numpy as np, graphc as G
        for dtype, tol in (("float32", 2e-5), ("float64", 1e-11)):
            for n in (2, 7):
                x = G.tensor("x", (n, 5, 8, 8), dtype); w = G.tensor("w", (10, 5, 3, 3), dtype)
                y = G.conv2d(x, w, padding=(1, 1))
                outs = [y] + G.grad((y * y).sum(), [x, w])
                f = G.function([x, w], outs)
                assert "conv_blocked" in [k.kind for k in f.program.program.kernels]
                ref = G.function([x, w], outs, backend="py", opt_level="O0")
                rng = np.random.RandomState(n)
                xv = rng.standard_normal((n, 5, 8, 8)).astype(dtype)
                wv = rng.standard_normal((10, 5, 3, 3)).astype(dtype)
                for got, want in zip(f(xv, wv), ref(xv, wv)):
                    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
        print("ok")
    """)
    env = dict(os.environ, OMP_NUM_THREADS="2", GRAPHC_CONV_ALGO="blocked",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ok" in proc.stdout
