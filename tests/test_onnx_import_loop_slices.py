"""Slices whose length changes from step to step of an ONNX Loop (x[0:i+1]), read by reductions
over the varying axis (graphc/onnx/masked_slice.py): a masked reduction over the whole axis,
with ONNX's clamping and steps. The reference is onnxruntime (or onnx's evaluator); a prefix
mean that PyTorch's TorchScript exporter writes runs compiled and trains against PyTorch; any
other reader of such a slice is refused naming it."""
import io
import warnings

import numpy as np
import pytest

import onnx_models as M
import graphc as G
import graphc.onnx as GO
from onnx import TensorProto, helper as oh, numpy_helper as nh

from graphc.onnx.proto import OnnxUnsupported

F, I64, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


def _vi(name, shape, elem=F):
    return oh.make_tensor_value_info(name, elem, shape)


def _c(name, value):
    return oh.make_node("Constant", [], [name], value=nh.from_array(np.array(value, "int64")))


def _model(reader, start, end, step=None, axes=(1,), keepdims=0):
    """acc += reader(x[:, start:end:step]) over the loop (ys stacks the per-step value);
    start and end are nodes computing `s` and `e` from the iteration number i (and ip1 = i + 1)."""
    nodes = [oh.make_node("Identity", ["cond_in"], ["cond_out"]), _c("one", 1), _c("ax0", [0]),
             _c("sax", [1]), oh.make_node("Add", ["i", "one"], ["ip1"])] + start + end
    nodes += [oh.make_node("Unsqueeze", ["s", "ax0"], ["s1"]),
              oh.make_node("Unsqueeze", ["e", "ax0"], ["e1"])]
    ins = ["x", "s1", "e1", "sax"] + (["st"] if step is not None else [])
    if step is not None:
        nodes.append(_c("st", [step]))
    nodes.append(oh.make_node("Slice", ins, ["piece"], name="the_slice"))
    if reader in ("Add",):
        nodes.append(oh.make_node("Add", ["piece", "piece"], ["r"], name="reader"))
    else:
        nodes.append(_c("raxes", list(axes)))
        nodes.append(oh.make_node(reader, ["piece", "raxes"], ["r"], keepdims=keepdims, name="reader"))
    nodes += [oh.make_node("Add", ["acc_in", "r"], ["acc_out"]), oh.make_node("Identity", ["r"], ["y"])]
    body = oh.make_graph(nodes, "body", [_vi("i", [], I64), _vi("cond_in", [], B), _vi("acc_in", [3])],
                         [_vi("cond_out", [], B), _vi("acc_out", [3]), _vi("y", [3])])
    loop = oh.make_node("Loop", ["M", "", "acc0"], ["acc_T", "ys"], body=body)
    g = oh.make_graph([loop], "g", [_vi("M", [], I64), _vi("x", [3, 6]), _vi("acc0", [3])],
                      [_vi("acc_T", [3]), _vi("ys", ["T", 3])])
    return oh.make_model(g, opset_imports=[oh.make_opsetid("", 18)])


