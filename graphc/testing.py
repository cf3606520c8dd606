"""Public testing helpers: verify_grad compares graphc.grad with finite differences."""
import numpy as np

from .compiler import function
from .errors import GraphcError
from .grad import grad
from .ir.constructors import shared, tensor
from .math import sum as gsum


class GradientMismatch(GraphcError, AssertionError):
    pass


def verify_grad(fn, point, eps=None, rtol=None, atol=None, rng=None, backend=None, n_directions=2):
    """Check the symbolic gradient of `fn` at `point` against central finite differences.

    fn: builds a graph from symbolic inputs (one per array in `point`) and returns a tensor; the
    scalar checked is sum(fn(...) * R) for a fixed random R, as Theano's verify_grad does.
    The directional derivative along random directions is compared (cheap for big inputs).
    """
    rng = rng or np.random.RandomState(42)
    point = [np.asarray(p) for p in point]
    dtype = point[0].dtype
    rtol = rtol or (1e-2 if dtype == np.float32 else 1e-5)
    atol = atol or (1e-3 if dtype == np.float32 else 1e-7)
    xs = [tensor(f"x{k}", p.shape, p.dtype.name) for k, p in enumerate(point)]
    out = fn(*xs)
    r_value = rng.uniform(0.5, 1.5, size=tuple(int(d) for d in _static(out)))
    cost = gsum(out * shared(r_value.astype(out.dtype), name="R"))
    floats = [k for k, p in enumerate(point) if p.dtype.kind == "f"]
    # no_default_updates: a graph that draws random numbers must draw the same ones in every
    # call here (a stream advancing between the finite-difference calls is not a derivative).
    f_grad = function(xs, grad(cost, [xs[k] for k in floats], disconnected_inputs="ignore"),
                      backend=backend, no_default_updates=True)
    analytic = dict(zip(floats, f_grad(*point)))
    # The numeric side runs the same graph built in float64 on the py reference, so float32
    # gradients are checked against an accurate oracle rather than float32 round-off.
    xs64 = [tensor(f"x{k}", p.shape, "float64" if p.dtype.kind == "f" else p.dtype.name)
            for k, p in enumerate(point)]
    out64 = fn(*xs64)
    cost64 = gsum(out64.astype("float64") * shared(r_value, name="R"))
    f_cost = function(xs64, cost64, backend="py", no_default_updates=True)
    point64 = [p.astype("float64") if p.dtype.kind == "f" else p for p in point]
    eps = 1e-6 if eps is None else eps
    for k, p in enumerate(point64):
        if p.dtype.kind != "f":
            continue
        for _ in range(n_directions):
            d = rng.standard_normal(p.shape)
            d /= max(np.linalg.norm(d), 1e-12)
            plus = list(point64)
            minus = list(point64)
            plus[k], minus[k] = p + eps * d, p - eps * d
            numeric = (float(f_cost(*plus)) - float(f_cost(*minus))) / (2 * eps)
            symbolic = float(np.sum(analytic[k].astype("float64") * d))
            if not np.isclose(symbolic, numeric, rtol=rtol, atol=atol):
                raise GradientMismatch(f"gradient of input {k} (shape {p.shape}, {dtype}): symbolic "
                                       f"directional derivative {symbolic:.6g} vs numeric {numeric:.6g}")
    return True


def _static(v):
    shape = v.type.shape
    if not all(isinstance(d, int) for d in shape):
        raise GraphcError("verify_grad: the output shape must follow from the point's shapes")
    return shape
