"""torch's side of the CNN workloads (bench/peers/cnn_common.py): the layer lists as an
nn.Module, trained with torch.optim.SGD (eager, or the whole step under torch.compile)."""
from __future__ import annotations

from functools import partial

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import cnn_common as CC


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


class _BN(nn.Module):
    """Batch statistics only (no running averages), as every peer does here."""

    def __init__(self, gamma, beta):
        super().__init__()
        self.weight, self.bias = nn.Parameter(_t(gamma)), nn.Parameter(_t(beta))

    def forward(self, x):
        return F.batch_norm(x, None, None, self.weight, self.bias, training=True, eps=1e-5)


class _Conv(nn.Module):
    def __init__(self, layer, take):
        super().__init__()
        _, _, _, self.stride, self.pad, self.groups, bias = layer
        self.weight = nn.Parameter(_t(take()))
        self.bias = nn.Parameter(_t(take())) if bias else None

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.pad, 1, self.groups)


class _Res(nn.Module):
    def __init__(self, layer, take, channels):
        super().__init__()
        _, cout, s = layer
        self.c1, self.b1 = _Conv(("conv", cout, 3, s, 1, 1, False), take), _BN(take(), take())
        self.c2, self.b2 = _Conv(("conv", cout, 3, 1, 1, 1, False), take), _BN(take(), take())
        self.proj = None
        if s != 1 or cout != channels:
            self.proj = nn.Sequential(_Conv(("conv", cout, 1, s, 0, 1, False), take),
                                      _BN(take(), take()))

    def forward(self, x):
        y = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
        return F.relu(y + (x if self.proj is None else self.proj(x)))


class _WindowMeanPool(nn.Module):
    """Ceil-mode average pooling as a window sum over the window's in-bounds count: what
    nn.AvgPool2d(ceil_mode=True) computes, for torch.compile, whose backward of that op (torch
    2.13's inductor) divides a window hanging over the edge by k*k, not by its count as the
    forward does: CIFAR-10 quick's second loss came out 2.7898 against eager's 2.8016."""

    def __init__(self, k, s):
        super().__init__()
        self.k, self.s = k, s

    def forward(self, x):
        total = F.avg_pool2d(x, self.k, self.s, ceil_mode=True, divisor_override=1)
        ones = torch.ones((1, 1) + tuple(x.shape[2:]), dtype=x.dtype)
        return total / F.avg_pool2d(ones, self.k, self.s, ceil_mode=True, divisor_override=1)


class _FC(nn.Module):
    def __init__(self, take):
        super().__init__()
        self.weight, self.bias = nn.Parameter(_t(take().T)), nn.Parameter(_t(take()))

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


def net(name, compile=False):
    layers, (channels, _, _), *_ = CC.NETS[name]
    it = iter(CC.params(name))
    take = it.__next__
    mods = []
    for layer in layers:
        kind = layer[0]
        if kind == "conv":
            mods.append(_Conv(layer, take))
            channels = layer[1]
        elif kind == "bn":
            mods.append(_BN(take(), take()))
        elif kind == "relu":
            mods.append(nn.ReLU())
        elif kind == "maxpool":
            mods.append(nn.MaxPool2d(layer[1], layer[2], ceil_mode=True))
        elif kind == "avgpool":
            mods.append((_WindowMeanPool if compile else partial(nn.AvgPool2d, ceil_mode=True))(
                layer[1], layer[2]))
        elif kind == "lrn":
            size, alpha, beta, k = layer[1:]
            mods.append(nn.LocalResponseNorm(size, alpha, beta, k))
        elif kind == "flatten":
            mods.append(nn.Flatten())
        elif kind == "fc":
            mods.append(_FC(take))
        elif kind == "res":
            mods.append(_Res(layer, take, channels))
            channels = layer[1]
    return nn.Sequential(*mods)


def cnn_step(name, compile, train_step):
    _, _, _, _, train, lr, mu, wd = CC.NETS[name]
    model = net(name, compile)
    x, y = (_t(v) for v in CC.data(name))
    if not train:
        model.eval()
        fwd = torch.compile(model) if compile else model

        def infer():
            with torch.no_grad():
                return fwd(x)
        return infer
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=mu, weight_decay=wd)
    return train_step(model, opt, x, y, compile, F.cross_entropy)
