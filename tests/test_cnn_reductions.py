"""Reductions over axes that are not one block ((0, 2, 3) of NCHW: a conv bias's gradient, batch
norm's statistics and gradients) run block by block, each pass reading its input in order: no
transposed copy of the activations (lower.py, _reduce_leading_blocks)."""
import numpy as np
import pytest

import graphc as G

from program_cases import program_of


def _bn_step():
    x = G.tensor("x", (4, 3, 5, 6))
    w = G.shared(np.ones((3, 3, 3, 3), np.float32), name="w")
    b = G.shared(np.zeros(3, np.float32), name="b")
    gamma = G.shared(np.ones(3, np.float32), name="gamma")
    beta = G.shared(np.zeros(3, np.float32), name="beta")
    h = G.conv2d(x, w, padding=1) + b.dimshuffle("x", 0, "x", "x")
    y = G.batch_norm_train(h, gamma, beta)[0]
    cost = (G.relu(y) ** 2).mean()
    params = [w, b, gamma, beta]
    grads = G.grad(cost, params)
    return [x], cost, {p: p - 0.1 * g for p, g in zip(params, grads)}


def test_conv_bias_and_batch_norm_step_transposes_nothing():
    inputs, cost, updates = _bn_step()
    program = program_of(inputs, [cost], updates)
    copies = [k.label for k in program.kernels if k.kind == "strided_copy"]
    assert copies == [], copies
    assert any("first)" in k.label for k in program.kernels if k.kind == "reduce")


@pytest.mark.parametrize("axes", [(0, 2, 3), (0, 3), (1, 3), (0, 1, 3)])
def test_reductions_over_split_axes_match_numpy(axes, dtype):
    rng = np.random.RandomState(0)
    v = rng.standard_normal((3, 4, 5, 6)).astype(dtype)
    v[1, 2, 3, 4] = np.nan
    x = G.tensor("x", v.shape, dtype)
    outs = [G.sum(x, axis=axes), G.max(x, axis=axes, keepdims=True), G.min(x, axis=axes),
            G.sum(x > 0, axis=axes)]
    got = G.function([x], outs)(v)
    want = [v.sum(axis=axes), v.max(axis=axes, keepdims=True), v.min(axis=axes),
            (v > 0).sum(axis=axes)]
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-6 if dtype == "float32" else 1e-13)


def test_batch_norm_step_matches_reference():
    inputs, cost, updates = _bn_step()
    xv = np.random.RandomState(1).standard_normal((4, 3, 5, 6)).astype(np.float32)
    f = G.function(inputs, cost)  # (updates would move the shared values between the two)
    ref = G.function(inputs, cost, backend="py", opt_level="O0")
    grads = G.grad(cost, list(updates)[:4])
    fg, rg = G.function(inputs, grads), G.function(inputs, grads, backend="py", opt_level="O0")
    np.testing.assert_allclose(f(xv), ref(xv), rtol=1e-5)
    for g, r in zip(fg(xv), rg(xv)):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-6)
