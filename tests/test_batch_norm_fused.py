"""Batch norm with the ReLU and the residual add folded in (graphc/passes/fuse_batch_norm.py;
ops BatchNormTrainRelu / BatchNormTrainReluGrad; C: templates/c/_batch_norm.j2, CUDA:
templates/cuda/batch_norm*.cu.j2): which graphs fold and which keep the unfused kernels; the
folded graph computes exactly what the unfused one does (the pass turned off), at inf and NaN too;
numeric gradients; the fused ops' own gradient rules; emulated CUDA."""
import shutil

import numpy as np
import pytest

import graphc as G
from graphc.config import config
from graphc.ir.ops.batch_norm_ops import (BatchNormTrain, BatchNormTrainGrad, BatchNormTrainRelu,
                                          BatchNormTrainReluGrad)
from graphc.testing import verify_grad

# odd spatial sizes; (N, C) with more channels than a block of the rows path (GC_BN_CB = 64)
SHAPES = [(3, 5, 4, 3), (5, 70), (2, 3, 1, 7)]


def _block(shape, dtype, residual, share_pre=False):
    """A ResNet-like piece: z = relu(bn(x) [+ r]), a cost that reads z nonlinearly, and the
    gradients to x, gamma, beta (and r). share_pre: bn(x) is read by the cost too."""
    x, r, w = (G.tensor(n, shape, dtype) for n in ("x", "r", "w"))
    g, b = G.tensor("gamma", (shape[1],), dtype), G.tensor("beta", (shape[1],), dtype)
    y, mean, var = G.batch_norm_train(x, g, b, 1e-3)
    z = G.relu(y + r) if residual else G.relu(y)
    cost = (z * w).sum() + (z * z * 0.25).sum() + (mean * var).sum()
    if share_pre:
        cost = cost + (y * w).sum()
    wrt = [x, g, b] + ([r] if residual else [])
    return [x, r, w, g, b], [z] + G.grad(cost, wrt)


def _values(shape, dtype, seed=0):
    rng = np.random.RandomState(seed)
    c = shape[1]
    return [(rng.standard_normal(shape) * 2 + 1).astype(dtype), rng.standard_normal(shape).astype(dtype),
            rng.standard_normal(shape).astype(dtype), rng.uniform(0.5, 1.5, c).astype(dtype),
            rng.standard_normal(c).astype(dtype)]


def _ops(fn):
    return [type(n.op) for n in fn.fgraph.nodes]


def _unfused(ins, outs, monkeypatch, **kw):
    monkeypatch.setattr(config, "disabled_passes", ["fuse_batch_norm"])
    f = G.function(ins, outs, **kw)
    monkeypatch.setattr(config, "disabled_passes", [])
    return f


def test_relu_and_its_gradient_fold_into_batch_norm(monkeypatch):
    ins, outs = _block((2, 3, 2, 2), "float32", residual=False)
    ops = _ops(G.function(ins, outs, backend="py"))
    assert BatchNormTrainRelu in ops and BatchNormTrainReluGrad in ops, ops
    assert BatchNormTrain not in ops and BatchNormTrainGrad not in ops, ops
    off = _ops(_unfused(ins, outs, monkeypatch, backend="py"))
    assert BatchNormTrainRelu not in off and BatchNormTrainReluGrad not in off, off


def test_residual_folds_forward_and_its_shared_gradient_stays_unfused():
    """relu(bn(x) + r): the forward folds; the ReLU's gradient also flows to r (read twice), so
    it stays one elementwise kernel with what makes g, and the gradient kernel is the plain one."""
    ins, outs = _block((2, 3, 2, 2), "float32", residual=True)
    fn = G.function(ins, outs, backend="py")
    node = next(n for n in fn.fgraph.nodes if isinstance(n.op, BatchNormTrainRelu))
    assert node.op.residual and len(node.inputs) == 4
    assert BatchNormTrainGrad in _ops(fn) and BatchNormTrainReluGrad not in _ops(fn)


def test_a_pre_activation_read_elsewhere_keeps_the_unfused_kernels():
    ins, outs = _block((2, 3, 2, 2), "float32", residual=False, share_pre=True)
    ops = _ops(G.function(ins, outs, backend="py"))
    assert BatchNormTrain in ops and BatchNormTrainRelu not in ops, ops


@pytest.mark.parametrize("residual", [False, True])
def test_folded_equals_unfused_exactly(residual, dtype, monkeypatch):
    """Every shape side by side in one function per form (one build each): bit-equal outputs."""
    ins, outs, values = [], [], []
    for k, shape in enumerate(SHAPES):
        i, o = _block(shape, dtype, residual)
        ins, outs, values = ins + i, outs + o, values + _values(shape, dtype, seed=k)
    got = G.function(ins, outs)(*values)
    want = _unfused(ins, outs, monkeypatch)(*values)
    ref = G.function(ins, outs, backend="py")(*values)
    tol = 5e-5 if dtype == "float32" else 1e-11
    for j, (g, w, r) in enumerate(zip(got, want, ref)):
        np.testing.assert_array_equal(g, w, err_msg=f"output {j}")
        np.testing.assert_allclose(g, r, rtol=tol, atol=tol * (1 + np.abs(r).max()), err_msg=f"py {j}")


