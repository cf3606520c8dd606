"""Training batch norm as one op (graphc/ir/ops/batch_norm_ops.py; C: the runtime library's
templates/c/_batch_norm.j2, CUDA: templates/cuda/batch_norm*.cu.j2): outputs and gradients equal
the composed form's (normalization.batch_norm_train_composed: reductions and elementwise ops)
on every target, at singular points too (nan and inf in x, a constant channel, eps 0); numeric
first and second derivatives; one kernel each way; shape errors; an AOT library."""
import ctypes
import os
import shutil

import numpy as np
import pytest

import graphc as G
from graphc.errors import GraphcError, GraphcShapeError, GraphcTypeError
from graphc.ir.ops.batch_norm_ops import BatchNormTrain, BatchNormTrainGrad
from graphc.ir.ops.normalization import batch_norm_train_composed
from graphc.testing import verify_grad

from program_cases import program_of

# (N, C, H, W) odd sizes; (N, C) and (N, C, 1, 1) with more channels than one block of the
# rows path (GC_BN_CB = 64); a 1-pixel-wide image (P = 7 along one row)
SHAPES = [(3, 5, 4, 3), (5, 70), (3, 67, 1, 1), (2, 3, 1, 7)]


def _graph(build, shape, dtype, eps=1e-5):
    """(inputs, outputs): y, mean, var and the gradients of a cost that reads all three, to
    x, gamma, beta."""
    x = G.tensor("x", shape, dtype)
    g, b = G.tensor("gamma", (shape[1],), dtype), G.tensor("beta", (shape[1],), dtype)
    y, mean, var = build(x, g, b, eps)
    cost = (y * y * y).sum() + (mean * mean).sum() + (var * 0.5).sum()
    return [x, g, b], [y, mean, var] + G.grad(cost, [x, g, b])


def _values(shape, dtype, seed=0):
    rng = np.random.RandomState(seed)
    return [(rng.standard_normal(shape) * 2 + 1).astype(dtype),
            rng.uniform(0.5, 1.5, shape[1]).astype(dtype), rng.standard_normal(shape[1]).astype(dtype)]


def _compare(got, want, dtype, what):
    tol = 5e-5 if dtype == "float32" else 1e-11
    for j, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == w.dtype and g.shape == w.shape, (what, j)
        scale = 1.0 + float(np.max(np.abs(w[np.isfinite(w)]), initial=0.0))
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol * scale, err_msg=f"{what}: output {j}")


@pytest.mark.parametrize("shape", SHAPES)
def test_fused_equals_composed_on_every_target(shape, dtype, target):
    values = _values(shape, dtype)
    ins, outs = _graph(G.batch_norm_train, shape, dtype)
    cins, couts = _graph(batch_norm_train_composed, shape, dtype)
    want = G.function(cins, couts, backend="py", opt_level="O0")(*values)
    kw = {"backend": "py"} if target == "py" else {"target": target}
    _compare(G.function(ins, outs, **kw)(*values), want, dtype, f"{target} {shape}")


def test_fused_equals_composed_on_emulated_cuda(dtype, monkeypatch):
    """Every shape side by side in one function (one .cu, one g++ call)."""
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed (the CUDA emulator)")
    monkeypatch.setenv("GRAPHC_CUDA_EMULATE", "1")
    ins, outs, cins, couts, values = [], [], [], [], []
    for shape in SHAPES:
        for build, i, o in ((G.batch_norm_train, ins, outs), (batch_norm_train_composed, cins, couts)):
            a, b = _graph(build, shape, dtype)
            i += a
            o += b
        values += _values(shape, dtype)
    want = G.function(cins, couts, backend="py", opt_level="O0")(*values)
    _compare(G.function(ins, outs, target="cuda")(*values), want, dtype, "cuda")


def test_symbolic_sizes_use_one_compiled_function():
    n, h = G.dim("n"), G.dim("h")
    ins, outs = _graph(G.batch_norm_train, (n, 4, h, 3), "float64")
    f, ref = G.function(ins, outs), G.function(ins, outs, backend="py")
    for shape in [(2, 4, 3, 3), (5, 4, 1, 3), (1, 4, 6, 3)]:
        values = _values(shape, "float64", seed=shape[0])
        _compare(f(*values), ref(*values), "float64", str(shape))


