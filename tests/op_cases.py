"""The op table every compiled-vs-reference and gradient test walks through.

Each case: name -> (builder taking symbolic inputs, list of input makers (rng, dtype) -> array,
differentiable?). Inputs are kept away from singular points (log of <=0, sqrt of 0, ties).
"""
import numpy as np

import graphc as G
from graphc.ir.ops.shape import IncSubtensorSum


def pos(*shape):
    return lambda rng, dt: rng.uniform(0.5, 2.0, shape).astype(dt)


def any_(*shape):
    return lambda rng, dt: rng.uniform(-2.0, 2.0, shape).astype(dt)


def unit(*shape):
    return lambda rng, dt: rng.uniform(0.1, 0.9, shape).astype(dt)


def distinct(*shape):
    """Values far apart, so max/argmax have no near-ties and finite differences stay on a side."""
    def make(rng, dt):
        n = int(np.prod(shape))
        return (rng.permutation(n).reshape(shape) * 0.37 - n * 0.1).astype(dt)
    return make


def off_integers(*shape):
    """Either sign, 2.2-2.8 in size: over a divisor in [1, 1.05) the quotient is 2.1-2.8, so
    fmod's truncation stays on one side for finite differences (and is not 0: d/db = -trunc)."""
    return lambda rng, dt: (rng.choice([-1.0, 1.0], shape) * rng.uniform(2.2, 2.8, shape)).astype(dt)


def ints(high, *shape, dtype="int64"):
    return lambda rng, dt: rng.randint(0, high, shape).astype(dtype)


