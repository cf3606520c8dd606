"""numpy-like operators and methods on Variable (imports are inside methods: they need the ops,
which need Variable)."""
import numpy as np


def _ops():
    from .ops import elemwise, reduce, shape, indexing
    return elemwise, reduce, shape, indexing


class ShapeTuple(tuple):
    """x.shape: a tuple of scalar int64 variables that also know their symbolic value."""


class TensorMethods:
    # arithmetic -----------------------------------------------------------------------
    def __add__(self, o): return _ops()[0].add_op(self, o)
    def __radd__(self, o): return _ops()[0].add_op(o, self)
    def __sub__(self, o): return _ops()[0].sub_op(self, o)
    def __rsub__(self, o): return _ops()[0].sub_op(o, self)
    def __mul__(self, o): return _ops()[0].mul_op(self, o)
    def __rmul__(self, o): return _ops()[0].mul_op(o, self)
    def __truediv__(self, o): return _ops()[0].div_op(self, o)
    def __rtruediv__(self, o): return _ops()[0].div_op(o, self)
    def __floordiv__(self, o): return _ops()[0].floordiv_op(self, o)
    def __rfloordiv__(self, o): return _ops()[0].floordiv_op(o, self)
    def __mod__(self, o): return _ops()[0].mod_op(self, o)
    def __pow__(self, o):
        if isinstance(o, (int, float)) and o == 2:
            return _ops()[0].square_op(self)
        return _ops()[0].pow_op(self, o)
    def __rpow__(self, o): return _ops()[0].pow_op(o, self)
    def __neg__(self): return _ops()[0].neg_op(self)
    def __pos__(self): return self
    def __abs__(self): return _ops()[0].abs_op(self)
    def __matmul__(self, o):
        from .ops.blas import dot
        return dot(self, o)
    def __rmatmul__(self, o):
        from .ops.blas import dot
        return dot(o, self)

    # comparisons and logic (elementwise, as in numpy) ------------------------------------
    def __lt__(self, o): return _ops()[0].lt_op(self, o)
    def __le__(self, o): return _ops()[0].le_op(self, o)
    def __gt__(self, o): return _ops()[0].gt_op(self, o)
    def __ge__(self, o): return _ops()[0].ge_op(self, o)
    def __and__(self, o): return _ops()[0].and_op(self, o)
    def __rand__(self, o): return _ops()[0].and_op(o, self)
    def __or__(self, o): return _ops()[0].or_op(self, o)
    def __ror__(self, o): return _ops()[0].or_op(o, self)
    def __xor__(self, o): return _ops()[0].xor_op(self, o)
    def __invert__(self): return _ops()[0].not_op(self)

    def eq(self, o): return _ops()[0].eq_op(self, o)
    def neq(self, o): return _ops()[0].neq_op(self, o)

    # reductions -------------------------------------------------------------------------
    def sum(self, axis=None, keepdims=False): return _ops()[1]._reduce("sum", self, axis, keepdims)
    def prod(self, axis=None, keepdims=False): return _ops()[1]._reduce("prod", self, axis, keepdims)
    def max(self, axis=None, keepdims=False): return _ops()[1]._reduce("max", self, axis, keepdims)
    def min(self, axis=None, keepdims=False): return _ops()[1]._reduce("min", self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return _ops()[1].mean(self, axis, keepdims)
    def var(self, axis=None, keepdims=False): return _ops()[1].var(self, axis, keepdims)
    def argmax(self, axis=None, keepdims=False): return _ops()[1].argmax(self, axis, keepdims)
    def argmin(self, axis=None, keepdims=False): return _ops()[1].argmin(self, axis, keepdims)

    # shape ------------------------------------------------------------------------------
    @property
    def shape(self):
        dv = _ops()[2].dim_value
        return ShapeTuple(dv(d) for d in self.type.shape)

    @property
    def T(self): return _ops()[2].transpose(self)
    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (list, tuple)):
            axes = axes[0]
        return _ops()[2].transpose(self, axes or None)
    def dimshuffle(self, *pattern): return _ops()[2].dimshuffle(self, *pattern)
    def reshape(self, *shape, ndim=None):
        if len(shape) == 1 and isinstance(shape[0], (list, tuple)):
            shape = shape[0]
        return _ops()[2].reshape(self, shape)
    def flatten(self, ndim=1): return _ops()[2].flatten(self, ndim)
    def astype(self, dtype): return _ops()[0].cast(self, dtype)
    def __len__(self):
        from ..errors import GraphcTypeError
        raise GraphcTypeError("len() of a symbolic variable is not an int; use x.shape[0]")

    def __getitem__(self, index):
        from .indexing_parse import getitem
        return getitem(self, index)

    def __iter__(self):
        from ..errors import GraphcTypeError
        raise GraphcTypeError("a symbolic variable cannot be iterated over")

    def __array__(self, *a, **k):
        from ..errors import GraphcTypeError
        raise GraphcTypeError(f"{self} is symbolic and has no numpy value; compile a function "
                              "with graphc.function to compute it")