def _singular(kind, dtype):
    x, gamma, beta = _values((3, 4, 2, 3), dtype, seed=5)
    if kind == "nan":
        x[1, 0, 1, 2] = np.nan
    elif kind == "inf":
        x[0, 1, 0, 0] = np.inf  # (the channel's first element: the kernels' shift)
        x[2, 2, 1, 1] = -np.inf
    elif kind == "constant":
        x[:, 1] = 0.75  # zero variance, exactly representable
        x[:, 3] = -2.5
    elif kind == "overflow":
        x[:, 2] *= np.finfo(dtype).max / 8  # (x - mean)^2 overflows in the composed form
    return [x, gamma, beta]


@pytest.mark.parametrize("target_name", ["c", "cuda"])
def test_singular_points_match_the_composed_form(target_name, dtype, monkeypatch):
    if target_name == "cuda":
        if shutil.which("g++") is None:
            pytest.skip("g++ is not installed (the CUDA emulator)")
        monkeypatch.setenv("GRAPHC_CUDA_EMULATE", "1")
    shape = (3, 4, 2, 3)
    for eps in (1e-3, 0.0):
        ins, outs = _graph(G.batch_norm_train, shape, dtype, eps)
        cins, couts = _graph(batch_norm_train_composed, shape, dtype, eps)
        fused, composed = G.function(ins, outs, target=target_name), G.function(cins, couts)
        py = G.function(ins, outs, backend="py")
        for kind in ["nan", "inf", "constant", "overflow"]:
            values = _singular(kind, dtype)
            with np.errstate(all="ignore"):
                got, want, ref = fused(*values), composed(*values), py(*values)
            for j, (g, w, r) in enumerate(zip(got, want, ref)):
                # the same nan and inf in the same places, equal elsewhere
                what = f"{kind}, eps {eps}, output {j}"
                np.testing.assert_array_equal(np.isnan(g), np.isnan(w), err_msg=f"nan: {what}")
                np.testing.assert_array_equal(np.isnan(r), np.isnan(w), err_msg=f"py's nan: {what}")
                np.testing.assert_array_equal(np.isposinf(g), np.isposinf(w), err_msg=f"+inf: {what}")
                np.testing.assert_array_equal(np.isneginf(g), np.isneginf(w), err_msg=f"-inf: {what}")
                finite = np.isfinite(w)
                _compare([g[finite]], [w[finite]], dtype, what)


@pytest.mark.parametrize("shape", [(3, 2, 3, 2), (4, 3)])
def test_gradient_matches_finite_differences(shape, dtype):
    tol = dict(rtol=2e-2, atol=2e-3) if dtype == "float32" else dict(rtol=1e-5, atol=1e-7)

    def build(x, g, b):  # y and both statistics reach the cost
        y, mean, var = G.batch_norm_train(x, g, b, eps=1e-3)
        return y * y + G.sum(mean * var)
    verify_grad(build, _values(shape, dtype, seed=2), backend="c", **tol)


@pytest.mark.parametrize("shape", [(3, 2, 2, 2), (4, 3)])
def test_second_derivatives_are_composed_and_match_finite_differences(shape):
    """BatchNormTrainGrad's own gradient is built from reductions and elementwise ops."""
    def grad_norm(x, g, b):
        y = G.batch_norm_train(x, g, b, eps=1e-3)[0]
        gx, gg, gb = G.grad((y * y * y).sum(), [x, g, b])
        return gx * gx + (gg * gb).sum()
    verify_grad(grad_norm, _values(shape, "float64", seed=4), backend="c")


def test_second_derivatives_equal_the_composed_forms():
    shape = (3, 2, 2, 3)
    values = _values(shape, "float64", seed=6)
    outs = []
    for build in (G.batch_norm_train, batch_norm_train_composed):
        x = G.tensor("x", shape, "float64")
        g, b = G.tensor("g", (2,), "float64"), G.tensor("b", (2,), "float64")
        y, mean, var = build(x, g, b, 1e-3)
        gx = G.grad((y * y * y).sum() + (mean * var).sum(), x)
        outs.append(G.function([x, g, b], G.grad((gx * gx).sum(), [x, g, b]))(*values))
    _compare(outs[0], outs[1], "float64", "second derivatives")


