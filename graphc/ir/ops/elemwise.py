"""Elementwise ops: one class whose behaviour is a sympy scalar expression over a0, a1, ...

Expressions are frozen (scalar_expr): sympy never simplifies them, so substituting one into
another (fusion, constant inlining) keeps numpy's values at nan, inf and -0. Gradients come from
sympy.diff, the numpy reference from lambdify, the C code from the printer in graphc.codegen.
The functions an expression may apply are the rows of scalar_fns.TABLE.
"""
import functools

import numpy as np
import sympy

from ...errors import GraphcTypeError
from ..graph import Constant, LazyText, Op
from ..types import FLOAT_DTYPES, TensorType, result_dtype
from . import scalar_expr as se
from . import scalar_fns as sf

ARGS = sympy.symbols("a0:64", real=True)


class Elemwise(Op):
    """Applies `expr` (over ARGS[:nin]) elementwise with numpy broadcasting.

    dtype_rule: "promote" (inputs promoted to one dtype, output the same), "float" (same but
    integers become floatX), "bool" (inputs promoted, output bool), "logic" (inputs bool, output
    bool) or a dtype name (a cast: input kept, output that dtype).
    """
    __props__ = ("name", "expr", "nin", "dtype_rule")

    def __init__(self, name, expr, nin, dtype_rule="promote"):
        self.name, self.expr, self.nin, self.dtype_rule = name, expr, nin, dtype_rule

    def __str__(self):
        return self.name

    @functools.cached_property
    def cond_inputs(self):
        """Inputs read as booleans: a where's condition, or an argument of a logical op."""
        found = set()
        for sub in sympy.preorder_traversal(self.expr):
            if isinstance(sub, sf.where) and sub.args[0] in ARGS:
                found.add(ARGS.index(sub.args[0]))
            if isinstance(sub, sf.LOGICAL):
                found.update(ARGS.index(x) for x in sub.args if x in ARGS)
        return tuple(sorted(found))

    def make_node(self, *inputs):
        from ..constructors import as_variable
        inputs = [as_variable(i) for i in inputs]
        if len(inputs) != self.nin:
            raise GraphcTypeError(f"{self.name} takes {self.nin} inputs, got {len(inputs)}")
        inputs = self._cast_inputs(inputs)
        return super().make_node(*inputs)

    def compute_dtype(self, inputs):
        """The dtype the inputs are converted to before the scalar expression runs."""
        rule = self.dtype_rule
        data = [v for i, v in enumerate(inputs) if i not in self.cond_inputs]
        if rule == "logic":
            return "bool"
        if rule not in ("promote", "float", "bool"):
            return None  # a cast keeps its input
        strong = [v.dtype for v in data if not getattr(v, "weak", False)]
        weak = [("float" if v.dtype in FLOAT_DTYPES else "int") for v in data if getattr(v, "weak", False)]
        dt = result_dtype(strong, weak)
        if rule == "float" and dt not in FLOAT_DTYPES:
            from ...config import config
            dt = config.floatX
        return dt

    def _cast_inputs(self, inputs):
        target = self.compute_dtype(inputs)
        out = []
        for i, v in enumerate(inputs):
            want = "bool" if i in self.cond_inputs else target
            if want is None or v.dtype == want:
                out.append(v)
            elif isinstance(v, Constant) and getattr(v, "weak", False):
                out.append(_weak_constant(v.data.astype(want)))
            else:
                out.append(cast(v, want))
        return out

    def infer(self, input_types, ctx):
        shape = broadcast_shapes([t.shape for t in input_types], ctx)
        rule = self.dtype_rule
        if rule in ("bool", "logic"):
            dtype = "bool"
        elif rule in ("promote", "float"):
            data = [t for i, t in enumerate(input_types) if i not in self.cond_inputs]
            dtype = data[0].dtype if data else "bool"
        else:
            dtype = rule
        return [TensorType(dtype, shape)]

    @functools.cached_property
    def _numpy_fn(self):
        # numpy the module, not the name "numpy": for the name, lambdify runs
        # `from numpy import *`, which imports numpy.f2py (~0.5-1 s of the first compile).
        return sympy.lambdify(ARGS[:self.nin], self.expr, modules=[sf.NUMPY_IMPLS, np])

    def reference(self, *arrays):
        shape = np.broadcast_shapes(*[a.shape for a in arrays])
        with np.errstate(all="ignore"):
            res = self._numpy_fn(*arrays)
        out_dtype = self.infer([TensorType(a.dtype.name, a.shape) for a in arrays], _NoCtx())[0].dtype
        return np.asarray(np.broadcast_to(np.asarray(res).astype(out_dtype, copy=False), shape), order="C")

    def grad(self, node, output_grads):
        (g,) = output_grads
        out = node.outputs[0]
        if out.dtype not in FLOAT_DTYPES:
            return [None] * self.nin
        grads = []
        for i, inp in enumerate(node.inputs):
            if inp.dtype not in FLOAT_DTYPES or i in self.cond_inputs:
                grads.append(None)
                continue
            d_times_g = _grad_expr(self.expr, self.nin, i)
            if d_times_g is None:
                grads.append(None)
                continue
            # Named by op, not argument: equal expressions (d(a+b)/da == d(a+b)/db) then merge.
            op = Elemwise(f"d{self.name}", d_times_g, self.nin + 2, "promote")
            gi = op(*_shape_only_as_gradient(d_times_g, list(node.inputs) + [out], g), g)
            grads.append(sum_to_shape(gi, inp.type))
        return grads


