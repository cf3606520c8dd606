"""graphc.onnx.load on models built with onnx.helper (an MLP; a small CNN with grouped and
depthwise convolutions, batch norm, Relu6, pads and ceil_mode; a transformer block with a
symbolic batch and an exporter's shape subgraphs): outputs against onnxruntime (or onnx's
reference), parameters as shared variables, fine-tuning with G.grad, AOT export."""
import ctypes
import os

import numpy as np
import pytest

import onnx_models as M
import graphc as G
from graphc.ir.graph import toposort
from graphc.ir.ops.shape import Concatenate, DimValue

GO = pytest.importorskip("graphc.onnx")
RTOL = M.REFERENCE_RTOL


def _close(got, want, rtol=RTOL):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype
    scale = max(float(np.abs(want).max()), 1e-30)
    assert float(np.abs(got - want).max()) <= rtol * scale, (got, want)


@pytest.fixture(scope="module")
def models():
    return {"mlp": M.mlp(), "cnn": M.small_cnn(), "transformer": M.transformer_block()}


@pytest.mark.parametrize("name,shapes", [("mlp", [(5, 8), (2, 8)]),
                                         ("cnn", [(2, 3, 12, 12), (1, 3, 12, 12)]),
                                         ("transformer", [(3, 6, 16), (1, 6, 16)])])
def test_model_matches_reference(models, name, shapes):
    model = models[name]
    m = GO.load(model)
    f = G.function(m.inputs, m.outputs)
    rng = np.random.default_rng(0)
    for shape in shapes:  # one compiled function serves every batch size (dim_params)
        x = rng.standard_normal(shape).astype("float32")
        got = f(x)
        got = got if isinstance(got, list) else [got]
        for g, r in zip(got, M.reference_run(model, {"x": x})):
            _close(g, r)


def test_inputs_params_and_dims(models):
    m = GO.load(models["mlp"])
    (x,) = m.inputs
    assert x.name == "x" and str(x.type.shape[0]) == "batch" and x.type.shape[1] == 8
    assert sorted(m.params) == ["W1", "W2", "b1"]
    assert all(isinstance(p, G.SharedVariable) for p in m.params.values())
    assert m.outputs[0].type.shape[0] == x.type.shape[0]
    # the parameters are the model's: changing one changes the output
    f = G.function(m.inputs, m.outputs[0])
    xv = np.ones((2, 8), "float32")
    before = f(xv)
    m.params["W2"].set_value(np.zeros((4, 16), "float32"))
    np.testing.assert_allclose(f(xv), np.full((2, 4), 0.25, "float32"), rtol=1e-6)
    assert not np.allclose(before, 0.25)


def test_batch_norm_statistics_are_not_trainable(models):
    m = GO.load(models["cnn"])
    trainable = {p.name for p in m.trainable}
    assert {"a_bn_m", "a_bn_v", "d_bn_m", "d_bn_v"} <= set(m.params) - trainable
    assert {"a_bn_s", "a_bn_b", "c1", "dw", "fc"} <= trainable


def test_shape_subgraphs_fold_at_load(models):
    """Shape -> Gather -> Unsqueeze -> Concat -> Reshape leaves no shape arithmetic in the graph:
    the reshapes read the symbolic batch directly."""
    m = GO.load(models["transformer"])
    ops = [type(n.op) for n in toposort(m.outputs)]
    assert DimValue not in ops
    assert not any(isinstance(n.op, Concatenate) and n.outputs[0].dtype == "int64"
                   for n in toposort(m.outputs))
    assert str(m.outputs[0].type.shape[0]) == "batch"


