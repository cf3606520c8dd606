"""JAX peer (CPU, jax.jit).  Training steps are jitted (params, ...) -> (new
params, loss) with the params donated, and the params are kept across calls."""
from __future__ import annotations

import time

import numpy as np

from . import PeerUnavailable
from . import common as C

try:
    import jax
    import jax.numpy as jnp
    from jax import lax
except Exception as e:  # pragma: no cover
    raise PeerUnavailable(f"jax not importable: {e}") from e


def _xent(logits, y):
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def _stateful(jstep, state, *args):
    """Wrap a jitted ``(state, *args) -> (state, loss)`` into step()."""
    box = [state]

    def step():
        box[0], loss = jstep(box[0], *args)
        return loss.block_until_ready()

    step.state = box
    return step


# ---------------------------------------------------------------- (a) MLP
def _mlp_loss(params, x, y):
    h = x
    n = len(params) // 2
    for i in range(n):
        h = h @ params[2 * i] + params[2 * i + 1]
        if i < n - 1:
            h = jax.nn.relu(h)
    return _xent(h, y)


def _build_mlp(batch):
    x, y = C.mlp_data(batch)
    x, y = jnp.asarray(x), jnp.asarray(y.astype(np.int32))
    params = [jnp.asarray(p) for p in C.mlp_params()]
    lr = C.MLP_LR

    @jax.jit
    def _sgd(params, x, y):
        loss, g = jax.value_and_grad(_mlp_loss)(params, x, y)
        return [p - lr * gp for p, gp in zip(params, g)], loss

    jstep = jax.jit(_sgd, donate_argnums=0)
    return _stateful(jstep, params, x, y)


def mlp_step(batch=128):
    return _build_mlp(batch)


def cold_compile_mlp(batch=128):
    t0 = time.perf_counter()
    step = _build_mlp(batch)
    float(step())
    return time.perf_counter() - t0


# ---------------------------------------------------------------- (b) elementwise
def elementwise_chain(n=C.ELEM_N):
    x = jnp.asarray(C.elementwise_data(n))
    a, b = C.ELEM_A, C.ELEM_B

    @jax.jit
    def f(x):
        return jnp.tanh(x * a + b) * jax.nn.sigmoid(x) + jnp.exp(-x * x)

    return lambda: f(x).block_until_ready()


# ---------------------------------------------------------------- (c) tiny call
def tiny_call():
    x, y = (jnp.asarray(v) for v in C.tiny_data())
    f = jax.jit(lambda x, y: x + y)
    return lambda: f(x, y).block_until_ready()


# ---------------------------------------------------------------- (e) LeNet
def _conv(x, w, b):
    y = lax.conv_general_dilated(x, w, (1, 1), "VALID",
                                 dimension_numbers=("NCHW", "OIHW", "NCHW"))
    return y + b[None, :, None, None]


def _pool2(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def _lenet_loss(params, x, y):
    c1w, c1b, c2w, c2b, f1w, f1b, f2w, f2b = params
    h = _pool2(_conv(x, c1w, c1b))
    h = _pool2(_conv(h, c2w, c2b))
    h = jax.nn.relu(h.reshape(h.shape[0], -1) @ f1w + f1b)
    return _xent(h @ f2w + f2b, y)


def lenet_step(batch=64):
    x, y = C.lenet_data(batch)
    x, y = jnp.asarray(x), jnp.asarray(y.astype(np.int32))
    params = [jnp.asarray(p) for p in C.lenet_params()]
    vel = [jnp.zeros_like(p) for p in params]
    lr, mu = C.LENET_LR, C.LENET_MOMENTUM

    def _sgd(state, x, y):
        params, vel = state
        loss, g = jax.value_and_grad(_lenet_loss)(params, x, y)
        vel = [mu * v + gp for v, gp in zip(vel, g)]
        params = [p - lr * v for p, v in zip(params, vel)]
        return (params, vel), loss

    step = _stateful(jax.jit(_sgd, donate_argnums=0), (params, vel), x, y)
    step.note = "lax.conv_general_dilated, maxpool via reshape+max"
    return step


# ---------------------------------------------------------------- (f) LSTM
def _lstm_loss(params, X):
    wx, wh, b = params
    H = wh.shape[0]
    B = X.shape[1]
    zx = X @ wx + b  # (T, B, 4H): input projection hoisted out of the scan

    def cell(carry, z_t):
        h, c = carry
        z = z_t + h @ wh
        i = jax.nn.sigmoid(z[:, :H])
        f = jax.nn.sigmoid(z[:, H:2 * H])
        g = jnp.tanh(z[:, 2 * H:3 * H])
        o = jax.nn.sigmoid(z[:, 3 * H:])
        c = f * c + i * g
        h = o * jnp.tanh(c)
        return (h, c), None

    zeros = jnp.zeros((B, H), X.dtype)
    (hT, _), _ = lax.scan(cell, (zeros, zeros), zx)
    return jnp.mean(hT * hT)


def lstm_step(batch=32, seq_len=32, n_in=64, n_hidden=256):
    params = [jnp.asarray(p) for p in C.lstm_params(n_in, n_hidden)]
    X = jnp.asarray(C.lstm_data(batch, seq_len, n_in))
    lr = C.LSTM_LR

    def _sgd(params, X):
        loss, g = jax.value_and_grad(_lstm_loss)(params, X)
        return [p - lr * gp for p, gp in zip(params, g)], loss

    step = _stateful(jax.jit(_sgd, donate_argnums=0), params, X)
    step.note = "lax.scan"
    return step


def info():
    import jaxlib
    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__,
            "devices": [str(d) for d in jax.devices()]}


# ---------------------------------------------------------------- (g) CNNs (bench/cnn_run.py)
def cnn_step(name):
    from . import jax_cnn
    return jax_cnn.cnn_step(name)
