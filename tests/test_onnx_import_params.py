"""Parameters of imported models stay parameters (graphc/onnx/importer.py: is_param, alias).

A float initializer reached through Identity, Transpose, Cast, Reshape, Unsqueeze or an If
branch is read as its shared variable: nothing computed from it is folded to a constant, so
`set_value` changes what every consumer computes and `G.grad` reaches it. An Identity of an
initializer is the same parameter (ONNX's meaning), or with `untie=True` one of its own: PyTorch's
eval-mode export merges parameters that are equal when exported through such Identity nodes,
and fine-tuning the original model needs them apart."""
import numpy as np
import pytest

import onnx_models as M
import graphc as G
import graphc.onnx as GO
from onnx import TensorProto, helper as oh, numpy_helper as nh

D = TensorProto.DOUBLE


def _every_path_model(cond=True):
    """Outputs reading W (3, 4) and V (4,) through every op an exporter puts on a weight."""
    rng = np.random.default_rng(0)
    inits = [nh.from_array(rng.standard_normal((3, 4)), "W"), nh.from_array(rng.standard_normal(4), "V"),
             nh.from_array(np.array([4, 3], "int64"), "shape43"),
             nh.from_array(np.array([0], "int64"), "ax0")]
    branch = lambda name, nodes, out: oh.make_graph(nodes, name, [], [oh.make_tensor_value_info(out, D, [4])])
    nodes = [
        oh.make_node("Transpose", ["W"], ["Wt"], perm=[1, 0]),
        oh.make_node("MatMul", ["x", "Wt"], ["y_transpose"]),
        oh.make_node("Identity", ["W"], ["Wi"]),
        oh.make_node("Transpose", ["Wi"], ["Wit"], perm=[1, 0]),
        oh.make_node("MatMul", ["x", "Wit"], ["y_identity_transpose"]),
        oh.make_node("Unsqueeze", ["V", "ax0"], ["Vu"]),
        oh.make_node("Add", ["x", "Vu"], ["y_unsqueeze"]),
        oh.make_node("Cast", ["V"], ["Vf"], to=TensorProto.FLOAT),
        oh.make_node("Cast", ["Vf"], ["Vd"], to=D),
        oh.make_node("Mul", ["x", "Vd"], ["y_cast"]),
        oh.make_node("Reshape", ["W", "shape43"], ["Wr"]),
        oh.make_node("MatMul", ["x", "Wr"], ["y_reshape"]),
        oh.make_node("Constant", [], ["c"], value=nh.from_array(np.array(cond))),
        oh.make_node("If", ["c"], ["Vb"],
                     then_branch=branch("then", [oh.make_node("Identity", ["V"], ["Vt"])], "Vt"),
                     else_branch=branch("else", [oh.make_node("Neg", ["V"], ["Vn"])], "Vn")),
        oh.make_node("Add", ["x", "Vb"], ["y_if"]),
        oh.make_node("Identity", ["V"], ["V1"]),
        oh.make_node("Identity", ["V1"], ["V2"]),
        oh.make_node("Add", ["x", "V2"], ["y_identity_twice"]),
    ]
    outs = {"y_transpose": [2, 3], "y_identity_transpose": [2, 3], "y_unsqueeze": [2, 4],
            "y_cast": [2, 4], "y_reshape": [2, 3], "y_if": [2, 4], "y_identity_twice": [2, 4]}
    g = oh.make_graph(nodes, "g", [oh.make_tensor_value_info("x", D, [2, 4])],
                      [oh.make_tensor_value_info(o, D, s) for o, s in outs.items()], inits)
    return oh.make_model(g, opset_imports=[oh.make_opsetid("", 17)])


def _with_initializers(model, values):
    out = type(model)()
    out.CopyFrom(model)
    for t in out.graph.initializer:
        if t.name in values:
            t.CopyFrom(nh.from_array(values[t.name], t.name))
    return out


