"""ONNX's recurrent operators (LSTM, GRU, RNN) on graphc.scan: one scan per direction.

ONNX's equations and gate orders, which differ from PyTorch's (graphc/nn/recurrent.py):
LSTM gates i, o, f, c; GRU gates z, r, h (linear_before_reset: the reset gate multiplies
h @ R_h + Rb_h instead of h); RNN one gate. Weights are per direction: W [D, G*H, I],
R [D, G*H, H], B [D, 2*G*H] (Wb then Rb). The input projection X @ W^T + Wb (+ Rb where it is
additive) of all steps is one product before the loop; the loop does h @ R^T and the gates.

sequence_lens: a step at or past a sequence's length carries the state unchanged and outputs
zeros (onnxruntime's convention), so Y_h/Y_c are each sequence's last real state; running in
reverse, the padded tail is met first and holds the initial state, which is ONNX's meaning too.
Every activation ONNX lists (with activation_alpha/beta) is imported; clip is supported, as are
LSTM peepholes (P) and input_forget.
"""
import numpy as np

from ..ir.constructors import constant
from ..ir.ops import elemwise as E
from ..ir.ops.activations import elu, hard_sigmoid, leaky_relu
from ..ir.ops.blas import Matmul
from ..ir.ops.shape import arange, reshape, stack, transpose
from ..scan import scan
from .registry import Unsupported, converter

_COMMON = ("activation_alpha", "activation_beta", "activations", "clip", "direction",
           "hidden_size", "layout")
_DEFAULT_ACTIVATIONS = {"LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh"),
                        "RNN": ("Tanh",)}
_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def _c(x, v):
    return constant(np.asarray(v, x.dtype))


# ONNX's recurrent activation functions: (function of x, alpha, beta; uses alpha, uses beta, their
# defaults). alpha/beta lists are consumed in order by the functions that take them.
_ACTIVATIONS = {
    "sigmoid": (lambda x, a, b: E.sigmoid_op(x), False, False, None, None),
    "tanh": (lambda x, a, b: E.tanh_op(x), False, False, None, None),
    "relu": (lambda x, a, b: E.relu_op(x), False, False, None, None),
    "affine": (lambda x, a, b: _c(x, a) * x + _c(x, b), True, True, 1.0, 0.0),
    "leakyrelu": (lambda x, a, b: leaky_relu(x, a), True, False, 0.01, None),
    "thresholdedrelu": (lambda x, a, b: E.where_op(E.gt_op(x, _c(x, a)), x, _c(x, 0)), True,
                        False, 1.0, None),
    "scaledtanh": (lambda x, a, b: _c(x, a) * E.tanh_op(_c(x, b) * x), True, True, 1.0, 1.0),
    "hardsigmoid": (lambda x, a, b: hard_sigmoid(x, a, b), True, True, 0.2, 0.5),
    "elu": (lambda x, a, b: elu(x, a), True, False, 1.0, None),
    "softsign": (lambda x, a, b: x / (_c(x, 1) + E.abs_op(x)), False, False, None, None),
    "softplus": (lambda x, a, b: E.softplus_op(x), False, False, None, None),
}


def _activations(node, n_dirs):
    """Per direction, the cell's activation functions (LSTM f, g, h; GRU f, g; RNN f) as
    callables of one variable."""
    default = _DEFAULT_ACTIVATIONS[node.op_type]
    given = node.attr("activations")
    names = [a.decode() if isinstance(a, bytes) else str(a) for a in given] if given else \
        list(default * n_dirs)
    if len(names) != len(default) * n_dirs:
        raise Unsupported(f"activations={names}: {node.op_type} takes {len(default)} per "
                          f"direction ({n_dirs} direction(s))")
    alphas = list(node.attr("activation_alpha") or [])
    betas = list(node.attr("activation_beta") or [])
    fns = []
    for name in names:
        entry = _ACTIVATIONS.get(name.lower())
        if entry is None:
            raise Unsupported(f"activation {name!r}: ONNX's recurrent activations are "
                              f"{sorted(_ACTIVATIONS)}")
        fn, takes_a, takes_b, a0, b0 = entry
        a = (alphas.pop(0) if alphas else a0) if takes_a else None
        b = (betas.pop(0) if betas else b0) if takes_b else None
        fns.append(lambda x, fn=fn, a=a, b=b: fn(x, a, b))
    k = len(default)
    return [fns[d * k:(d + 1) * k] for d in range(n_dirs)]


