"""Elementwise and reduction functions of the public API (G.exp, G.maximum, G.sum, ...)."""
from .ir.ops import elemwise as _e
from .ir.ops import reduce as _r
from .ir.ops import scalar_fns as _sf

__all__ = ["sqrt", "sqr", "square", "clip", "eq", "neq", "lt", "le", "gt", "ge", "pow", "power",
           "sum", "prod", "max", "min", "add", "sub", "mul", "true_div", "neg", "ones_like",
           "zeros_like"]

# Every table function with public names is exported under them (exp, erf, maximum, where, ...).
for _row in _sf.TABLE:
    for _name in _row.public:
        if _row.name not in _e.FUNCTION_OPS:
            raise ImportError(f"scalar function {_row.name} has public names {_row.public} but no "
                              "op line in graphc/ir/ops/elemwise.py (_fn_op)")
        globals()[_name] = _e.FUNCTION_OPS[_row.name]
        __all__.append(_name)

sqrt = _e.sqrt_op
sqr = square = _e.square_op
clip = _e.clip_op
eq, neq, lt, le, gt, ge = _e.eq_op, _e.neq_op, _e.lt_op, _e.le_op, _e.gt_op, _e.ge_op
pow = power = _e.pow_op  # noqa: A001
add, sub, mul, true_div, neg = _e.add_op, _e.sub_op, _e.mul_op, _e.div_op, _e.neg_op


def sum(x, axis=None, keepdims=False):  # noqa: A001
    return _r._reduce("sum", x, axis, keepdims)


def prod(x, axis=None, keepdims=False):
    return _r._reduce("prod", x, axis, keepdims)


def max(x, axis=None, keepdims=False):  # noqa: A001
    return _r._reduce("max", x, axis, keepdims)


def min(x, axis=None, keepdims=False):  # noqa: A001
    return _r._reduce("min", x, axis, keepdims)


def zeros_like(x):
    import numpy as np
    from .ir.constructors import as_variable, constant
    x = as_variable(x)
    return _e.second_op(x, constant(np.zeros((), x.dtype)))


def ones_like(x):
    import numpy as np
    from .ir.constructors import as_variable, constant
    x = as_variable(x)
    return _e.second_op(x, constant(np.ones((), x.dtype)))