@pytest.mark.parametrize("cond", [True, False])
def test_a_weight_reached_through_any_op_is_the_shared_variable(cond):
    model = _every_path_model(cond)
    m = GO.load(model)
    assert set(m.params) == {"W", "V"}
    assert m.aliases == {"Wi": "W", "V1": "V", "V2": "V"}
    f = G.function(m.inputs, m.outputs, backend="py")
    x = np.random.default_rng(1).standard_normal((2, 4))
    for got, want in zip(f(x), M.reference_run(model, {"x": x})):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    # every consumer reads the variable: a new value changes every output as onnxruntime says
    rng = np.random.default_rng(2)
    new = {"W": rng.standard_normal((3, 4)), "V": rng.standard_normal(4)}
    for name, value in new.items():
        m.params[name].set_value(value)
    want = M.reference_run(_with_initializers(model, new), {"x": x})
    for name, got, w in zip(m.output_names, f(x), want):
        np.testing.assert_allclose(got, w, rtol=1e-6, err_msg=name)


def test_the_gradient_reaches_the_weight_through_every_op():
    """Each output is linear in its weight: sum(y(p2)) - sum(y(p1)) = <dsum(y)/dp, p2 - p1>."""
    m = GO.load(_every_path_model())
    W, V = m.params["W"], m.params["V"]
    x = np.random.default_rng(1).standard_normal((2, 4))
    rng = np.random.default_rng(3)
    for name, y in zip(m.output_names, m.outputs):
        p = W if name in ("y_transpose", "y_identity_transpose", "y_reshape") else V
        total = G.sum(y)
        g = G.grad(total, p)
        f = G.function(m.inputs, [total, g], backend="py")
        s1, grad = f(x)
        old = p.get_value()
        step = rng.standard_normal(old.shape)
        p.set_value(old + step)
        s2, _ = f(x)
        p.set_value(old)
        assert np.abs(grad).max() > 0, name
        # y_cast rounds through float32
        np.testing.assert_allclose(s2 - s1, float(np.sum(grad * step)), rtol=1e-6, err_msg=name)


def test_untied_identity_is_a_parameter_of_its_own():
    m = GO.load(_every_path_model(), untie=True)
    # V1 is read only through V2; the If branch's Identity (Vt) is a copy too
    assert set(m.params) == {"W", "V", "Wi", "V2", "Vt"}
    assert m.aliases == {"Wi": "W", "V1": "V", "V2": "V1"}
    np.testing.assert_array_equal(m.params["V2"].get_value(), m.params["V"].get_value())
    m.params["V2"].set_value(np.zeros(4))           # a copy: V keeps its value
    assert np.abs(m.params["V"].get_value()).max() > 0
    x = np.ones((2, 4))
    f = G.function(m.inputs, m.outputs, backend="py")
    got = dict(zip(m.output_names, f(x)))
    np.testing.assert_array_equal(got["y_identity_twice"], x)
    np.testing.assert_allclose(got["y_unsqueeze"], x + m.params["V"].get_value())


# --- PyTorch exports -----------------------------------------------------------------------------

def _torch():
    return pytest.importorskip("torch", reason="PyTorch exports the models (pip install 'graphc[bench]')")


def _export(module, shape):
    import torch_models as TM
    return TM.export(module, shape)


def _identities(model_bytes):
    import onnx
    model = onnx.load_from_string(model_bytes)
    inits = {t.name for t in model.graph.initializer}
    return model, {n.output[0]: n.input[0] for n in model.graph.node
                   if n.op_type == "Identity" and n.input[0] in inits}


def _fine_tune(module, m, params, shape, backend="c", steps=20, lr=0.1, seed=1):
    """SGD on cross-entropy in graphc (the imported model) and in PyTorch (the module, in eval
    mode as exported); asserts the losses agree step by step."""
    torch = _torch()
    y = G.lvector("y")
    loss = G.softmax_cross_entropy(m.outputs[0], y).mean()
    rate = np.float32(lr)
    train = G.function(m.inputs + [y], loss, backend=backend,
                       updates={p: p - rate * g for p, g in zip(params, G.grad(loss, params))})
    opt = torch.optim.SGD(module.parameters(), lr=lr)
    module.eval()   # batch norm reads its running statistics, as in the exported graph
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        x = rng.standard_normal((8,) + shape).astype("float32")
        labels = rng.integers(0, 3, 8)
        got = float(train(x, labels))
        opt.zero_grad()
        ref = torch.nn.functional.cross_entropy(module(torch.from_numpy(x)), torch.from_numpy(labels))
        ref.backward()
        opt.step()
        assert abs(got - float(ref.detach())) <= 1e-4 * abs(float(ref.detach()))