def _shape_only_as_gradient(expr, inputs, g):
    """The d-op's inputs (the op's, then its output), each one the derivative does not read and
    of g's type replaced by g: read for its shape only, a value would be kept alive for nothing
    (a scan would stack z for BPTT when the gradients read only the saved activations)."""
    used = _symbols_of(expr)
    return [v if ARGS[k] in used or v.type != g.type else g for k, v in enumerate(inputs)]


@functools.lru_cache(maxsize=4096)
def _symbols_of(frozen_expr):
    return se.thaw(frozen_expr).free_symbols


@functools.lru_cache(maxsize=4096)
def _grad_expr(frozen_expr, nin, i):
    """d(expr)/d(argument i) times the output gradient (argument nin + 1; the output is argument
    nin), frozen, or None where it is 0. Pure, and remembered: the same ops recur in every layer,
    and sympy's diff took half of building a ResNet's gradient."""
    y_sym, g_sym = ARGS[nin], ARGS[nin + 1]
    # One op's expression (distinct arguments): the algebra sympy.diff does on it is wanted.
    expr = se.thaw(frozen_expr)
    d = sympy.diff(expr, ARGS[i])
    if d == 0:
        return None
    if isinstance(expr, sf.REUSE_OUTPUT):
        # The table's derivative in y, times the chain factor of the argument (1 for an op
        # that applies the function to one input).
        d = expr.row.from_output(y_sym)[0] * sympy.diff(expr.args[0], ARGS[i])
    elif isinstance(expr, sympy.Pow):
        d = d.subs(expr, y_sym)
    elif isinstance(expr, sf.relu):
        # relu(x) > 0 exactly where x > 0: reading the output lets x die after forward.
        d = sf.where(sympy.StrictGreaterThan(y_sym, 0), 1, 0)
    return sf.freeze(d * g_sym)


class _NoCtx:
    def equal(self, a, b, what=""):
        return a


def _broadcast_what(axis, shapes):
    return f"broadcast axis {axis} of shapes {[tuple(map(str, s)) for s in shapes]}"


def broadcast_shapes(shapes, ctx):
    ndim = max((len(s) for s in shapes), default=0)
    padded = [(1,) * (ndim - len(s)) + tuple(s) for s in shapes]
    out = []
    for axis in range(ndim):
        dims = [s[axis] for s in padded if s[axis] != 1]
        if not dims:
            out.append(1)
            continue
        d = dims[0]
        for other in dims[1:]:
            d = ctx.equal(d, other, LazyText(_broadcast_what, axis, shapes))
        out.append(d)
    return tuple(out)




def sum_to_shape(g, target_type):
    """Sum a broadcast gradient back to the shape of the input it belongs to."""
    from .reduce import reduce_sum
    from .shape import reshape
    tshape = target_type.shape
    lead = g.ndim - len(tshape)
    axes = list(range(lead))
    axes += [lead + i for i, d in enumerate(tshape) if d == 1 and g.type.shape[lead + i] != 1]
    if axes:
        g = reduce_sum(g, axes=tuple(axes), keepdims=True)
    if g.ndim != len(tshape) or any(a != b for a, b in zip(g.type.shape, tshape)):
        g = reshape(g, tshape)
    if g.dtype != target_type.dtype:
        g = cast(g, target_type.dtype)
    return g


