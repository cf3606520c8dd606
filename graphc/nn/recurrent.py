"""Recurrent layers on G.scan: RNN, LSTM, GRU, with PyTorch's equations and gate order, so
weights port (W = weight_ih_l0.T, U = weight_hh_l0.T).

Input x is time-major [T, batch, n_in] (PyTorch's default). An optional second bottom, a mask
[T, batch] of 1 (a real step) and 0 (padding), lets one batch hold sequences of several lengths:
at a padded step the state is carried over unchanged, so the state at T-1 is each sequence's
last real state and a padded step's output repeats it.

The input projection of all steps is one product before the loop (x @ W + b over T*batch rows);
the loop does only the recurrent product h @ U and the gates.

Parameters: W [n_in, G*H], U [H, G*H], b [G*H] (G = 1, 4, 3 gates). For PyTorch weights:
b = bias_ih + bias_hh for RNN and LSTM; the GRU keeps two, b = bias_ih and bu = bias_hh, because
its candidate gate multiplies (h @ U_n + bu_n) by the reset gate.
"""
import numpy as np

import graphc as G

from .fillers import uniform
from .net import Layer

__all__ = ["RNN", "LSTM", "GRU"]


class _Recurrent(Layer):
    n_bottoms = None  # x, and optionally the mask
    gates = 1

    def __init__(self, name, num_output, return_sequences=True, weight_filler=None,
                 bias_filler=None, **kw):
        super().__init__(name, **kw)
        if int(num_output) != num_output or num_output < 1:
            raise self._fail(f"num_output must be a positive int, got {num_output!r}")
        self.num_output, self.return_sequences = int(num_output), bool(return_sequences)
        bound = 1.0 / np.sqrt(self.num_output)  # PyTorch's default initialization
        self.weight_filler = weight_filler or uniform(-bound, bound)
        self.bias_filler = bias_filler or uniform(-bound, bound)

    def build(self, ctx, x, mask=None):
        if x.ndim != 3:
            raise G.GraphcShapeError(f"layer {self.name!r} ({self.type}): the input must be "
                                     f"[T, batch, n_in], got {x.type}")
        n_in = x.static_shape[2]
        if not isinstance(n_in, (int, np.integer)):
            raise G.GraphcShapeError(f"layer {self.name!r} ({self.type}): the input's feature "
                                     f"size (axis 2) must be fixed, but it is {n_in}")
        if mask is not None and mask.ndim != 2:
            raise G.GraphcShapeError(f"layer {self.name!r} ({self.type}): the mask must be "
                                     f"[T, batch], got {mask.type}")
        H, GH = self.num_output, self.gates * self.num_output
        W = ctx.param("W", (n_in, GH), self.weight_filler, fan_in=n_in, fan_out=GH)
        U = ctx.param("U", (H, GH), self.weight_filler, fan_in=H, fan_out=GH)
        b = ctx.param("b", (GH,), self.bias_filler, fan_in=n_in, fan_out=GH)
        extra = self.extra_params(ctx, GH)
        T, B = x.static_shape[0], x.static_shape[1]
        xw = (G.dot(G.reshape(x, (-1, n_in)), W) + b).reshape((T, B, GH))
        h0 = G.zeros_like(xw[0, :, :H])
        states = [h0] * self.n_states
        sequences = [xw] if mask is None else [xw, G.cast(mask, xw.dtype)]

        def step(z_t, *rest):
            m_t = rest[0] if mask is not None else None
            prev = rest[1:] if mask is not None else rest
            new = self.cell(z_t, *prev, U, *extra)
            new = new if isinstance(new, tuple) else (new,)
            if m_t is None:
                return list(new) if len(new) > 1 else new[0]
            keep = m_t.dimshuffle(0, "x")
            held = [keep * n + (1 - keep) * p for n, p in zip(new, prev)]
            return held if len(held) > 1 else held[0]

        out, _ = G.scan(step, sequences=sequences, outputs_info=states,
                        name=f"{self.type}:{self.name}", return_list=True)
        hs = out[0]
        return hs if self.return_sequences else hs[-1]

    n_states = 1

    def extra_params(self, ctx, GH):
        return []


class RNN(_Recurrent):
    """h_t = tanh(x_t W + b + h_{t-1} U)  (nonlinearity="relu": relu instead)."""
    type = "RNN"

    def __init__(self, name, num_output, nonlinearity="tanh", **kw):
        super().__init__(name, num_output, **kw)
        if nonlinearity not in ("tanh", "relu"):
            raise self._fail(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity

    def cell(self, z_t, h, U):
        z = z_t + G.dot(h, U)
        return G.tanh(z) if self.nonlinearity == "tanh" else G.relu(z)


class LSTM(_Recurrent):
    """Gates i, f, g, o (PyTorch's order): c_t = f c_{t-1} + i g, h_t = o tanh(c_t)."""
    type = "LSTM"
    gates, n_states = 4, 2

    def cell(self, z_t, h, c, U):
        H = self.num_output
        z = z_t + G.dot(h, U)
        i, f = G.sigmoid(z[:, :H]), G.sigmoid(z[:, H:2 * H])
        g, o = G.tanh(z[:, 2 * H:3 * H]), G.sigmoid(z[:, 3 * H:])
        c_new = f * c + i * g
        return o * G.tanh(c_new), c_new


class GRU(_Recurrent):
    """PyTorch's GRU: r, z, n gates; n = tanh(x W_n + b_n + r (h U_n + bu_n)),
    h_t = (1 - z) n + z h_{t-1}."""
    type = "GRU"
    gates = 3

    def extra_params(self, ctx, GH):
        return [ctx.param("bu", (GH,), self.bias_filler, fan_in=self.num_output, fan_out=GH)]

    def cell(self, z_t, h, U, bu):
        H = self.num_output
        zh = G.dot(h, U) + bu
        r = G.sigmoid(z_t[:, :H] + zh[:, :H])
        z = G.sigmoid(z_t[:, H:2 * H] + zh[:, H:2 * H])
        n = G.tanh(z_t[:, 2 * H:] + r * zh[:, 2 * H:])
        return (1 - z) * n + z * h