def _train_numpy_mlp(params, xs, ys, lr, steps):
    """The MLP of onnx_models.mlp trained by hand-written backprop: the reference."""
    W1, b1, W2 = (params[k].copy() for k in ("W1", "b1", "W2"))
    for step in range(steps):
        x, y = xs[step], ys[step]
        h = x @ W1 + b1
        r = np.maximum(h, 0)
        z = 0.5 * r @ W2.T
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        q = np.exp(p - p.max(1, keepdims=True))   # the loss is cross-entropy of softmax(probs)
        q /= q.sum(1, keepdims=True)
        gz2 = (q - np.eye(4)[y]) / len(y)
        gz = p * (gz2 - (gz2 * p).sum(1, keepdims=True))
        gW2 = 0.5 * gz.T @ r
        gr = 0.5 * gz @ W2
        gh = gr * (h > 0)
        W1, b1, W2 = W1 - lr * x.T @ gh, b1 - lr * gh.sum(0), W2 - lr * gW2
    return {"W1": W1, "b1": b1, "W2": W2}


def test_finetune_imported_mlp_matches_numpy_backprop(models):
    m = GO.load(models["mlp"])
    start = {k: v.get_value() for k, v in m.params.items()}
    y = G.lvector("y")
    loss = G.softmax_cross_entropy(m.outputs[0], y).mean()
    params = [m.params[k] for k in ("W1", "b1", "W2")]
    grads = G.grad(loss, params)
    train = G.function(m.inputs + [y], loss,
                       updates={p: p - np.float32(0.1) * g for p, g in zip(params, grads)})
    rng = np.random.default_rng(1)
    xs = rng.standard_normal((20, 16, 8)).astype("float32")
    ys = rng.integers(0, 4, (20, 16))
    losses = [float(train(xs[k], ys[k])) for k in range(20)]
    want = _train_numpy_mlp({k: v.astype("float64") for k, v in start.items()}, xs, ys, 0.1, 20)
    for k in want:
        np.testing.assert_allclose(m.params[k].get_value(), want[k], rtol=1e-4, atol=1e-5)
    assert losses[-1] < losses[0]


def test_finetune_imported_cnn_gradients(models):
    """G.grad through every imported CNN op (batch norm, depthwise/grouped conv, pools, LRN,
    HardSwish, Clip) against finite differences of the imported forward function."""
    m = GO.load(models["cnn"])
    y = G.lvector("y")
    loss = G.softmax_cross_entropy(m.outputs[0], y).mean()
    w = m.params["dw"]
    g = G.grad(loss, w)
    f = G.function(m.inputs + [y], [loss, g])
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 12, 12)).astype("float32")
    yv = np.array([1, 3])
    w0 = w.get_value().astype("float64")
    direction = rng.standard_normal(w0.shape)
    _, gv = f(x, yv)
    eps = 1e-3  # small: the model has kinks (relu, clip, max pooling, hard swish)
    vals = []
    for s in (eps, -eps):
        w.set_value((w0 + s * direction).astype("float32"))
        vals.append(float(f(x, yv)[0]))
    w.set_value(w0.astype("float32"))
    numeric = (vals[0] - vals[1]) / (2 * eps)
    assert abs(float((gv * direction).sum()) - numeric) <= 2e-2 * max(abs(numeric), 1e-3)


def test_aot_export_of_imported_model(models, tmp_path):
    m = GO.load(models["mlp"])
    infer = G.function(m.inputs, m.outputs[0])
    exp = G.aot.export({"infer": infer}, str(tmp_path / "onnxmlp"), name="onnxmlp")
    lib = ctypes.CDLL(exp.library)
    lib.onnxmlp_create.restype = ctypes.c_void_p
    lib.onnxmlp_create.argtypes = [ctypes.c_char_p]
    lib.onnxmlp_infer.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p]
    lib.onnxmlp_destroy.argtypes = [ctypes.c_void_p]
    ctx = lib.onnxmlp_create(None)
    assert ctx
    x = np.random.default_rng(3).standard_normal((7, 8)).astype("float32")
    out = np.empty((7, 4), "float32")
    rc = lib.onnxmlp_infer(ctx, x.ctypes.data, 7, out.ctypes.data)
    lib.onnxmlp_destroy(ctx)
    assert rc == 0
    _close(out, M.reference_run(models["mlp"], {"x": x})[0])
    assert os.path.exists(exp.params)