def _direction(node):
    d = node.attr("direction", "forward")
    d = d.decode() if isinstance(d, bytes) else d
    if d not in ("forward", "reverse", "bidirectional"):
        raise Unsupported(f"direction={d!r} (ONNX has forward, reverse, bidirectional)")
    return ["forward", "reverse"] if d == "bidirectional" else [d]


def _static_size(v, axis, what):
    n = v.type.shape[axis]
    if not isinstance(n, int):
        raise Unsupported(f"{what} (axis {axis} of {v.type}) must be fixed, got {n}")
    return n


def _dot(a, b):
    return Matmul()(a, b)


class _Spec:
    """One node's shapes and options, read once."""

    def __init__(self, node):
        self.kind, self.node = node.op_type, node
        self.layout = node.attr("layout", 0)
        if self.layout not in (0, 1):
            raise Unsupported(f"layout={self.layout} (ONNX has 0 and 1)")
        self.dirs = _direction(node)
        self.acts = _activations(node, len(self.dirs))
        self.clip = node.attr("clip")
        x = node.input(0)
        if x.ndim != 3:
            raise Unsupported(f"X must be 3-D, got {x.type}")
        self.x = x if self.layout == 0 else transpose(x, (1, 0, 2))   # [T, B, I]
        self.T, self.B = self.x.type.shape[0], self.x.type.shape[1]
        self.W, self.R = node.input(1), node.input(2)
        self.G = _GATES[self.kind]
        self.H = _static_size(self.R, 2, "hidden size")
        if node.attr("hidden_size") not in (None, self.H):
            raise Unsupported(f"hidden_size={node.attr('hidden_size')} but R says {self.H}")
        self.I = _static_size(self.x, 2, "input size")
        want = {1: (len(self.dirs), self.G * self.H, self.I), 2: (len(self.dirs), self.G * self.H, self.H)}
        for i, shape in want.items():
            got = node.input(i).type.shape
            if tuple(got) != shape:
                raise Unsupported(f"input {i} ({'WR'[i - 1]}) must have shape {shape}, got {got}")
        self.dtype = x.dtype
        self.Bias = node.input(3)
        self.lens = node.input(4)
        self.h0 = self._initial(5)
        self.c0 = self._initial(6) if self.kind == "LSTM" else None
        self.P = node.input(7) if self.kind == "LSTM" else None
        self.input_forget = bool(node.attr("input_forget", 0)) if self.kind == "LSTM" else False
        self.lbr = bool(node.attr("linear_before_reset", 0)) if self.kind == "GRU" else False

    def _initial(self, i):
        v = self.node.input(i)
        if v is None or self.layout == 0:
            return v
        return transpose(v, (1, 0, 2))   # [B, D, H] -> [D, B, H]

    def mask(self):
        """[T, B] of 1 (a real step) and 0 (past the sequence's length), or None."""
        if self.lens is None:
            return None
        steps = reshape(arange(self.T, dtype="int64"), (-1, 1))
        lens = reshape(E.cast(self.lens, "int64"), (1, -1))
        return E.cast(E.lt_op(steps, lens), self.dtype)


def _gate(spec, z, fn):
    if spec.clip is not None:
        z = E.minimum_op(E.maximum_op(z, constant(-float(spec.clip), dtype=spec.dtype)),
                         constant(float(spec.clip), dtype=spec.dtype))
    return fn(z)


