"""torch peer (CPU): eager, and torch.compile variants (``compile=True``).

For the training workloads the compile variant compiles the whole train step
(forward, backward, optimizer step) as one function; if that fails it falls back
to compiling only the model and says so in ``step.note``.
"""
from __future__ import annotations

import os
import time

import numpy as np

from . import PeerUnavailable
from . import common as C

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except Exception as e:  # pragma: no cover - depends on environment
    raise PeerUnavailable(f"torch not importable: {e}") from e


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def _compile(fn):
    try:
        return torch.compile(fn)
    except Exception as e:
        raise PeerUnavailable(f"torch.compile unavailable: {type(e).__name__}: {e}") from e


def _train_step(model, opt, x, y, compile, loss_fn):
    """Build step(); with compile=True compile the whole step, else eager."""

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss.detach()

    if not compile:
        return train_step
    cstep = _compile(train_step)
    saved = [p.detach().clone() for p in model.parameters()]
    try:
        cstep()  # trial call: triggers compilation; then undo its update below
        with torch.no_grad():
            for p, s in zip(model.parameters(), saved):
                p.copy_(s)
            for st in opt.state.values():  # zero momentum == fresh SGD state
                if st.get("momentum_buffer") is not None:
                    st["momentum_buffer"].zero_()
        cstep.note = "torch.compile(whole train step)"
        return cstep
    except Exception as e:
        cmodel = _compile(model)

        def fallback_step():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(cmodel(x), y)
            loss.backward()
            opt.step()
            return loss.detach()

        fallback_step.note = (f"compiling the whole step failed ({type(e).__name__}); "
                              "fell back to torch.compile(model)")
        return fallback_step


# ---------------------------------------------------------------- (a) MLP
class MLP(nn.Module):
    def __init__(self, params):
        super().__init__()
        sizes = C.MLP_SIZES
        self.l1 = nn.Linear(sizes[0], sizes[1])
        self.l2 = nn.Linear(sizes[1], sizes[2])
        self.l3 = nn.Linear(sizes[2], sizes[3])
        with torch.no_grad():
            for lin, (w, b) in zip((self.l1, self.l2, self.l3), zip(params[::2], params[1::2])):
                lin.weight.copy_(_t(w.T))
                lin.bias.copy_(_t(b))

    def forward(self, x):
        return self.l3(F.relu(self.l2(F.relu(self.l1(x)))))


def _build_mlp(batch, compile):
    model = MLP(C.mlp_params())
    x, y = C.mlp_data(batch)
    x, y = _t(x), _t(y)
    opt = torch.optim.SGD(model.parameters(), lr=C.MLP_LR)
    return _train_step(model, opt, x, y, compile, F.cross_entropy)


def mlp_step(batch=128, compile=False):
    return _build_mlp(batch, compile)


def cold_compile_mlp(compile=False, batch=128):
    """Seconds to build the torch.compile'd MLP train step and run it once."""
    if not compile:
        raise PeerUnavailable("eager torch does not compile")
    t0 = time.perf_counter()
    step = _build_mlp(batch, True)  # compiles and runs once (trial call)
    float(step())  # one more (compiled) call
    return time.perf_counter() - t0


# ---------------------------------------------------------------- (b) elementwise
def elementwise_chain(n=C.ELEM_N, compile=False):
    x = _t(C.elementwise_data(n))
    a, b = C.ELEM_A, C.ELEM_B

    def f(x):
        return torch.tanh(x * a + b) * torch.sigmoid(x) + torch.exp(-x * x)

    if compile:
        f = _compile(f)
    return lambda: f(x)


# ---------------------------------------------------------------- (c) tiny call
def tiny_call(compile=False):
    x, y = (_t(v) for v in C.tiny_data())
    if compile:
        f = _compile(lambda x, y: x + y)
        return lambda: f(x, y)
    return lambda: torch.add(x, y)


# ---------------------------------------------------------------- (e) LeNet
class LeNet(nn.Module):
    def __init__(self, params):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.fc1 = nn.Linear(800, 500)
        self.fc2 = nn.Linear(500, 10)
        c1w, c1b, c2w, c2b, f1w, f1b, f2w, f2b = params
        with torch.no_grad():
            self.conv1.weight.copy_(_t(c1w)); self.conv1.bias.copy_(_t(c1b))
            self.conv2.weight.copy_(_t(c2w)); self.conv2.bias.copy_(_t(c2b))
            self.fc1.weight.copy_(_t(f1w.T)); self.fc1.bias.copy_(_t(f1b))
            self.fc2.weight.copy_(_t(f2w.T)); self.fc2.bias.copy_(_t(f2b))

    def forward(self, x):
        x = F.max_pool2d(self.conv1(x), 2)
        x = F.max_pool2d(self.conv2(x), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


def lenet_step(batch=64, compile=False):
    model = LeNet(C.lenet_params())
    x, y = (_t(v) for v in C.lenet_data(batch))
    opt = torch.optim.SGD(model.parameters(), lr=C.LENET_LR, momentum=C.LENET_MOMENTUM)
    return _train_step(model, opt, x, y, compile, F.cross_entropy)


# ---------------------------------------------------------------- (f) LSTM
def lstm_step(batch=32, seq_len=32, n_in=64, n_hidden=256, compile=False):
    if compile:
        raise PeerUnavailable("LSTM is benchmarked for torch eager only")
    wx, wh, b = C.lstm_params(n_in, n_hidden)
    lstm = nn.LSTM(n_in, n_hidden)  # (T, B, F) layout, gate order i, f, g, o
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(_t(wx.T))
        lstm.weight_hh_l0.copy_(_t(wh.T))
        lstm.bias_ih_l0.copy_(_t(b))
        lstm.bias_hh_l0.zero_()
    lstm.bias_hh_l0.requires_grad_(False)  # one bias vector, as in the other peers
    X = _t(C.lstm_data(batch, seq_len, n_in))
    opt = torch.optim.SGD([p for p in lstm.parameters() if p.requires_grad], lr=C.LSTM_LR)

    def step():
        opt.zero_grad(set_to_none=True)
        _, (hT, _) = lstm(X)
        loss = (hT * hT).mean()
        loss.backward()
        opt.step()
        return loss.detach()

    step.note = "torch.nn.LSTM (oneDNN/ATen fused cell)"
    return step


def info():
    return {"torch": torch.__version__, "threads": torch.get_num_threads()}


# ---------------------------------------------------------------- (g) CNNs (bench/cnn_run.py)
def cnn_step(name, compile=False):
    from . import torch_cnn
    return torch_cnn.cnn_step(name, compile, _train_step)
