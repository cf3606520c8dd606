"""graphc.nn's recurrent layers (RNN, LSTM, GRU on G.scan): PyTorch's weights port and give
PyTorch's outputs; the mask carries the state over padded steps; errors name the layer."""
import numpy as np
import pytest

import graphc as G
from graphc import nn

T, B, D, H = 5, 3, 4, 6


def _run(layer, x, mask=None, weights=None):
    X = G.tensor("x", (G.dim("T"), G.dim("batch"), D), "float64")
    inputs = [X] if mask is None else [X, G.tensor("m", (G.dim("T"), G.dim("batch")), "float64")]
    out = layer(*inputs)
    for name, value in (weights or {}).items():
        layer.params[f"{layer.name}.{name}"].set_value(np.ascontiguousarray(value))
    f = G.function(inputs, out, backend="c")
    x = np.ascontiguousarray(x)
    return f(x) if mask is None else f(x, mask)


def _torch_weights(m, cell):
    w = {"W": m.weight_ih_l0.detach().numpy().T, "U": m.weight_hh_l0.detach().numpy().T}
    if cell == "GRU":
        w.update(b=m.bias_ih_l0.detach().numpy(), bu=m.bias_hh_l0.detach().numpy())
    else:
        w["b"] = (m.bias_ih_l0 + m.bias_hh_l0).detach().numpy()
    return w


@pytest.mark.parametrize("cell", ["RNN", "LSTM", "GRU"])
def test_layer_equals_pytorch_with_ported_weights(cell):
    torch = pytest.importorskip("torch", reason="PyTorch (CPU) is the reference here")
    torch.manual_seed(0)
    m = getattr(torch.nn, cell)(D, H).double()
    x = np.random.default_rng(0).standard_normal((T, B, D))
    want = m(torch.tensor(x))[0].detach().numpy()
    G.config.floatX, old = "float64", G.config.floatX
    try:
        got = _run(getattr(nn, cell)(f"{cell.lower()}1", H), x, weights=_torch_weights(m, cell))
    finally:
        G.config.floatX = old
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_mask_carries_the_state_over_padding():
    """Two sequences of lengths 5 and 2 in one batch: the second's states after step 1 equal
    its last real state, and equal running it alone on its 2 steps."""
    G.config.floatX, old = "float64", G.config.floatX
    try:
        layer = nn.LSTM("lstm", H)
        x = np.random.default_rng(1).standard_normal((T, 2, D))
        mask = np.ones((T, 2))
        mask[2:, 1] = 0
        hs = _run(layer, x, mask)
        np.testing.assert_allclose(hs[2:, 1], np.repeat(hs[1:2, 1], T - 2, axis=0))
        weights = {k.split(".")[-1]: v.get_value() for k, v in layer.params.items()}
        alone = _run(nn.LSTM("lstm_b", H), x[:2, 1:], weights=weights)
        np.testing.assert_allclose(hs[:2, 1], alone[:, 0], rtol=1e-12)
        np.testing.assert_allclose(hs[:, 0], _run(nn.LSTM("lstm_c", H), x[:, :1],
                                                  weights=weights)[:, 0], rtol=1e-12)
    finally:
        G.config.floatX = old


def test_layer_trains_in_a_net_and_returns_the_last_state():
    net = nn.Net("seq", seed=3)
    net.input("x", (7, G.dim("batch"), D))
    net.input("y", (G.dim("batch"),), "int64")
    net.add(nn.GRU("gru", 8, return_sequences=False), bottom="x")
    net.add(nn.InnerProduct("ip", 3))
    net.add(nn.SoftmaxWithLoss("loss", bottom=["ip", "y"]))
    assert net.blob("gru").type.shape[1:] == (8,)
    loss = net.blob("loss")
    params = list(net.params.values())
    grads = G.grad(loss, params)
    f = G.function([net.blob("x"), net.blob("y")], loss,
                   updates={p: p - 0.5 * g for p, g in zip(params, grads)}, backend="c")
    r = np.random.default_rng(2)
    x = r.standard_normal((7, 16, D)).astype(G.config.floatX)
    y = (x[:, :, 0].sum(axis=0) > 0).astype("int64")
    losses = [float(f(x, y)) for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0]


def test_layer_errors_name_the_layer():
    with pytest.raises(G.GraphcError, match=r"layer 'l' \(LSTM\): the input must be \[T, batch, n_in\]"):
        nn.LSTM("l", 4)(G.matrix("x"))
    with pytest.raises(ValueError, match="num_output must be a positive int"):
        nn.RNN("r", 0)
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu'"):
        nn.RNN("r", 3, nonlinearity="gelu")


def test_sequence_mnist_example_steps_as_pytorch_does():
    """examples/lstm_sequence_mnist.py: graphc's LSTM and PyTorch's nn.LSTM, same initial
    weights and batches, take the same SGD-with-momentum steps (float32 round-off apart)."""
    torch = pytest.importorskip("torch", reason="PyTorch (CPU) is the reference here")
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "examples"))
    import lstm_sequence_mnist as ex
    r = np.random.RandomState(0)
    X = r.rand(28, 64, 28).astype("float32")
    y = r.randint(0, 10, 64).astype("int64")
    params, train, _ = ex.build_graphc(16, 0.1, 0.9)
    lstm, head = torch.nn.LSTM(28, 16), torch.nn.Linear(16, 10)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.tensor(params["lstm.W"].get_value().T))
        lstm.weight_hh_l0.copy_(torch.tensor(params["lstm.U"].get_value().T))
        lstm.bias_ih_l0.copy_(torch.tensor(params["lstm.b"].get_value()))
        lstm.bias_hh_l0.zero_()
        head.weight.copy_(torch.tensor(params["W_out"].get_value().T))
        head.bias.copy_(torch.tensor(params["b_out"].get_value()))
    lstm.bias_hh_l0.requires_grad_(False)
    opt = torch.optim.SGD([p for p in lstm.parameters() if p.requires_grad] +
                          list(head.parameters()), lr=0.1, momentum=0.9)
    for k in range(0, 64, 16):
        xb, yb = np.ascontiguousarray(X[:, k:k + 16]), y[k:k + 16]
        ours = float(train(xb, yb))
        out, _ = lstm(torch.tensor(xb))
        loss = torch.nn.functional.cross_entropy(head(out[-1]), torch.tensor(yb))
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert ours == pytest.approx(loss.item(), rel=2e-5)
    np.testing.assert_allclose(params["lstm.U"].get_value(), lstm.weight_hh_l0.detach().numpy().T,
                               rtol=1e-3, atol=1e-5)