def _one_direction(spec, d, reverse, mask):
    """Y [T, B, H] (in time order) and the final states, for direction d."""
    H, G = spec.H, spec.G
    W_t = transpose(spec.W[d], (1, 0))            # [I, G*H]
    R_t = transpose(spec.R[d], (1, 0))            # [H, G*H]
    Wb = Rb = None
    if spec.Bias is not None:
        Wb, Rb = spec.Bias[d, :G * H], spec.Bias[d, G * H:]
    xw = _dot(reshape(spec.x, (-1, spec.I)), W_t)
    if Wb is not None:
        # Rb is additive for every gate but GRU's h gate under linear_before_reset.
        xw = xw + Wb + (Rb if spec.kind != "GRU" else E.mul_op(Rb, _gru_additive(spec)))
    xw = reshape(xw, (spec.T, spec.B, G * H))
    zeros = E.mul_op(xw[0, :, :H], constant(0, dtype=spec.dtype))
    h0 = spec.h0[d] if spec.h0 is not None else zeros
    states = [h0]
    if spec.kind == "LSTM":
        states.append(spec.c0[d] if spec.c0 is not None else zeros)
    seqs = [xw] if mask is None else [xw, mask]
    extra = []
    if spec.kind == "GRU" and Rb is not None and spec.lbr:
        extra.append(Rb[2 * H:])
    if spec.P is not None:
        extra += [spec.P[d, :H], spec.P[d, H:2 * H], spec.P[d, 2 * H:]]
    cell = {"LSTM": _lstm_cell, "GRU": _gru_cell, "RNN": _rnn_cell}[spec.kind]
    acts = spec.acts[d]

    def step(z_t, *rest):
        m_t = rest[0] if mask is not None else None
        prev = rest[1:] if mask is not None else rest
        new = cell(spec, acts, z_t, prev, R_t, extra)
        if m_t is None:
            return list(new)
        keep = m_t.dimshuffle(0, "x")
        return [keep * n + (1 - keep) * p for n, p in zip(new, prev)]

    # R_t and the extras are read from outside the step: scan makes them non-sequences.
    out, _ = scan(step, sequences=seqs, outputs_info=states,
                  go_backwards=reverse, name=f"{spec.node}{' reverse' if reverse else ''}",
                  return_list=True)
    finals = [o[-1] for o in out]
    hs = out[0][::-1] if reverse else out[0]
    if mask is not None:
        hs = hs * mask.dimshuffle(0, 1, "x")
    return hs, finals


def _gru_additive(spec):
    """1 where GRU's recurrent bias adds to the input projection, 0 for the h gate under
    linear_before_reset (there it goes inside the reset gate's product)."""
    ones = np.ones(spec.G * spec.H, spec.dtype)
    if spec.lbr:
        ones[2 * spec.H:] = 0
    return constant(ones)


def _lstm_cell(spec, acts, z_t, prev, R_t, consts):
    H = spec.H
    h, c = prev
    z = z_t + _dot(h, R_t)
    pi, po, pf = consts if spec.P is not None else (None, None, None)   # ONNX's P order: i, o, f
    zi, zo, zf, zc = z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H], z[:, 3 * H:]
    if pi is not None:
        zi, zf = zi + pi * c, zf + pf * c
    act_f, act_g, act_h = acts
    i = _gate(spec, zi, act_f)
    f = 1 - i if spec.input_forget else _gate(spec, zf, act_f)
    c_new = f * c + i * _gate(spec, zc, act_g)
    if po is not None:
        zo = zo + po * c_new
    o = _gate(spec, zo, act_f)
    return o * act_h(c_new), c_new


def _gru_cell(spec, acts, z_t, prev, R_t, consts):
    H = spec.H
    (h,) = prev
    hr = _dot(h, R_t[:, :2 * H])
    act_f, act_g = acts
    z = _gate(spec, z_t[:, :H] + hr[:, :H], act_f)
    r = _gate(spec, z_t[:, H:2 * H] + hr[:, H:], act_f)
    if spec.lbr:
        rec = _dot(h, R_t[:, 2 * H:])
        if consts:
            rec = rec + consts[0]
        n = _gate(spec, z_t[:, 2 * H:] + r * rec, act_g)
    else:
        n = _gate(spec, z_t[:, 2 * H:] + _dot(r * h, R_t[:, 2 * H:]), act_g)
    return ((1 - z) * n + z * h,)


def _rnn_cell(spec, acts, z_t, prev, R_t, consts):
    (h,) = prev
    return (_gate(spec, z_t + _dot(h, R_t), acts[0]),)


def _convert(node):
    spec = _Spec(node)
    mask = spec.mask()
    ys, finals = [], []
    for d, direction in enumerate(spec.dirs):
        y, fin = _one_direction(spec, d, direction == "reverse", mask)
        ys.append(y)
        finals.append(fin)
    Y = stack(ys, axis=1)                                   # [T, D, B, H]
    Y_h = stack([f[0] for f in finals], axis=0)             # [D, B, H]
    outs = [Y, Y_h]
    if spec.kind == "LSTM":
        outs.append(stack([f[1] for f in finals], axis=0))
    if spec.layout == 1:
        outs = [transpose(Y, (2, 0, 1, 3))] + [transpose(v, (1, 0, 2)) for v in outs[1:]]
    return outs


converter("LSTM", attrs=_COMMON + ("input_forget",))(_convert)
converter("GRU", attrs=_COMMON + ("linear_before_reset",))(_convert)
converter("RNN", attrs=_COMMON)(_convert)
