"""ONNX Loops that run no step (graphc/onnx/convert_control.py): a trip count of 0 or less, or a
false initial condition, known when the model loads or only at the call. The carried outputs are
the initial values (the scan's final states), the scan outputs are empty, and the gradient
passes the carried values' gradient back to their initial values. The reference is onnxruntime
(or onnx's evaluator); a loop PyTorch's TorchScript exporter wrote runs and trains against
PyTorch for counts 0 and up."""
import io
import warnings

import numpy as np
import pytest

import onnx_models as M
import graphc as G
import graphc.onnx as GO
from onnx import TensorProto, helper as oh, numpy_helper as nh

F, I64, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


def _vi(name, shape, elem=F):
    return oh.make_tensor_value_info(name, elem, shape)


def _loop_model(trip, cond=True, trip_input=False):
    """acc += x * i over the loop; ys stacks acc. trip: the count (a constant, or a graph input
    M when trip_input); cond: the initial condition (a constant)."""
    body = oh.make_graph(
        [oh.make_node("Cast", ["i"], ["i_f"], to=F),
         oh.make_node("Mul", ["x", "i_f"], ["xi"]),
         oh.make_node("Add", ["acc_in", "xi"], ["acc_out"]),
         oh.make_node("Identity", ["acc_out"], ["y"]),
         oh.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body", [_vi("i", [], I64), _vi("cond_in", [], B), _vi("acc_in", [3])],
        [_vi("cond_out", [], B), _vi("acc_out", [3]), _vi("y", [3])])
    nodes = [oh.make_node("Constant", [], ["c"], value=nh.from_array(np.array(cond)))]
    if not trip_input:
        nodes.append(oh.make_node("Constant", [], ["M"], value=nh.from_array(np.int64(trip))))
    nodes.append(oh.make_node("Loop", ["M", "c", "acc0"], ["acc_T", "ys"], body=body))
    inputs = [_vi("x", [3]), _vi("acc0", [3])] + ([_vi("M", [], I64)] if trip_input else [])
    g = oh.make_graph(nodes, "g", inputs, [_vi("acc_T", [3]), _vi("ys", ["T", 3])])
    return oh.make_model(g, opset_imports=[oh.make_opsetid("", 17)])


def _feeds(trip=None):
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal(3).astype("float32"), "acc0": rng.standard_normal(3).astype("float32")}
    if trip is not None:
        feeds["M"] = np.array(trip, "int64")
    return feeds


@pytest.mark.parametrize("trip,cond", [(0, True), (-3, True), (4, False), (4, True)])
def test_loop_with_a_count_known_at_load(trip, cond):
    model = _loop_model(trip, cond)
    m = GO.load(model)
    f = G.function(m.inputs, list(m.outputs), backend="py")
    feeds = _feeds()
    got, want = f(feeds["x"], feeds["acc0"]), M.reference_run(model, feeds)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-6)
    if trip < 1 or not cond:
        np.testing.assert_array_equal(got[0], feeds["acc0"])
        assert got[1].shape == (0, 3)


def test_gradient_through_a_loop_that_may_run_no_step():
    """d sum(w * acc_T) / d acc0 = w whatever the count; d / dx = w * (0 + 1 + ... + M-1)."""
    m = GO.load(_loop_model(None, trip_input=True))
    x, acc0, trip = m.inputs[0], m.inputs[1], m.inputs[2]
    w = np.array([1.0, -2.0, 0.5], "float32")
    total = G.sum(m.outputs[0] * w)
    f = G.function(m.inputs, G.grad(total, [acc0, x]), backend="py")
    feeds = _feeds()
    for count in (0, -1, 1, 3):
        g_acc0, g_x = f(feeds["x"], feeds["acc0"], np.int64(count))
        np.testing.assert_allclose(g_acc0, w)
        np.testing.assert_allclose(g_x, w * sum(range(max(count, 0))), rtol=1e-6)


def _scripted_loop_module(torch):
    nn = torch.nn

    class Recur(nn.Module):
        """h = tanh(cell(h) + x), n times from h = 0 (n an input), then a linear head."""
        def __init__(self):
            super().__init__()
            self.cell, self.head = nn.Linear(4, 4), nn.Linear(4, 3)

        def forward(self, x, n):
            h = torch.zeros(x.shape[0], 4)
            for _ in range(int(n)):
                h = torch.tanh(self.cell(h) + x)
            return self.head(h)

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # torch.jit.script's deprecation notice
        return torch.jit.script(Recur())


def test_pytorch_loop_runs_and_trains_for_counts_from_zero():
    """TorchScript's exporter writes the `for` over a count input as an ONNX Loop: compiled,
    it matches onnxruntime and PyTorch for 0, 1 and 3 steps, and SGD through it (0 steps: only
    the head learns) follows PyTorch's."""
    torch = pytest.importorskip("torch", reason="PyTorch exports the model (pip install 'graphc[bench]')")
    import onnx
    module = _scripted_loop_module(torch)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.randn(2, 4), torch.tensor(3)), f, dynamo=False,
                          opset_version=17, input_names=["x", "n"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    model = onnx.load_from_string(f.getvalue())
    assert "Loop" in {n.op_type for n in model.graph.node}
    m = GO.load(model)
    infer = G.function(m.inputs, m.outputs[0])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4)).astype("float32")
    for n in (0, 1, 3):
        want = M.reference_run(model, {"x": x, "n": np.array(n, "int64")})[0]
        np.testing.assert_allclose(infer(x, np.int64(n)), want, rtol=1e-5, atol=1e-6)
        with torch.no_grad():
            mine = module(torch.from_numpy(x), torch.tensor(n)).numpy()
        np.testing.assert_allclose(infer(x, np.int64(n)), mine, rtol=1e-5, atol=1e-6)
    y = G.lvector("y")
    loss = G.softmax_cross_entropy(m.outputs[0], y).mean()
    params, lr = list(m.trainable), np.float32(0.2)
    train = G.function(m.inputs + [y], loss,
                       updates={p: p - lr * g for p, g in zip(params, G.grad(loss, params))})
    opt = torch.optim.SGD(module.parameters(), lr=0.2)
    for n in (0, 2, 1, 3, 0, 2):
        x = rng.standard_normal((6, 4)).astype("float32")
        labels = rng.integers(0, 3, 6)
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
