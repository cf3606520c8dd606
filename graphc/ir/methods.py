"""numpy-like operators and methods of Variable, from the tensor API: install_on(Variable)
(graphc/ir/__init__.py) gives the core's Variable these, so the core imports no op."""

from ..errors import GraphcTypeError
from .graph import Variable
from .indexing_parse import getitem
from .ops import elemwise, reduce, shape as shape_ops
from .ops.blas import dot, matmul


class ShapeTuple(tuple):
    """x.shape: a tuple of scalar int64 variables that also know their symbolic value."""


class TensorMethods:
    # arithmetic -----------------------------------------------------------------------
    def __add__(self, o): return elemwise.add_op(self, o)
    def __radd__(self, o): return elemwise.add_op(o, self)
    def __sub__(self, o): return elemwise.sub_op(self, o)
    def __rsub__(self, o): return elemwise.sub_op(o, self)
    def __mul__(self, o): return elemwise.mul_op(self, o)
    def __rmul__(self, o): return elemwise.mul_op(o, self)
    def __truediv__(self, o): return elemwise.div_op(self, o)
    def __rtruediv__(self, o): return elemwise.div_op(o, self)
    def __floordiv__(self, o): return elemwise.floordiv_op(self, o)
    def __rfloordiv__(self, o): return elemwise.floordiv_op(o, self)
    def __mod__(self, o): return elemwise.mod_op(self, o)
    def __pow__(self, o):
        if isinstance(o, (int, float)) and o == 2:
            return elemwise.square_op(self)
        return elemwise.pow_op(self, o)
    def __rpow__(self, o): return elemwise.pow_op(o, self)
    def __neg__(self): return elemwise.neg_op(self)
    def __pos__(self): return self
    def __abs__(self): return elemwise.abs_op(self)
    def __matmul__(self, o):
        return matmul(self, o)
    def __rmatmul__(self, o):
        return matmul(o, self)

    # comparisons and logic (elementwise, as in numpy) ------------------------------------
    def __lt__(self, o): return elemwise.lt_op(self, o)
    def __le__(self, o): return elemwise.le_op(self, o)
    def __gt__(self, o): return elemwise.gt_op(self, o)
    def __ge__(self, o): return elemwise.ge_op(self, o)
    def __and__(self, o): return elemwise.and_op(self, o)
    def __rand__(self, o): return elemwise.and_op(o, self)
    def __or__(self, o): return elemwise.or_op(self, o)
    def __ror__(self, o): return elemwise.or_op(o, self)
    def __xor__(self, o): return elemwise.xor_op(self, o)
    def __invert__(self): return elemwise.not_op(self)

    def eq(self, o): return elemwise.eq_op(self, o)
    def neq(self, o): return elemwise.neq_op(self, o)

    # reductions -------------------------------------------------------------------------
    def sum(self, axis=None, keepdims=False): return reduce._reduce("sum", self, axis, keepdims)
    def prod(self, axis=None, keepdims=False): return reduce._reduce("prod", self, axis, keepdims)
    def max(self, axis=None, keepdims=False): return reduce._reduce("max", self, axis, keepdims)
    def min(self, axis=None, keepdims=False): return reduce._reduce("min", self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return reduce.mean(self, axis, keepdims)
    def var(self, axis=None, keepdims=False): return reduce.var(self, axis, keepdims)
    def argmax(self, axis=None, keepdims=False): return reduce.argmax(self, axis, keepdims)
    def argmin(self, axis=None, keepdims=False): return reduce.argmin(self, axis, keepdims)

    # shape ------------------------------------------------------------------------------
    @property
    def shape(self):
        dv = shape_ops.dim_value
        return ShapeTuple(dv(d) for d in self.type.shape)

    @property
    def T(self): return shape_ops.transpose(self)
    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (list, tuple)):
            axes = axes[0]
        return shape_ops.transpose(self, axes or None)
    def dimshuffle(self, *pattern): return shape_ops.dimshuffle(self, *pattern)
    def reshape(self, *shape, ndim=None):
        if len(shape) == 1 and isinstance(shape[0], (list, tuple)):
            shape = shape[0]
        return shape_ops.reshape(self, shape)
    def flatten(self, ndim=1): return shape_ops.flatten(self, ndim)
    def astype(self, dtype): return elemwise.cast(self, dtype)
    def __len__(self):
        raise GraphcTypeError("len() of a symbolic variable is not an int; use x.shape[0]")

    def __getitem__(self, index):
        return getitem(self, index)

    def __iter__(self):
        raise GraphcTypeError("a symbolic variable cannot be iterated over")

    def __array__(self, *a, **k):
        raise GraphcTypeError(f"{self} is symbolic and has no numpy value; compile a function "
                              "with graphc.function to compute it")


def install_on(cls):
    """Give `cls` (the core's Variable) every operator and method above that it does not define
    itself (its own __repr__, __bool__, __hash__ stay)."""
    for name, value in vars(TensorMethods).items():
        if name not in ("__dict__", "__weakref__", "__module__", "__doc__", "__qualname__") \
                and name not in vars(cls):
            setattr(cls, name, value)


install_on(Variable)
