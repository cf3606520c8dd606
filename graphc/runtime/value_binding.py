"""Binding value dims (graphc/ir/value_dims.py) at call time: the start and length (and run-time
step) of each dynamic slice, computed from the bounds' values and clipped as numpy clips, after
the input shapes have bound the other dims and before the program runs."""
import numpy as np
import sympy

from ..errors import InputError
from ..ir.graph import Constant, SharedVariable, toposort
from ..ir.ops.shape import DimValue


class ValueBinder:
    """Computes the value dims of one function. `symbols` (the checker's dims, bound from input
    shapes) grows by the value dims that nothing else binds; the others are checked."""

    def __init__(self, value_dims, inputs, resolver, symbols, compile_expr):
        self.value_dims = list(value_dims)
        self.input_pos = {v: k for k, v in enumerate(inputs)}
        self.plan = []  # per value dim: (how, where) for its start, its length (and run-time step)
        for vd in self.value_dims:
            for v in (vd.start, vd.stop, vd.step if vd.step_sym is not None else None):
                if v is not None:
                    self._check_leaves(v, vd)
            steps = []
            for sym in vd.symbols:
                r = resolver.resolve(sym)
                if isinstance(r, int):
                    steps.append(("equal", r))
                elif isinstance(r, sympy.Symbol) and r not in symbols:
                    symbols.append(r)
                    steps.append(("bind", len(symbols) - 1))
                elif isinstance(r, sympy.Symbol):
                    steps.append(("same", symbols.index(r)))
                else:
                    steps.append(("expr", r))
            self.plan.append(steps)
        self.symbols, self.resolver, self._compile_expr = symbols, resolver, compile_expr
        self._fns = {}  # size expression -> python function of the dims
        self._plans = {}  # bound variable -> its nodes in order, with their numpy functions
        self._int_fns = {}  # bound variable -> a function of (arrays, dims) on Python ints
        self._compiled = None  # what bind calls, made at its first call (_compile)

    def layout(self):
        """How the value dims bind, as plain data (a cached program fits when this is equal)."""
        return tuple(tuple((how, str(where)) for how, where in steps) for steps in self.plan)

    def _check_leaves(self, v, vd):
        for node in toposort([v]):
            for i in node.inputs:
                self._leaf_ok(i, vd)
        self._leaf_ok(v, vd)

    def _leaf_ok(self, v, vd):
        if v.owner is None and not isinstance(v, (Constant, SharedVariable)) \
                and v not in self.input_pos:
            raise InputError(f"the bounds of {vd.label} read {v.label()}, which is not an input "
                             "of the function; add it to inputs")

    def _eval_expr(self, expr, dims):
        fn = self._fns.get(expr)
        if fn is None:
            fn = self._fns[expr] = self._compile_expr(expr, self.symbols)
        return fn(*dims)

    def _compile(self):
        """Per value dim, the functions bind calls: its axis size (of the dims), its bounds and
        step (of the arguments and dims) and its plan with expressions compiled. Made at the
        first call: a call then costs a few us (the givens minibatch step's C fast path)."""
        compiled = []
        for vd, steps in zip(self.value_dims, self.plan):
            size_fn = self._compile_expr(self.resolver.resolve(vd.size), self.symbols)
            lo_fn, hi_fn = (None if v is None else self._scalar_fn(v) for v in (vd.start, vd.stop))
            step_fn = (lambda arrays, dims, step=vd.step: step) if vd.step_sym is None \
                else self._scalar_fn(vd.step)
            plan = tuple((how, self._compile_expr(where, self.symbols) if how == "expr" else where)
                         for how, where in steps)
            compiled.append((vd, size_fn, lo_fn, hi_fn, step_fn, plan))
        self._compiled = compiled
        return compiled

    def bind(self, arrays, dims):
        """Fill `dims` (the checker's list, in self.symbols order) with the value dims."""
        for vd, size_fn, lo_fn, hi_fn, step_fn, plan in self._compiled or self._compile():
            size = size_fn(*dims)
            lo = None if lo_fn is None else lo_fn(arrays, dims)
            hi = None if hi_fn is None else hi_fn(arrays, dims)
            step = step_fn(arrays, dims)
            if step == 0:
                raise InputError(f"the slice {vd.label} has step 0 for these inputs; a slice "
                                 "step must be a nonzero integer (negative steps go backwards)")
            r = range(size)[slice(lo, hi, step)]
            n = len(r)
            values = (r.start if n else 0, n, step)
            for (how, where), value, what in zip(plan, values, ("start", "length", "step")):
                if how == "bind":
                    dims[where] = value
                    continue
                want = where if how == "equal" else dims[where] if how == "same" \
                    else where(*dims)
                if value != want:
                    raise InputError(f"the slice {vd.label} has {what} {value} for these inputs "
                                     f"(bounds {lo}, {hi} on a size of {size}), but the graph "
                                     f"needs {want} there (another tensor it is combined with); "
                                     "give bounds that make the sizes agree")
        return dims

    def _scalar_fn(self, var):
        """`var`'s value as a function of (arguments, dims): Python integer arithmetic when it is
        made of that, else the ops' numpy references (_scalar)."""
        fast = self._int_fn(var)
        if fast is not None:
            return fast
        return lambda arrays, dims: self._scalar(var, arrays, dims)

    def _scalar(self, var, arrays, dims):
        """The value of an integer scalar of the graph: integer arithmetic on Python ints when
        the bound is made of it (the usual `index * batch_size`: ~1 us), else by the ops'
        numpy references (an elementwise op by its numpy function alone)."""
        fast = self._int_fns.get(var)
        if fast is None:
            fast = self._int_fns[var] = self._int_fn(var) or False
        if fast is not False:
            return fast(arrays, dims)
        plan = self._plans.get(var)
        if plan is None:
            plan = self._plans[var] = [(node, _elemwise_fn(node)) for node in toposort([var])]
        env = {}
        for node, fn in plan:
            args = [env[i] if i in env else self._leaf(i, arrays) for i in node.inputs]
            if fn is not None:
                with np.errstate(all="ignore"):
                    env[node.outputs[0]] = np.asarray(fn(*args)).astype(node.outputs[0].dtype)
                continue
            if getattr(node.op, "needs_dims", False):
                res = node.op.reference(*args, dims=self._dim_env(node, dims))
            else:
                res = node.op.reference(*args)
            res = res if node.op.nout > 1 else (res,)
            for o, r in zip(node.outputs, res):
                env[o] = np.asarray(r).astype(o.dtype, copy=False)
        value = env[var] if var in env else self._leaf(var, arrays)
        return int(np.asarray(value).reshape(()))

    def _int_fn(self, var):
        """`var` as nested Python closures over ints, or None if an op is not integer arithmetic
        (Python ints do not wrap at 2^63 as int64 does; a bound that large is clipped anyway)."""
        if var.ndim != 0 or var.dtype not in ("int32", "int64"):
            return None
        if var.owner is None:
            if isinstance(var, Constant):
                value = int(var.data)
                return lambda arrays, dims: value
            if isinstance(var, SharedVariable):
                return lambda arrays, dims: int(var._value)
            k = self.input_pos[var]
            return lambda arrays, dims: int(arrays[k])
        op = var.owner.op
        if isinstance(op, DimValue):  # x.shape[0] in a bound
            expr = self.resolver.resolve(op.expr)
            return lambda arrays, dims: self._eval_expr(expr, dims)
        fn = _INT_OPS.get(getattr(op, "name", None))
        if fn is None or op.nout != 1:
            return None
        args = [self._int_fn(i) for i in var.owner.inputs]
        if any(a is None for a in args):
            return None
        if len(args) == 1:
            (a,) = args
            return lambda arrays, dims: fn(a(arrays, dims))
        a, b = args
        return lambda arrays, dims: fn(a(arrays, dims), b(arrays, dims))

    def _leaf(self, v, arrays):
        if isinstance(v, Constant):
            return v.data
        if isinstance(v, SharedVariable):
            return v._value
        return arrays[self.input_pos[v]]

    def _dim_env(self, node, dims):
        """The values of the dims an op reads (x.shape[0] in a bound), by the user's symbols."""
        found = set()
        for v in node.inputs + node.outputs:
            for d in v.type.shape:
                if isinstance(d, sympy.Basic):
                    found |= d.free_symbols
        for p in node.op.__props__:
            value = getattr(node.op, p)
            if isinstance(value, sympy.Basic):
                found |= value.free_symbols
        return {s: self._eval_expr(self.resolver.resolve(s), dims) for s in found}


def _elemwise_fn(node):
    """The numpy function of an elementwise op on scalars (None for other ops)."""
    fn = getattr(node.op, "_numpy_fn", None)
    if fn is None or node.op.nout != 1 or any(v.ndim for v in node.inputs + node.outputs):
        return None
    return fn


# Elementwise ops on integer scalars as Python functions (numpy's semantics: floor division and
# a modulo with the divisor's sign; x // 0 and x % 0 give 0 as the compiled kernels do).
_INT_OPS = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "floor_div": lambda a, b: a // b if b else 0, "mod": lambda a, b: a % b if b else 0,
    "neg": lambda a: -a, "cast_int64": lambda a: a, "cast_int32": lambda a: a,
    "maximum": max, "minimum": min,
}
