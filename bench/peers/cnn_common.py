"""The CNN workloads of issue 16, as data: one layer list per net, the initial weights and the data
(seeded numpy), shared by every peer so their first losses agree.

A net is a list of layers, each a tuple whose first item names it:
  ("conv", cout, k, stride, pad, groups, bias)   OIHW weights, cross-correlation
  ("bn",)                                        batch norm, training mode (batch statistics)
  ("relu",) ("flatten",)
  ("maxpool", k, s) ("avgpool", k, s)            Caffe's ceil mode, no padding
  ("lrn", size, alpha, beta, k)                  across channels, Caffe's alpha / size
  ("fc", nout)                                   weights (in, out)
  ("res", cout, stride)                          ResNet basic block: conv3x3-bn-relu-conv3x3-bn
                                                 + shortcut (identity, or 1x1 conv + bn when the
                                                 shape changes), then relu
Batch norm keeps no running averages here (every peer normalizes by the batch statistics only).
"""
from __future__ import annotations

import numpy as np

F32 = np.float32


def _vgg():
    out = []
    for c in (64, 64, "M", 128, 128, "M", 256, 256, "M"):
        out += [("maxpool", 2, 2)] if c == "M" else [("conv", c, 3, 1, 1, 1, False), ("bn",), ("relu",)]
    return out + [("flatten",), ("fc", 512), ("relu",), ("fc", 10)]


def _resnet20():
    out = [("conv", 16, 3, 1, 1, 1, False), ("bn",), ("relu",)]
    for c, s in ((16, 1), (32, 2), (64, 2)):
        out += [("res", c, s), ("res", c, 1), ("res", c, 1)]
    return out + [("avgpool", 8, 8), ("flatten",), ("fc", 10)]


def _alexnet():
    lrn = ("lrn", 5, 1e-4, 0.75, 1.0)
    return [("conv", 96, 11, 4, 0, 1, True), ("relu",), lrn, ("maxpool", 3, 2),
            ("conv", 256, 5, 1, 2, 2, True), ("relu",), lrn, ("maxpool", 3, 2),
            ("conv", 384, 3, 1, 1, 1, True), ("relu",),
            ("conv", 384, 3, 1, 1, 2, True), ("relu",),
            ("conv", 256, 3, 1, 1, 2, True), ("relu",), ("maxpool", 3, 2),
            ("flatten",), ("fc", 4096), ("relu",), ("fc", 4096), ("relu",), ("fc", 1000)]


# name -> (layers, input (C, H, W), classes, batch, train, lr, momentum, weight decay)
NETS = {
    "cifar_quick": (
        [("conv", 32, 5, 1, 2, 1, True), ("maxpool", 3, 2), ("relu",),
         ("conv", 32, 5, 1, 2, 1, True), ("relu",), ("avgpool", 3, 2),
         ("conv", 64, 5, 1, 2, 1, True), ("relu",), ("avgpool", 3, 2),
         ("flatten",), ("fc", 64), ("fc", 10)],
        (3, 32, 32), 10, 100, True, 0.001, 0.9, 0.0),
    "vgg_bn": (_vgg(), (3, 32, 32), 10, 64, True, 0.01, 0.9, 0.0),
    "resnet20": (_resnet20(), (3, 32, 32), 10, 128, True, 0.1, 0.9, 5e-4),
    "alexnet_infer": (_alexnet(), (3, 227, 227), 1000, 16, False, 0.0, 0.0, 0.0),
    "alexnet_train": (_alexnet(), (3, 227, 227), 1000, 32, True, 0.01, 0.9, 0.0),
}

DESCRIPTIONS = {
    "cifar_quick": "Caffe CIFAR-10 quick (b=100, momentum)",
    "vgg_bn": "VGG-style + batch norm (b=64, momentum)",
    "resnet20": "ResNet-20 (b=128, momentum + wd)",
    "alexnet_infer": "AlexNet-style inference (b=16)",
    "alexnet_train": "AlexNet-style train step (b=32, momentum)",
}


def _pool_out(n, k, s):
    return -(-(n - k) // s) + 1  # Caffe's ceil mode


def param_shapes(name):
    """[(kind, shape)] of the trainable parameters in the order every peer consumes them:
    kind is 'w' (conv/fc weight), 'b' (bias), 'gamma', 'beta'."""
    layers, (c, h, w), _, _, _, _, _, _ = NETS[name]
    out = []

    def conv(cin, cout, k, groups, bias):
        out.append(("w", (cout, cin // groups, k, k)))
        if bias:
            out.append(("b", (cout,)))

    def bn(ch):
        out.extend([("gamma", (ch,)), ("beta", (ch,))])

    flat = None
    for layer in layers:
        kind = layer[0]
        if kind == "conv":
            _, cout, k, s, p, g, bias = layer
            conv(c, cout, k, g, bias)
            c, h, w = cout, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        elif kind == "bn":
            bn(c)
        elif kind in ("maxpool", "avgpool"):
            h, w = _pool_out(h, layer[1], layer[2]), _pool_out(w, layer[1], layer[2])
        elif kind == "flatten":
            flat = c * h * w
        elif kind == "fc":
            out.extend([("w", (flat, layer[1])), ("b", (layer[1],))])
            flat = layer[1]
        elif kind == "res":
            _, cout, s = layer
            conv(c, cout, 3, 1, False)
            bn(cout)
            conv(cout, cout, 3, 1, False)
            bn(cout)
            if s != 1 or cout != c:
                conv(c, cout, 1, 1, False)
                bn(cout)
            c, h, w = cout, (h + 2 - 3) // s + 1, (w + 2 - 3) // s + 1
    return out


def params(name, seed=11):
    rng = np.random.default_rng(seed)
    out = []
    for kind, shape in param_shapes(name):
        if kind == "w":
            fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
            out.append((rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(F32))
        elif kind == "gamma":
            out.append(np.ones(shape, F32))
        else:
            out.append(np.zeros(shape, F32))
    return out


def data(name, seed=12):
    _, chw, classes, batch, _, _, _, _ = NETS[name]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch,) + chw, dtype=F32)
    y = rng.integers(0, classes, size=batch).astype(np.int64)
    return x, y


def pool_out(n, k, s):
    return _pool_out(n, k, s)