def _singular_values(shape, dtype):
    x, r, w, g, b = _values(shape, dtype, seed=3)
    x[1, 0, 1, 2] = np.nan
    x[0, 1, 0, 0] = np.inf
    r[0, 2, 1, 1] = -np.inf
    w[:, 3] = np.inf  # the cost's gradient: inf where the ReLU is off gives NaN (inf * 0)
    w[0, 4, 0, 0] = np.nan
    return [x, r, w, g, b]


@pytest.mark.parametrize("target_name", ["c", "cuda"])
def test_singular_points_equal_the_unfused_graph(target_name, dtype, monkeypatch):
    if target_name == "cuda":
        if shutil.which("g++") is None:
            pytest.skip("g++ is not installed (the CUDA emulator)")
        monkeypatch.setenv("GRAPHC_CUDA_EMULATE", "1")
    shape = (3, 5, 2, 3)
    ins, outs = [], []
    for residual in (False, True):
        i, o = _block(shape, dtype, residual)
        ins, outs = ins + i, outs + o
    values = _singular_values(shape, dtype) * 2
    fused = G.function(ins, outs, target=target_name)
    unfused = _unfused(ins, outs, monkeypatch, target=target_name)
    with np.errstate(all="ignore"):
        got, want = fused(*values), unfused(*values)
    for j, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_array_equal(g, w, err_msg=f"{target_name} output {j}")
    assert any(np.isnan(g).any() for g in got) and any(np.isinf(g).any() for g in got)


def test_emulated_cuda_equals_c(dtype):
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed (the CUDA emulator)")
    ins, outs, values = [], [], []
    for k, shape in enumerate(SHAPES):
        for residual in (False, True):
            i, o = _block(shape, dtype, residual)
            ins, outs, values = ins + i, outs + o, values + _values(shape, dtype, seed=k)
    want = G.function(ins, outs)(*values)
    import os
    os.environ["GRAPHC_CUDA_EMULATE"] = "1"
    try:
        got = G.function(ins, outs, target="cuda")(*values)
    finally:
        del os.environ["GRAPHC_CUDA_EMULATE"]
    tol = 5e-5 if dtype == "float32" else 1e-11
    for j, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol * (1 + np.abs(w).max()), err_msg=f"{j}")


@pytest.mark.parametrize("residual", [False, True])
def test_gradient_matches_finite_differences(residual):
    def build(x, g, b, r):
        y = G.batch_norm_train(x, g, b, eps=1e-3)[0]
        return G.relu(y + r) if residual else G.relu(y + 0 * r)
    vals = _values((3, 2, 3, 2), "float64", seed=5)
    verify_grad(build, [vals[0], vals[3], vals[4], vals[1]], backend="c")


def test_the_fused_ops_own_gradients_equal_the_unfused():
    """BatchNormTrainRelu.grad and BatchNormTrainReluGrad.grad (a graph differentiated after
    the pass: first and second derivatives) equal those of the unfused ops."""
    shape, dt = (3, 2, 2, 3), "float64"
    x, r, w, g, b = _values(shape, dt, seed=7)
    outs = []
    for fused in (True, False):
        xs, rs, ws = (G.tensor(n, shape, dt) for n in ("x", "r", "w"))
        gs, bs = G.tensor("g", (2,), dt), G.tensor("b", (2,), dt)
        if fused:
            z, mean, var = BatchNormTrainRelu(1e-3, residual=True)(xs, gs, bs, rs)
        else:
            y, mean, var = BatchNormTrain(1e-3)(xs, gs, bs)
            z = G.relu(y + rs)
        cost = (z * ws).sum() + (z * z).sum() + (mean * var).sum()
        gx, gg, gr = G.grad(cost, [xs, gs, rs])
        bn = BatchNormTrain(1e-3)(xs, gs, bs)
        zs = G.relu(bn[0])
        if fused:  # the masked gradient op, built directly
            gx = BatchNormTrainReluGrad(1e-3)(xs, gs, bn[1], bn[2], ws, zs)[0]
        else:  # the ReLU's gradient composed (drelu has no derivative of its own) into the plain op
            gz = ws * G.cast(zs > 0, dt)
            gx = BatchNormTrainGrad(1e-3)(xs, gs, bn[1], bn[2], gz)[0]
        second = G.grad((gx * gx).sum(), [xs, gs, ws])
        fn = G.function([xs, rs, ws, gs, bs], [gg, gr] + second, backend="py", opt_level="O0")
        outs.append(fn(x, r, w, g, b))
    for j, (a, c) in enumerate(zip(*outs)):
        np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-10, err_msg=f"output {j}")


def test_the_pass_says_why_it_declined():
    from graphc.passes.fuse_batch_norm import fuse_batch_norm
    ins, outs = _block((2, 3, 2, 2), "float32", residual=True, share_pre=True)
    fg = G.function(ins, outs, backend="py", opt_level=["canonicalize"]).fgraph
    changed, notes = fuse_batch_norm(fg)
    assert not changed
    assert any("relu" in n and "other readers" in n for n in notes), notes