def _storage_shared_module():
    torch = _torch()
    nn = torch.nn

    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp, self.a, self.b, self.out = nn.Linear(6, 8), nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 3)
            self.b.weight = nn.Parameter(self.a.weight.data)   # two parameters, one storage

        def forward(self, x):
            return self.out(torch.tanh(self.b(torch.tanh(self.a(torch.tanh(self.inp(x)))))))

    torch.manual_seed(0)
    return Shared()


def test_pytorch_shared_weight_fine_tunes_as_one_parameter():
    """b.weight shares a.weight's storage: the export reads it through Identity; graphc trains
    one variable with both layers' gradients, as PyTorch's SGD does on the shared storage."""
    module = _storage_shared_module()
    data = _export(module, (2, 6))
    model, ids = _identities(data)
    assert ids == {"b.weight": "a.weight"}
    m = GO.load(data)
    named = dict(module.named_parameters())
    assert m.aliases == {"b.weight": "a.weight"}
    assert set(m.params) == set(named) - {"b.weight"}
    x = np.random.default_rng(0).standard_normal((5, 6)).astype("float32")
    np.testing.assert_allclose(G.function(m.inputs, m.outputs[0])(x),
                               M.reference_run(model, {"x": x})[0], rtol=1e-5, atol=1e-6)
    _fine_tune(module, m, list(m.trainable), (6,))
    for name, p in named.items():
        np.testing.assert_allclose(m.params[m.aliases.get(name, name)].get_value(),
                                   p.detach().numpy(), rtol=1e-4, atol=1e-5, err_msg=name)


def _fresh_norm_module():
    torch = _torch()
    nn = torch.nn
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 8),
                         nn.LayerNorm(8), nn.Linear(8, 3))


def test_pytorch_eval_export_merges_equal_parameters_and_untie_splits_them():
    """Fresh batch norm and layer norm: torch's eval-mode export merges every all-ones and
    every all-zeros tensor (weights, biases, running statistics) into one initializer each,
    read through Identity. untie=True gives each its own parameter: fine-tuning then matches
    PyTorch training the module, and running statistics stay out of m.trainable."""
    module = _fresh_norm_module()
    data = _export(module, (2, 6))
    model, ids = _identities(data)
    assert {"1.running_mean", "1.running_var", "4.weight", "4.bias"} <= set(ids)
    named = dict(module.named_parameters())
    x = np.random.default_rng(0).standard_normal((5, 6)).astype("float32")
    want = M.reference_run(model, {"x": x})[0]
    with pytest.warns(UserWarning, match=r"'1\.bias', '1\.weight'\) are read both as batch norm "
                      r"running statistics and as parameters.*untie=True"):
        tied = GO.load(data)
    untied = GO.load(data, untie=True)
    for m in (tied, untied):   # inference is the same either way
        np.testing.assert_allclose(G.function(m.inputs, m.outputs[0], backend="py")(x), want,
                                   rtol=1e-5, atol=1e-6)
    # tied, a tensor that is also a running statistic is not trained (that would move the statistic)
    assert {tied.aliases["1.running_mean"], tied.aliases["1.running_var"]}.isdisjoint(
        {p.name for p in tied.trainable})
    stats = {"1.running_mean", "1.running_var"}
    assert set(untied.params) == set(named) | stats
    assert {p.name for p in untied.trainable} == set(named)
    _fine_tune(module, untied, list(untied.trainable), (6,), backend="py")
    for name, p in named.items():
        np.testing.assert_allclose(untied.params[name].get_value(), p.detach().numpy(), rtol=1e-4,
                                   atol=1e-5, err_msg=name)