ZERO = [_c("s", 0)]
TO_I1 = [oh.make_node("Identity", ["ip1"], ["e"])]
CASES = {
    "prefix_sum": ("ReduceSum", ZERO, TO_I1, None),
    "prefix_max": ("ReduceMax", ZERO, TO_I1, None),
    "prefix_min": ("ReduceMin", ZERO, TO_I1, None),
    "suffix_mean": ("ReduceMean", [oh.make_node("Neg", ["ip1"], ["s"])], [_c("e", 100)], None),
    "reverse_step_2": ("ReduceSum", [_c("s", -1)],
                       [_c("minus1", -1), oh.make_node("Sub", ["minus1", "i"], ["e0"]),
                        oh.make_node("Sub", ["e0", "i"], ["e"])], -2),
    "logsumexp": ("ReduceLogSumExp", ZERO, TO_I1, None),
    "l2_step_3": ("ReduceL2", ZERO, [oh.make_node("Add", ["ip1", "ip1"], ["e"])], 3),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_reduction_of_a_slice_that_grows_per_step(name):
    reader, start, end, step = CASES[name]
    model = _model(reader, start, end, step)
    m = GO.load(model)
    f = G.function(m.inputs, list(m.outputs), backend="py")
    rng = np.random.default_rng(0)
    x, acc0 = rng.standard_normal((3, 6)).astype("float32"), np.zeros(3, "float32")
    for trip in (0, 1, 3, 6, 8):   # past 6 the slice is clamped at the axis' end
        feeds = {"M": np.array(trip, "int64"), "x": x, "acc0": acc0}
        got = f(*[feeds[k] for k in m.input_names])
        for g, w in zip(got, M.reference_run(model, feeds)):
            assert g.shape == w.shape
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_other_readers_of_such_a_slice_are_refused_naming_it():
    with pytest.raises(OnnxUnsupported, match=r"Add .*node 'reader'.*'piece' is a slice whose "
                                              r"length along axis \[1\] changes from step to step"):
        GO.load(_model("Add", ZERO, TO_I1))
    with pytest.raises(OnnxUnsupported, match=r"ReduceSum .*node 'reader'.*reduces axes \[0\] of a "
                                              r"slice whose length along axes \[1\] changes"):
        GO.load(_model("ReduceSum", ZERO, TO_I1, axes=(0,), keepdims=1))


def _prefix_mean_module(torch):
    nn = torch.nn

    class PrefixMean(nn.Module):
        """acc += tanh(mean(h[:, :i+1]) * h) for i < n, h = proj(x); then a linear head."""
        def __init__(self):
            super().__init__()
            self.proj, self.head = nn.Linear(6, 6), nn.Linear(6, 3)

        def forward(self, x, n):
            h = self.proj(x)
            acc = torch.zeros(x.shape[0], 6)
            for i in range(int(n)):
                acc = acc + torch.tanh(h[:, :i + 1].mean(1, keepdim=True) * h)
            return self.head(acc)

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # torch.jit.script's deprecation notice
        return torch.jit.script(PrefixMean())


def test_pytorch_prefix_mean_loop_runs_compiled_and_trains():
    torch = pytest.importorskip("torch", reason="PyTorch exports the model (pip install 'graphc[bench]')")
    import onnx
    module = _prefix_mean_module(torch)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.randn(2, 6), torch.tensor(3)), f, dynamo=False,
                          opset_version=17, input_names=["x", "n"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    model = onnx.load_from_string(f.getvalue())
    m = GO.load(model)
    infer = G.function(m.inputs, m.outputs[0])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6)).astype("float32")
    for n in (0, 1, 4, 9):
        got = infer(x, np.int64(n))
        np.testing.assert_allclose(got, M.reference_run(model, {"x": x, "n": np.array(n, "int64")})[0],
                                   rtol=1e-5, atol=1e-6)
        with torch.no_grad():
            np.testing.assert_allclose(got, module(torch.from_numpy(x), torch.tensor(n)).numpy(),
                                       rtol=1e-5, atol=1e-6)
    y = G.lvector("y")
    loss = G.softmax_cross_entropy(m.outputs[0], y).mean()
    params, lr = list(m.trainable), np.float32(0.1)
    train = G.function(m.inputs + [y], loss,
                       updates={p: p - lr * g for p, g in zip(params, G.grad(loss, params))})
    opt = torch.optim.SGD(module.parameters(), lr=0.1)
    for n in (3, 0, 7, 2):
        x = rng.standard_normal((5, 6)).astype("float32")
        labels = rng.integers(0, 3, 5)
        got = float(train(x, np.int64(n), labels))
        opt.zero_grad()
        ref = torch.nn.functional.cross_entropy(module(torch.from_numpy(x), torch.tensor(n)),
                                                torch.from_numpy(labels))
        ref.backward()
        opt.step()
        assert abs(got - float(ref.detach())) <= 1e-4 * abs(float(ref.detach()))
    for name, p in module.named_parameters():
        np.testing.assert_allclose(m.params[name].get_value(), p.detach().numpy(), rtol=1e-4,
                                   atol=1e-5, err_msg=name)
