"""Models exported by PyTorch (tests/torch_models.py) through graphc.onnx: outputs equal
onnxruntime's (and PyTorch's) to 1e-5 relative at several batch sizes, and fine-tuning the
imported LeNet for 20 SGD steps gives PyTorch's parameters from the same start (1e-4)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch exports the models (pip install 'graphc[bench]')")
onnx = pytest.importorskip("onnx", reason="graphc.onnx needs the onnx package")

import onnx_models as M  # noqa: E402
import torch_models as TM  # noqa: E402
import graphc as G  # noqa: E402
import graphc.onnx as GO  # noqa: E402

MODELS = {"mlp": (TM.mlp, (20,)), "lenet": (TM.LeNet, (1, 28, 28)),
          "resnet": (TM.ResNetish, (3, 32, 32)), "mobilenet_block": (TM.MobileBlock, (3, 16, 16)),
          "transformer": (TM.Encoder, (7, 16))}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_exported_model_matches(name):
    make, shape = MODELS[name]
    torch.manual_seed(0)
    module = make()
    model = onnx.load_from_string(TM.export(module, (2,) + shape))
    m = GO.load(model)
    assert str(m.inputs[0].type.shape[0]) == "batch"
    f = G.function(m.inputs, m.outputs[0])
    rng = np.random.default_rng(0)
    for n in (3, 1):
        x = rng.standard_normal((n,) + shape).astype("float32")
        got = f(x)
        want = M.reference_run(model, {"x": x})[0]
        with torch.no_grad():
            mine = module(torch.from_numpy(x)).numpy()
        scale = float(np.abs(want).max())
        assert float(np.abs(got - want).max()) <= M.REFERENCE_RTOL * scale
        assert float(np.abs(got - mine).max()) <= 1e-5 * scale


def test_finetuning_imported_lenet_matches_pytorch():
    torch.manual_seed(0)
    module = TM.LeNet()
    m = GO.load(TM.export(module, (2, 1, 28, 28)))
    named = dict(module.named_parameters())
    assert set(m.params) == set(named)
    y = G.lvector("y")
    loss = G.softmax_cross_entropy(m.outputs[0], y).mean()
    params = list(m.params.values())
    lr = np.float32(0.05)
    train = G.function(m.inputs + [y], loss,
                       updates={p: p - lr * g for p, g in zip(params, G.grad(loss, params))})
    opt = torch.optim.SGD(module.parameters(), lr=0.05)
    rng = np.random.default_rng(1)
    for step in range(20):
        x = rng.standard_normal((8, 1, 28, 28)).astype("float32")
        labels = rng.integers(0, 10, 8)
        got = float(train(x, labels))
        opt.zero_grad()
        ref = torch.nn.functional.cross_entropy(module(torch.from_numpy(x)), torch.from_numpy(labels))
        ref.backward()
        opt.step()
        ref_loss = float(ref.detach())
        assert abs(got - ref_loss) <= 1e-4 * abs(ref_loss)
    for name, p in named.items():
        np.testing.assert_allclose(m.params[name].get_value(), p.detach().numpy(), rtol=1e-4, atol=1e-5)
