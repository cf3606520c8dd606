"""theano.tensor (`import graphc.theano.tensor as T`): graphc's tensor API by Theano's names."""
from ...grad import grad
from ...ir.alloc import alloc, eye, fill, ones, zeros
from ...ir.constructors import (as_variable, constant, dmatrix, dscalar, dvector, fmatrix,
                                fscalar, fvector, imatrix, iscalar, ivector, lmatrix, lscalar,
                                lvector, matrix, scalar, tensor3, tensor4, vector)
from ...ir.constructors import tensor as _tensor
from ...ir.graph import Variable
from ...ir.ops.blas import batched_dot, dot
from ...ir.subtensor_update import inc_subtensor, set_subtensor
from ...ir.ops.elemwise import cast
from ...ir.ops.reduce import argmax, argmin, mean, var
from ...ir.ops.shape import (arange, concatenate, dimshuffle, flatten, reshape, stack,
                             transpose)
from ...math import (abs_, clip, cos, eq, exp, ge, gt, le, log, log1p, lt, max, maximum, min,
                     minimum, neq, ones_like, pow, prod, sign, sin, sqr,
                     sqrt, sum, switch, tanh, zeros_like)
from ...math import add, erf, expm1, mul, neg, softplus, sub, true_div  # noqa: F401
from ...math import sqrt as _sqrt
from . import nnet, shared_randomstreams, signal  # noqa: F401

as_tensor_variable = as_variable
TensorVariable = Variable
sgn = sign


def std(x, axis=None, keepdims=False):
    return _sqrt(var(x, axis, keepdims))


def row(name=None, dtype=None):
    return _tensor(name, (1, None), dtype)


def col(name=None, dtype=None):
    return _tensor(name, (None, 1), dtype)


def tensor(*args, **kwargs):
    """Theano's T.tensor(dtype, broadcastable, name) or graphc's tensor(name, shape, dtype)."""
    if args and isinstance(args[0], str) and len(args) > 1 and isinstance(args[1], (list, tuple)) \
            and all(isinstance(b, bool) for b in args[1]):
        dtype, broadcastable = args[0], args[1]
        name = args[2] if len(args) > 2 else kwargs.get("name")
        return _tensor(name, tuple(1 if b else None for b in broadcastable), dtype)
    return _tensor(*args, **kwargs)
