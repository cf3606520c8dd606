"""The blocked convolution's paths of branch cnn-step (lower_cnn_blocked.py, _conv_blocked.j2):
each forward tile lies in one output row and runs only the kernel rows that read inside the image
(taps ordered kernel row first; images side by side where a row's vectors do not fill whole
tiles), the weight gradient limits each tap triple's output rows likewise, and the input gradient
of a strided conv runs phase by phase. Compiled vs the py reference in both dtypes, on sizes that
hit the edges: rows wholly in the padding, a last image group shorter than the others, rows whose
vectors fill tiles alone, phases of unequal sizes; gradients vs finite differences."""
import numpy as np
import pytest

import graphc as G
from graphc.codegen.lower_cnn_blocked import phase_geometry

from test_cnn_kernels_blocked import _conv_kinds, check_blocked_equals_reference, expected_blocked_kernels

# name -> (x shape, w shape, stride, padding)
ROWS = {
    # CIFAR-quick's conv3 in small: 5x5 pad 2 on 8x8, 7 images (groups of 3, 3, 1)
    "5x5_pad2_8x8_groups": ((7, 3, 8, 8), (6, 3, 5, 5), (1, 1), (2, 2)),
    # 24-wide rows (3 float vectors: no grouping) and 12-wide (3 double vectors)
    "rows_fill_tiles": ((2, 2, 6, 24), (5, 2, 3, 3), (1, 1), (1, 1)),
    # padding past the kernel: the first and last output rows read only padding
    "pad_beyond_kernel": ((4, 3, 5, 6), (5, 3, 3, 3), (1, 1), (4, 3)),
    # strided, 5x5 pad 2: rows skipped at both ends, the input gradient by phases
    "5x5_stride2": ((5, 3, 11, 10), (4, 3, 5, 5), (2, 2), (2, 2)),
}

# name -> (x shape, w shape, stride, padding): the input gradient of a strided conv by phases
PHASES = {
    # ResNet-20's 3x3 stride 2 pad 1, odd sizes: phases of 5 and 4 rows, 6 and 5 columns
    "3x3_s2_odd": ((2, 3, 9, 11), (5, 3, 3, 3), (2, 2), (1, 1)),
    # 5x3, pad (2, 1): phases with 3 and 2 kernel rows
    "5x3_s2": ((3, 4, 10, 13), (6, 4, 5, 3), (2, 2), (2, 1)),
    # stride 3 x 2, a filter with 2 taps in a row's phase, 1 in another
    "5x5_s3x2": ((1, 3, 17, 15), (4, 3, 5, 5), (3, 2), (1, 2)),
    # stride in rows only
    "stride_2_1": ((2, 2, 8, 9), (3, 2, 3, 2), (2, 1), (1, 0)),
}


@pytest.mark.parametrize("name", sorted(ROWS) + sorted(PHASES))
def test_blocked_paths_equal_reference(name, dtype, monkeypatch):
    case = ROWS.get(name) or PHASES[name]
    kinds = check_blocked_equals_reference(case, dtype, monkeypatch)
    assert kinds.count("conv_blocked") == expected_blocked_kernels(case)
    assert kinds.count("conv_blocked_grad_weights") == 1


def test_phase_geometry():
    # 3x3 stride 2 pad 1: even rows take the middle tap, odd rows the outer two (turned)
    assert phase_geometry(3, 2, 1) == [(1, 1, 0), (0, 2, 0)]
    assert phase_geometry(1, 1, 0) == [(0, 1, 0)]
    assert phase_geometry(5, 2, 2) == [(0, 3, 1), (1, 2, 0)]
    assert phase_geometry(1, 2, 0) is None  # a phase no tap reaches: gx's odd rows are zero
    assert phase_geometry(3, 2, 2) is None  # a phase that would need gy cropped


def test_strided_input_gradient_by_phases_with_symbolic_sizes(monkeypatch):
    """One compiled function over several batches and image sizes (phase sizes and slots are
    expressions of them)."""
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "blocked")
    x, w = G.tensor4("x", dtype="float64"), G.tensor("w", (5, 3, 3, 3), "float64")
    y = G.conv2d(x, w, stride=(2, 2), padding=(1, 1))
    outs = [y] + G.grad((y * y).sum(), [x, w])
    f = G.function([x, w], outs)
    assert _conv_kinds(f).count("conv_blocked") == 5
    ref = G.function([x, w], outs, backend="py", opt_level="O0")
    rng = np.random.RandomState(4)
    wv = rng.standard_normal((5, 3, 3, 3))
    for shape in ((1, 3, 4, 4), (4, 3, 9, 16), (2, 3, 3, 7)):
        xv = rng.standard_normal(shape)
        for got, want in zip(f(xv, wv), ref(xv, wv)):
            np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11)


def test_row_skips_and_phases_match_finite_differences(monkeypatch):
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "blocked")
    rng = np.random.RandomState(5)
    xv, wv = rng.standard_normal((4, 2, 7, 6)), rng.standard_normal((3, 2, 5, 5))
    G.testing.verify_grad(lambda x, w: G.conv2d(x, w, padding=(2, 2)), [xv, wv], backend="c")
    G.testing.verify_grad(lambda x, w: G.conv2d(x, w, stride=(2, 2), padding=(2, 2)), [xv, wv],
                          backend="c")
