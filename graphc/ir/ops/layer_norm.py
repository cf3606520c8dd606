"""Layer normalization as a composition: mean and variance over the trailing axes from `axis`
(reductions that fusion merges with their elementwise producers), then one elementwise scale."""
import numpy as np

from ...errors import GraphcShapeError


def layer_norm(x, gamma=None, beta=None, axis=-1, eps=1e-5, return_stats=False):
    """(x - mean) / sqrt(var + eps) * gamma + beta over axes axis..ndim-1 (biased variance).
    return_stats: also (mean, 1 / sqrt(var + eps)), with the normalized axes kept as size 1."""
    from ..constructors import as_variable
    from .elemwise import sqrt_op
    from .reduce import mean
    x = as_variable(x)
    if not -x.ndim <= axis < max(x.ndim, 1):
        raise GraphcShapeError(f"layer_norm {x.label()}: axis {axis} is out of range for {x.type}")
    axes = tuple(range(axis % x.ndim, x.ndim))
    mu = mean(x, axes, keepdims=True)
    d = x - mu
    std = sqrt_op(mean(d * d, axes, keepdims=True) + np.asarray(eps, x.dtype))
    y = d / std
    if gamma is not None:
        y = y * as_variable(gamma)
    if beta is not None:
        y = y + as_variable(beta)
    return (y, mu, np.asarray(1.0, x.dtype) / std) if return_stats else y
