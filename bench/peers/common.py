"""Shared problem definitions: sizes, initial weights and data.

Every peer (and graphc) starts from exactly these numpy arrays, so the loss of
the first step is identical up to float rounding; ``run.py --check`` compares.
"""
from __future__ import annotations

import numpy as np

F32 = np.float32

# ----------------------------------------------------------------- MLP
MLP_SIZES = (784, 512, 512, 10)
MLP_LR = 0.01


def _he(rng, fan_in, shape):
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(F32)


def mlp_params(seed=0):
    """[W1, b1, W2, b2, W3, b3]; W has shape (in, out) so h = x @ W + b."""
    rng = np.random.default_rng(seed)
    ps = []
    for n_in, n_out in zip(MLP_SIZES[:-1], MLP_SIZES[1:]):
        ps.append(_he(rng, n_in, (n_in, n_out)))
        ps.append(np.zeros(n_out, F32))
    return ps


def mlp_data(batch=128, seed=1):
    """x: (batch, 784) float32 in [0, 1); y: (batch,) int64 labels in 0..9."""
    rng = np.random.default_rng(seed)
    x = rng.random((batch, MLP_SIZES[0]), dtype=F32)
    y = rng.integers(0, MLP_SIZES[-1], size=batch).astype(np.int64)
    return x, y


# ----------------------------------------------------------------- elementwise
ELEM_A = 0.5
ELEM_B = 0.25
ELEM_N = 16 * 1024 * 1024


def elementwise_data(n=ELEM_N, seed=2):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(n, dtype=F32)


def elementwise_ref(x, a=ELEM_A, b=ELEM_B):
    x = x.astype(np.float64)
    return np.tanh(x * a + b) * (1.0 / (1.0 + np.exp(-x))) + np.exp(-x * x)


# ----------------------------------------------------------------- tiny call
def tiny_data(n=10, seed=3):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(n, dtype=F32), rng.standard_normal(n, dtype=F32)


# ----------------------------------------------------------------- LeNet
# Caffe's lenet_train_test.prototxt: conv1 20@5x5, pool 2x2/2, conv2 50@5x5,
# pool 2x2/2, ip1 500, relu, ip2 10, softmax loss.  No nonlinearity after convs.
LENET_LR = 0.01
LENET_MOMENTUM = 0.9  # v = mu*v + g; p -= lr*v   (== Caffe's form for fixed lr)


def lenet_params(seed=4):
    """[c1w(20,1,5,5), c1b(20), c2w(50,20,5,5), c2b(50), f1w(800,500), f1b(500),
    f2w(500,10), f2b(10)].  Conv weights are OIHW, cross-correlation (as in
    Caffe/torch); fc weights are (in, out); flatten order is C,H,W."""
    rng = np.random.default_rng(seed)
    return [
        _he(rng, 25, (20, 1, 5, 5)), np.zeros(20, F32),
        _he(rng, 500, (50, 20, 5, 5)), np.zeros(50, F32),
        _he(rng, 800, (800, 500)), np.zeros(500, F32),
        _he(rng, 500, (500, 10)), np.zeros(10, F32),
    ]


def lenet_data(batch=64, seed=5):
    rng = np.random.default_rng(seed)
    x = rng.random((batch, 1, 28, 28), dtype=F32)
    y = rng.integers(0, 10, size=batch).astype(np.int64)
    return x, y


# ----------------------------------------------------------------- LSTM
LSTM_LR = 0.01
LSTM_DEFAULTS = dict(batch=32, seq_len=32, n_in=64, n_hidden=256)


def lstm_params(n_in=64, n_hidden=256, seed=6):
    """[Wx (n_in, 4H), Wh (H, 4H), b (4H)]; gate order i, f, g, o (as torch).

    Pre-activations: z = x_t @ Wx + h @ Wh + b; c = f*c + i*g; h = o*tanh(c).
    h0 = c0 = 0; loss = mean(h_T ** 2)."""
    rng = np.random.default_rng(seed)
    s = 1.0 / np.sqrt(n_hidden)
    wx = rng.uniform(-s, s, (n_in, 4 * n_hidden)).astype(F32)
    wh = rng.uniform(-s, s, (n_hidden, 4 * n_hidden)).astype(F32)
    b = rng.uniform(-s, s, (4 * n_hidden,)).astype(F32)
    return [wx, wh, b]


def lstm_data(batch=32, seq_len=32, n_in=64, seed=7):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((seq_len, batch, n_in), dtype=F32)


# ----------------------------------------------------------------- helpers
def to_numpy(v):
    """Best-effort conversion of a step() result to a numpy array."""
    if v is None:
        return None
    if isinstance(v, (list, tuple)):
        v = v[0]
    if hasattr(v, "detach"):  # torch
        v = v.detach().cpu().numpy()
    return np.asarray(v)