CASES = {
    "add_broadcast": (lambda a, b: a + b, [any_(3, 4), any_(4)], True),
    "add_col": (lambda a, b: a + b, [any_(3, 4), any_(3, 1)], True),
    "sub": (lambda a, b: a - b, [any_(3, 4), any_(3, 4)], True),
    "mul": (lambda a, b: a * b, [any_(2, 3, 4), any_(1, 3, 1)], True),
    "div": (lambda a, b: a / b, [any_(3, 4), pos(3, 4)], True),
    "neg": (lambda a: -a, [any_(5)], True),
    "pow": (lambda a, b: a ** b, [pos(3, 4), any_(3, 4)], True),
    "pow_const": (lambda a: a ** 3, [any_(6)], True),
    "sqr": (lambda a: a ** 2, [any_(6)], True),
    "exp": (G.exp, [any_(3, 4)], True),
    "log": (G.log, [pos(3, 4)], True),
    "log1p": (G.log1p, [pos(3, 4)], True),
    "sqrt": (G.sqrt, [pos(3, 4)], True),
    "abs": (G.abs, [any_(3, 4)], True),
    "tanh": (G.tanh, [any_(3, 4)], True),
    "erf": (G.erf, [any_(3, 4)], True),
    "sigmoid": (G.sigmoid, [any_(3, 4)], True),
    "softplus": (G.softplus, [any_(3, 4)], True),
    "relu": (G.relu, [any_(3, 4)], True),
    "maximum": (G.maximum, [distinct(3, 4), any_(3, 4)], True),
    "minimum": (G.minimum, [distinct(3, 4), any_(3, 4)], True),
    "fmod": (G.fmod, [off_integers(3, 4), lambda rng, dt: rng.uniform(1.0, 1.05, (1, 4)).astype(dt)], True),
    "clip": (lambda a: G.clip(a, -0.5, 0.7), [any_(4, 5)], True),
    "where": (lambda a, b: G.where(a > 0, a * b, b), [any_(3, 4), any_(3, 4)], True),
    "compare_logic": (lambda a, b: G.cast((a > b) & ~(a < -1.0) | (a >= 1.5), a.dtype) * a,
                      [any_(3, 4), any_(3, 4)], True),
    "eq_neq": (lambda a: G.cast(G.eq(G.cast(a > 0, "int64"), 1), a.dtype) +
               G.cast(G.neq(a, a), a.dtype), [any_(5)], False),
    "cast_int": (lambda a: G.cast(G.cast(a * 3, "int32"), a.dtype), [any_(5)], False),
    "sum_all": (lambda a: a.sum(), [any_(3, 4)], True),
    "sum_axis0": (lambda a: a.sum(axis=0), [any_(3, 4, 5)], True),
    "sum_axis1_keep": (lambda a: a.sum(axis=1, keepdims=True), [any_(3, 4, 5)], True),
    "sum_axes02": (lambda a: a.sum(axis=(0, 2)), [any_(3, 4, 5)], True),
    "mean": (lambda a: a.mean(axis=-1), [any_(3, 4)], True),
    "max": (lambda a: a.max(axis=1), [distinct(3, 4)], True),
    "min_all": (lambda a: a.min(), [distinct(3, 4)], True),
    "prod": (lambda a: a.prod(axis=0), [pos(3, 4)], True),
    "argmax": (lambda a: G.cast(a.argmax(axis=1), a.dtype), [distinct(3, 4)], False),
    "argmax_flat": (lambda a: G.cast(a.argmax(), a.dtype), [distinct(3, 4)], False),
    "dot_mm": (lambda a, b: G.dot(a, b), [any_(3, 4), any_(4, 5)], True),
    "dot_mv": (lambda a, b: G.dot(a, b), [any_(3, 4), any_(4)], True),
    "dot_vm": (lambda a, b: G.dot(a, b), [any_(3), any_(3, 4)], True),
    "dot_vv": (lambda a, b: G.dot(a, b), [any_(4), any_(4)], True),
    "matmul_T": (lambda a, b: a.T @ b, [any_(4, 3), any_(4, 5)], True),
    "batched_matmul": (lambda a, b: G.matmul(a, b), [any_(2, 3, 4), any_(2, 4, 5)], True),
    "transpose": (lambda a: a.transpose(2, 0, 1) * 1.5, [any_(2, 3, 4)], True),
    "dimshuffle": (lambda a: a.dimshuffle("x", 1, 0), [any_(3, 4)], True),
    "reshape": (lambda a: a.reshape((4, 6)) * 2.0, [any_(2, 3, 4)], True),
    "flatten": (lambda a: a.flatten(2), [any_(2, 3, 4)], True),
    "slice": (lambda a: a[1:, ::2], [any_(4, 5)], True),
    "slice_neg": (lambda a: a[::-1, -3:-1], [any_(4, 5)], True),
    # made by the merge_increments pass from summed slice gradients: tiling, then overlapping
    "inc_subtensor_sum_tiles": (lambda a, b: IncSubtensorSum(
        [((0, 4, 1), (0, 2, 1)), ((0, 4, 1), (2, 5, 1))], (4, 5))(a, b) * 1.5,
        [any_(4, 2), any_(4, 3)], True),
    "inc_subtensor_sum_overlap": (lambda a, b: IncSubtensorSum(
        [(1,), ((0, 3, 1), (1, 4, 1))], (4, 5))(a, b) * 1.5, [any_(5), any_(3, 3)], True),
    "int_index": (lambda a: a[1], [any_(3, 4)], True),
    "concatenate": (lambda a, b: G.concatenate([a, b], axis=1), [any_(3, 2), any_(3, 4)], True),
    "stack": (lambda a, b: G.stack([a, b], axis=0), [any_(3, 2), any_(3, 2)], True),
    "take_rows": (lambda a, i: a[i], [any_(5, 3), ints(5, 7)], True),
    "take_axis1": (lambda a, i: G.take(a, i, axis=1), [any_(3, 5), ints(5, 4)], True),
    "pick": (lambda a, i: a[G.arange(a.shape[0]), i], [any_(6, 4), ints(4, 6)], True),
    "one_hot": (lambda a, i: G.one_hot(i, 4, a.dtype) * a, [any_(6, 4), ints(4, 6)], True),
    "softmax": (G.softmax, [any_(3, 5)], True),
    "log_softmax": (G.log_softmax, [any_(3, 5)], True),
    "categorical_xent_int": (lambda p, t: G.categorical_crossentropy(G.softmax(p), t),
                             [any_(4, 5), ints(5, 4)], True),
    "categorical_xent_dist": (lambda p, t: G.categorical_crossentropy(G.softmax(p), G.softmax(t)),
                              [any_(4, 5), any_(4, 5)], True),
    "softmax_cross_entropy": (lambda p, t: G.softmax_cross_entropy(p * 30.0, t),
                              [any_(4, 5), ints(5, 4)], True),
    "binary_xent": (lambda o, t: G.binary_crossentropy(o, t), [unit(3, 4), unit(3, 4)], True),
    "sigmoid_bxent": (G.sigmoid_binary_crossentropy, [any_(3, 4), unit(3, 4)], True),
    "squared_error": (G.squared_error, [any_(3, 4), any_(3, 4)], True),
    # training batch norm (one op, its own kernels): y and both statistics reach the output
    "batch_norm_train": (lambda x, g, b: (lambda y, m, v: y * (m * v).sum())(
        *G.batch_norm_train(x, g, b, eps=1e-3)), [any_(3, 2, 3, 5), pos(2), any_(2)], True),
}
