"""JAX's side of the CNN workloads (bench/peers/cnn_common.py): the layer lists as plain jax.numpy
and lax functions (no flax/optax), the whole train step (forward, jax.grad, momentum SGD with
weight decay) under one jax.jit, the weights and momentum donated and kept across calls.

The layers follow torch's definitions exactly (torch is the reference of the loss check):
  conv     lax.conv_general_dilated, NCHW / OIHW, feature_group_count for grouped convs
  bn       batch statistics only, biased variance, eps 1e-5 (F.batch_norm(training=True))
  pools    Caffe's / torch's ceil mode without padding: the last window may hang over the edge;
           max ignores the overhang (-inf), average divides by the window's in-bounds count
  lrn      across channels: x / (k + alpha / size * sum of x^2 over `size` channels)^beta,
           the window zero-padded size // 2 before and (size - 1) // 2 after (nn.LocalResponseNorm)
  SGD      g += wd * p; v = mu * v + g; p -= lr * v (torch.optim.SGD, dampening 0)
"""
from __future__ import annotations

import numpy as np

from . import cnn_common as CC

import jax  # noqa: E402  (bench/peers/jax_peer.py turns an ImportError into PeerUnavailable)
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

_DIMS = ("NCHW", "OIHW", "NCHW")
_EPS = 1e-5


def _conv(h, w, b, stride, pad, groups):
    y = lax.conv_general_dilated(h, w, (stride, stride), [(pad, pad), (pad, pad)],
                                 dimension_numbers=_DIMS, feature_group_count=groups)
    return y if b is None else y + b[None, :, None, None]


def _bn(h, gamma, beta):
    mean = jnp.mean(h, axis=(0, 2, 3), keepdims=True)
    var = jnp.mean(jnp.square(h - mean), axis=(0, 2, 3), keepdims=True)
    scale = gamma[None, :, None, None] * lax.rsqrt(var + _EPS)
    return (h - mean) * scale + beta[None, :, None, None]


def _overhang(n, k, s):
    """Padding after the edge that ceil mode's last window needs."""
    return (CC.pool_out(n, k, s) - 1) * s + k - n


def _pool_padding(h, k, s):
    _, _, hh, ww = h.shape
    return ((0, 0), (0, 0), (0, _overhang(hh, k, s)), (0, _overhang(ww, k, s)))


def _maxpool(h, k, s):
    return lax.reduce_window(h, -jnp.inf, lax.max, (1, 1, k, k), (1, 1, s, s), _pool_padding(h, k, s))


def _avgpool(h, k, s):
    pad = _pool_padding(h, k, s)
    total = lax.reduce_window(h, 0.0, lax.add, (1, 1, k, k), (1, 1, s, s), pad)
    ones = np.ones((1, 1) + h.shape[2:], np.float32)  # the in-bounds count, a constant
    count = lax.reduce_window(jnp.asarray(ones), 0.0, lax.add, (1, 1, k, k), (1, 1, s, s), pad)
    return total / count


def _lrn(h, size, alpha, beta, k):
    pad = ((0, 0), (size // 2, (size - 1) // 2), (0, 0), (0, 0))
    window = lax.reduce_window(jnp.square(h), 0.0, lax.add, (1, size, 1, 1), (1, 1, 1, 1), pad)
    return h / jnp.power(k + (alpha / size) * window, beta)


def _res_block(h, layer, take, channels):
    _, cout, s = layer
    y = jax.nn.relu(_bn(_conv(h, take(), None, s, 1, 1), take(), take()))
    y = _bn(_conv(y, take(), None, 1, 1, 1), take(), take())
    if s != 1 or cout != channels:
        h = _bn(_conv(h, take(), None, s, 0, 1), take(), take())
    return jax.nn.relu(y + h)


def forward(name, x, params):
    """The logits of net `name` for the input batch x, consuming params in cnn_common's order."""
    layers, (channels, _, _), *_ = CC.NETS[name]
    take = iter(params).__next__
    h = x
    for layer in layers:
        kind = layer[0]
        if kind == "conv":
            _, cout, _, s, p, g, bias = layer
            w = take()
            h, channels = _conv(h, w, take() if bias else None, s, p, g), cout
        elif kind == "bn":
            h = _bn(h, take(), take())
        elif kind == "relu":
            h = jax.nn.relu(h)
        elif kind == "maxpool":
            h = _maxpool(h, layer[1], layer[2])
        elif kind == "avgpool":
            h = _avgpool(h, layer[1], layer[2])
        elif kind == "lrn":
            h = _lrn(h, *layer[1:])
        elif kind == "flatten":
            h = h.reshape(h.shape[0], -1)
        elif kind == "fc":
            w, b = take(), take()
            h = h @ w + b
        elif kind == "res":
            h, channels = _res_block(h, layer, take, channels), layer[1]
        else:
            raise ValueError(f"unknown layer {layer!r} in net {name!r}")
    return h


def _xent(logits, y):
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def cnn_step(name):
    """A zero-argument step: the train step's loss, or (inference nets) the logits."""
    _, _, _, _, train, lr, mu, wd = CC.NETS[name]
    xv, yv = CC.data(name)
    x = jnp.asarray(xv)
    params = [jnp.asarray(a) for a in CC.params(name)]
    if not train:
        infer = jax.jit(lambda params, x: forward(name, x, params))

        def step():
            return infer(params, x).block_until_ready()
        return step
    y = jnp.asarray(yv.astype(np.int32))  # labels < 1000: int32 without jax's x64 mode

    def sgd(state, x, y):
        params, vel = state
        loss, grads = jax.value_and_grad(lambda ps: _xent(forward(name, x, ps), y))(params)
        if wd:
            grads = [g + wd * p for g, p in zip(grads, params)]
        vel = [mu * v + g for v, g in zip(vel, grads)]
        return ([p - lr * v for p, v in zip(params, vel)], vel), loss

    jstep = jax.jit(sgd, donate_argnums=0)  # the old weights' buffers take the new ones
    box = [(params, [jnp.zeros_like(p) for p in params])]

    def step():
        box[0], loss = jstep(box[0], x, y)
        return loss.block_until_ready()
    return step