def test_a_step_is_one_kernel_each_way():
    """The forward is one batch_norm kernel, the backward one batch_norm_grad; no reduction
    is left of the statistics, and the graph is a few nodes instead of ~60."""
    x = G.tensor("x", (4, 3, 5, 6))
    gamma = G.shared(np.ones(3, np.float32), name="gamma")
    beta = G.shared(np.zeros(3, np.float32), name="beta")
    y = G.batch_norm_train(x, gamma, beta)[0]
    cost = (y * y).sum()
    gx, gg, gb = G.grad(cost, [x, gamma, beta])
    program = program_of([x], [cost, gx], {gamma: gamma - 0.1 * gg, beta: beta - 0.1 * gb})
    kinds = [k.kind for k in program.kernels]
    assert kinds.count("batch_norm") == 1 and kinds.count("batch_norm_grad") == 1, kinds
    assert kinds.count("reduce") <= 1, kinds  # (the cost's sum)
    ops = {type(n.op) for n in G.function([x], [cost, gx]).fgraph.nodes}
    assert {BatchNormTrain, BatchNormTrainGrad} <= ops


def test_bad_operands_say_what_was_expected():
    x = G.tensor("x", (4, 3, 5, 6))
    with pytest.raises(GraphcShapeError, match="gamma has 4 entries but the input"):
        G.batch_norm_train(x, np.ones(4, "float32"), np.zeros(3, "float32"))
    with pytest.raises(GraphcShapeError, match="beta must be a vector of the 3 channels"):
        G.batch_norm_train(x, np.ones(3, "float32"), np.zeros((3, 1), "float32"))
    with pytest.raises(GraphcShapeError, match="expected a 2-D .* or 4-D"):
        G.batch_norm_train(G.tensor("v", (4, 3, 5)), np.ones(3), np.zeros(3))
    with pytest.raises(GraphcTypeError, match="expected a float input"):
        G.batch_norm_train(G.tensor("i", (4, 3), "int32"), np.ones(3), np.zeros(3))
    with pytest.raises(GraphcShapeError, match="gamma must be a \\(3,\\) vector of float32"):
        BatchNormTrain(1e-5)(x, G.tensor("g", (3,), "float64"), G.tensor("b", (3,)))
    c = G.dim("c")
    xs = G.tensor("xs", (2, c))
    f = G.function([xs], G.batch_norm_train(xs, np.ones(3, "float32"), np.zeros(3, "float32"))[0])
    with pytest.raises(GraphcError, match=r"xs: expected shape \(2, 3\), got \(2, 4\)"):
        f(np.ones((2, 4), "float32"))


@pytest.mark.skipif(shutil.which(os.environ.get("CC", "gcc")) is None, reason="needs a C compiler")
def test_aot_library_carries_its_own_batch_norm(tmp_path):
    """An exported library stands alone: the runtime library's batch norm is compiled into it."""
    ins, outs = _graph(G.batch_norm_train, (3, 4, 2, 3), "float32")
    f = G.function(ins, outs[0], name="bn_aot_f")
    export = G.aot.export({"f": f}, str(tmp_path / "bn"), name="bnaot")
    lib = ctypes.CDLL(export.library)
    lib.bnaot_create.restype = ctypes.c_void_p
    lib.bnaot_f.argtypes = [ctypes.c_void_p] * 5
    lib.bnaot_destroy.argtypes = [ctypes.c_void_p]
    values = _values((3, 4, 2, 3), "float32", seed=8)
    out = np.zeros((3, 4, 2, 3), "float32")
    ctx = lib.bnaot_create(None)
    try:
        assert lib.bnaot_f(ctx, *(v.ctypes.data for v in values), out.ctypes.data) == 0
    finally:
        lib.bnaot_destroy(ctx)
    np.testing.assert_allclose(out, f(*values), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape", [(3, 4, 2, 5), (6, 3)])
def test_onnx_export_runs_in_onnxruntime(shape, tmp_path):
    """The exporter writes the op as ONNX reductions and elementwise ops (ONNX's training
    BatchNormalization returns running statistics): onnxruntime computes y, mean and var."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    x = G.tensor("x", shape)
    g, b = G.tensor("gamma", (shape[1],)), G.tensor("beta", (shape[1],))
    outs = list(G.batch_norm_train(x, g, b, eps=1e-3))
    path = str(tmp_path / "bn.onnx")
    G.onnx.export([x, g, b], outs, path)
    values = _values(shape, "float32", seed=9)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = sess.run(None, {i.name: v for i, v in zip(sess.get_inputs(), values)})
    want = G.function([x, g, b], outs)(*values)
    for r, w in zip(got, want):
        np.testing.assert_allclose(r, w, rtol=1e-4, atol=1e-5)