def _weak_constant(data):
    c = Constant(data)
    c.weak = True
    return c


@functools.lru_cache(maxsize=None)
def _cast_op(dtype):
    return Elemwise(f"cast_{dtype}", sf.make_cast(dtype)(ARGS[0]), 1, dtype)


def cast(x, dtype):
    from ..constructors import as_variable
    from ..types import check_dtype
    x = as_variable(x)
    dtype = check_dtype(dtype)
    return x if x.dtype == dtype else _cast_op(dtype)(x)


def _op(name, expr, nin, rule="promote"):
    return Elemwise(name, sf.freeze(expr), nin, rule)


# The op applying each table function on its own: graphc.math exports these by the row's names.
FUNCTION_OPS = {}


def _fn_op(fn, rule="promote", name=None):
    """The op that applies table function `fn` to its arguments."""
    row = sf.ROWS[fn]
    op = FUNCTION_OPS[fn] = _op(name or fn, sf.function(fn)(*ARGS[:row.nargs]), row.nargs, rule)
    return op


class PowOp(Elemwise):
    """a ** b: integers get the table's ipow (exact, and defined for negative exponents)."""

    def make_node(self, *inputs):
        node = super().make_node(*inputs)
        if node.outputs[0].dtype not in FLOAT_DTYPES:
            return ipow_op.make_node(*node.inputs)
        return node


a, b, c = ARGS[:3]
add_op = _op("add", a + b, 2)
sub_op = _op("sub", a - b, 2)
mul_op = _op("mul", a * b, 2)
div_op = _op("true_div", a / b, 2, "float")
floordiv_op = _fn_op("floordiv", name="floor_div")
mod_op = _fn_op("mod")
fmod_op = _fn_op("fmod", "float")
pow_op = PowOp("pow", sf.freeze(a ** b), 2)
ipow_op = _fn_op("ipow", name="pow")
neg_op = _op("neg", -a, 1)
exp_op = _fn_op("exp", "float")
expm1_op = _fn_op("expm1", "float")
log_op = _fn_op("log", "float")
log1p_op = _fn_op("log1p", "float")
sqrt_op = _op("sqrt", sympy.sqrt(a), 1, "float")
square_op = _op("sqr", a * a, 1)
abs_op = _fn_op("absval", name="abs")
sign_op = _fn_op("sgn", name="sign")
tanh_op = _fn_op("tanh", "float")
sin_op = _fn_op("sin", "float")
cos_op = _fn_op("cos", "float")
erf_op = _fn_op("erf", "float")
sigmoid_op = _fn_op("sigmoid", "float")
softplus_op = _fn_op("softplus", "float")
relu_op = _fn_op("relu")
maximum_op = _fn_op("maximum")
minimum_op = _fn_op("minimum")
clip_op = _op("clip", sf.minimum(sf.maximum(a, b), c), 3)
where_op = _fn_op("where")
eq_op = _op("eq", sympy.Eq(a, b, evaluate=False), 2, "bool")
neq_op = _op("neq", sympy.Ne(a, b, evaluate=False), 2, "bool")
lt_op = _op("lt", sympy.StrictLessThan(a, b, evaluate=False), 2, "bool")
le_op = _op("le", sympy.LessThan(a, b, evaluate=False), 2, "bool")
gt_op = _op("gt", sympy.StrictGreaterThan(a, b, evaluate=False), 2, "bool")
ge_op = _op("ge", sympy.GreaterThan(a, b, evaluate=False), 2, "bool")
and_op = _fn_op("logical_and", "logic", name="and")
or_op = _fn_op("logical_or", "logic", name="or")
xor_op = _fn_op("logical_xor", "logic", name="xor")
not_op = _fn_op("logical_not", "logic", name="not")
class Second(Elemwise):
    """second(x, v): v broadcast to the broadcast shape of x and v (x is read for its shape only)."""

    def __init__(self):
        super().__init__("second", b, 2, "keep")

    def compute_dtype(self, inputs):
        return None

    def infer(self, input_types, ctx):
        shape = broadcast_shapes([t.shape for t in input_types], ctx)
        return [TensorType(input_types[1].dtype, shape)]


second_op = Second()
