"""Where the time goes in three training steps: an MLP (784-500-10, batch 64), LeNet (batch 64)
and an LSTM (graphc.nn.LSTM on G.scan: 32 steps, batch 32, 64 -> 256), each a graphc.function
with updates. The LSTM's loops get a row per body kernel (k3.0, k3.1, ...).

Run:  graphc profile examples/profile_steps.py:build            (all three tables)
      graphc profile examples/profile_steps.py:mlp --trace mlp.json
or:   python examples/profile_steps.py [mlp|lenet|lstm ...]

Profiling never trains: the parameters are put back after every timed call."""
import sys

import numpy as np

import graphc as G
from graphc import nn

RNG = np.random.RandomState(0)


def _param(shape, name, scale=0.05):
    return G.shared((RNG.standard_normal(shape) * scale).astype("float32"), name=name)


def _sgd(loss, params, lr=0.01):
    return {p: p - lr * g for p, g in zip(params, G.grad(loss, params))}


def mlp(batch=64):
    x = G.tensor("x", (G.dim("batch"), 784))
    y = G.tensor("y", (G.dim("batch"),), "int64")
    params = [_param((784, 500), "fc1.W"), _param((500,), "fc1.b"),
              _param((500, 10), "fc2.W"), _param((10,), "fc2.b")]
    h = G.relu(G.dot(x, params[0]) + params[1])
    loss = G.softmax_cross_entropy(G.dot(h, params[2]) + params[3], y).mean()
    f = G.function([x, y], loss, updates=_sgd(loss, params), name="mlp_step")
    return f, (RNG.standard_normal((batch, 784)).astype("float32"),
               RNG.randint(0, 10, batch).astype("int64"))


def lenet(batch=64):
    x = G.tensor("x", (G.dim("batch"), 1, 28, 28))
    y = G.tensor("y", (G.dim("batch"),), "int64")
    c1w, c1b = _param((20, 1, 5, 5), "conv1.W"), _param((20,), "conv1.b")
    c2w, c2b = _param((50, 20, 5, 5), "conv2.W"), _param((50,), "conv2.b")
    f1w, f1b = _param((800, 500), "ip1.W"), _param((500,), "ip1.b")
    f2w, f2b = _param((500, 10), "ip2.W"), _param((10,), "ip2.b")
    h = G.max_pool2d(G.conv2d(x, c1w) + c1b.dimshuffle("x", 0, "x", "x"), 2)
    h = G.max_pool2d(G.conv2d(h, c2w) + c2b.dimshuffle("x", 0, "x", "x"), 2)
    h = G.relu(G.dot(h.flatten(2), f1w) + f1b)
    loss = G.softmax_cross_entropy(G.dot(h, f2w) + f2b, y).mean()
    params = [c1w, c1b, c2w, c2b, f1w, f1b, f2w, f2b]
    f = G.function([x, y], loss, updates=_sgd(loss, params), name="lenet_step")
    return f, (RNG.standard_normal((batch, 1, 28, 28)).astype("float32"),
               RNG.randint(0, 10, batch).astype("int64"))


def lstm(batch=32, seq_len=32, n_in=64, hidden=256):
    """graphc.nn.LSTM over the sequence: G.scan, one C loop per call (the step's kernels run
    inside it, once per time step; the profiler gives each its summed time)."""
    X = G.tensor("X", (seq_len, batch, n_in))
    layer = nn.LSTM("lstm", hidden, return_sequences=False)
    h = layer(X, seed=0)
    loss = G.mean(h * h)
    params = list(layer.params.values())
    fn = G.function([X], loss, updates=_sgd(loss, params), name="lstm_step")
    return fn, (RNG.standard_normal((seq_len, batch, n_in)).astype("float32"),)


STEPS = {"mlp": mlp, "lenet": lenet, "lstm": lstm}


def build(names=None):
    return {name: STEPS[name]() for name in (names or STEPS)}


if __name__ == "__main__":
    for name, (fn, args) in build(sys.argv[1:] or None).items():
        print(G.profile(fn, *args, repeat=20))
        print()
