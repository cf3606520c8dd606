"""Leaves of a graph: inputs (scalar ... tensor4, tensor), constants and shared variables."""
import numpy as np
import sympy

from ..config import config
from ..errors import GraphcTypeError
from .graph import Constant, Op, SharedVariable, Variable
from .ops.shape import dim_value
from .types import TensorType, check_dtype, numpy_dtype_for_python_scalar


def tensor(name=None, shape=None, dtype=None, ndim=None):
    """An input. `shape` entries: ints, graphc.dim(...), names, or None (any size)."""
    if shape is None:
        if ndim is None:
            raise GraphcTypeError(f"tensor {name!r}: give a shape or an ndim")
        shape = (None,) * ndim
    return Variable(TensorType(check_dtype(dtype or config.floatX, f"tensor {name!r} dtype"), shape),
                    name=name)


def scalar(name=None, dtype=None):
    return tensor(name, (), dtype)


def vector(name=None, dtype=None, shape=(None,)):
    return tensor(name, shape, dtype)


def matrix(name=None, dtype=None, shape=(None, None)):
    return tensor(name, shape, dtype)


def tensor3(name=None, dtype=None, shape=(None,) * 3):
    return tensor(name, shape, dtype)


def tensor4(name=None, dtype=None, shape=(None,) * 4):
    return tensor(name, shape, dtype)


def _typed(prefix, dtype):
    def make(name=None, shape=None):
        kw = {} if shape is None else {"shape": shape}
        return {"s": scalar, "v": vector, "m": matrix}[prefix](name, dtype, **kw)
    return make


iscalar, ivector, imatrix = _typed("s", "int32"), _typed("v", "int32"), _typed("m", "int32")
lscalar, lvector, lmatrix = _typed("s", "int64"), _typed("v", "int64"), _typed("m", "int64")
fscalar, fvector, fmatrix = _typed("s", "float32"), _typed("v", "float32"), _typed("m", "float32")
dscalar, dvector, dmatrix = _typed("s", "float64"), _typed("v", "float64"), _typed("m", "float64")


def constant(value, name=None, dtype=None):
    arr = np.asarray(value, dtype=dtype)
    if arr.dtype == np.float64 and dtype is None and isinstance(value, (float, list, tuple)):
        arr = arr.astype(config.floatX)
    return Constant(arr, name)


def shared(value, name=None, borrow=False):
    """State kept across calls. The value is copied unless borrow=True, where a C-contiguous,
    writeable numpy array in native byte order is used as it is: the function's updates then
    write into that array (Theano's aliasing on the CPU)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = np.asarray(value, dtype=numpy_dtype_for_python_scalar(value, config.floatX))
    value = value if isinstance(value, np.ndarray) else np.asarray(value)
    if value.dtype.name not in ("float32", "float64", "int32", "int64", "bool"):
        raise GraphcTypeError(f"shared {name!r}: dtype {value.dtype.name} is not supported "
                              "(use float32, float64, int32, int64 or bool)")
    return SharedVariable(value, name, borrow=borrow)


def as_variable(x):
    """Graph variable for x: variables pass through; python scalars become weak constants."""
    if isinstance(x, Variable):
        return x
    if isinstance(x, (bool, int, float, np.bool_)) and not isinstance(x, np.ndarray):
        dtype = numpy_dtype_for_python_scalar(x, "float64")
        c = Constant(np.asarray(x, dtype=dtype))
        c.weak = True
        return c
    if isinstance(x, (np.ndarray, np.generic, list, tuple)):
        arr = np.asarray(x)
        if arr.dtype.name not in ("float32", "float64", "int32", "int64", "bool"):
            if arr.dtype.kind == "f":
                arr = arr.astype(config.floatX)
            elif arr.dtype.kind in "iu":
                arr = arr.astype("int64")
            else:
                raise GraphcTypeError(f"cannot make a graph constant from dtype {arr.dtype}")
        return Constant(arr)
    if isinstance(x, sympy.Basic):
        return dim_value(x)
    raise GraphcTypeError(f"cannot use {type(x).__name__} {x!r} as a graph variable")


Op.as_variable = staticmethod(as_variable)  # how every op converts its Python-valued inputs
