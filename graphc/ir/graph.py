"""The graph: Variables produced by Nodes that apply Ops. Leaves are inputs, constants, shareds."""
import itertools
import threading

import numpy as np
import sympy

from ..errors import GraphcShapeError, GraphcTypeError
from .types import dim_str, dims_equal, TensorType, is_fresh

_ids = itertools.count()
_lock_orders = itertools.count()  # the fixed order in which calls take shared variables' locks


class Variable:
    """A symbolic tensor: the output `index` of node `owner`, or a leaf when owner is None.
    Its numpy-like operators and methods come from the tensor API (ir/methods.py)."""
    __array_priority__ = 1000  # so `ndarray * var` defers to our __rmul__

    def __init__(self, type, owner=None, index=0, name=None):
        self.type = type
        self.owner = owner
        self.index = index
        self.name = name
        self.id = next(_ids)

    def __setstate__(self, state):
        # An unpickled variable is a new one in this process: it gets its own id.
        self.__dict__.update(state)
        self.id = next(_ids)

    @property
    def dtype(self):
        return self.type.dtype

    @property
    def ndim(self):
        return self.type.ndim

    @property
    def static_shape(self):
        return self.type.shape

    def label(self):
        return self.name or f"v{self.id}"

    def __repr__(self):
        return f"{self.label()}:{self.type}"

    def __bool__(self):
        raise GraphcTypeError(f"the truth value of symbolic variable {self.label()} is unknown at "
                              "graph construction; use graphc.where/switch for conditionals")

    __hash__ = object.__hash__


class Constant(Variable):
    def __init__(self, data, name=None):
        data = np.asarray(data, order="C")
        super().__init__(TensorType(data.dtype.name, data.shape), None, 0, name)
        self.data = data
        self.data.setflags(write=False)

    def label(self):
        if self.name:
            return self.name
        if self.data.size == 1:
            return f"{self.data.reshape(()).item()!r}"
        return f"const{self.id}"

    def signature(self):
        return (self.data.dtype.name, self.data.shape, self.data.tobytes())


class SharedVariable(Variable):
    """State that lives across calls (weights, optimizer moments). Its shape is fixed."""

    def __init__(self, value, name=None, borrow=False):
        # borrow=True (Theano's aliasing) keeps the caller's array when compiled code can write
        # it in place: native byte order, C-contiguous and writeable; anything else is copied.
        if not (borrow and _can_alias(value)):
            value = _native(np.array(value, copy=True, order="C"))
        if value.dtype.name not in ("float32", "float64", "int32", "int64", "bool"):
            raise GraphcTypeError(f"shared {name!r}: unsupported dtype {value.dtype.name}")
        super().__init__(TensorType(value.dtype.name, value.shape), None, 0, name)
        self._value = value
        # Theano's default_update: the new value a function applies after each call unless its
        # updates name this variable or it is compiled with no_default_updates (random streams
        # advance their counter this way).
        self.default_update = None
        self._new_lock()

    def _new_lock(self):
        # Calls that touch this variable hold its lock (graphc/runtime/function.py), taken in
        # _lock_order with the others, so two threads never update or read it half-way.
        self._lock = threading.Lock()
        self._lock_order = next(_lock_orders)

    def __getstate__(self):
        state = dict(self.__dict__)
        del state["_lock"], state["_lock_order"]
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._new_lock()

    def get_value(self, borrow=False):
        if borrow:
            return self._value
        with self._lock:  # not in the middle of a call that updates it in place
            return self._value.copy()

    def set_value(self, value, borrow=False):
        if type(value) in (float, int, list, tuple):  # Python's, not numpy scalars
            value = _from_python(value, self)
        value = np.asarray(value)
        if value.dtype.name != self.dtype:
            raise GraphcTypeError(f"shared {self.label()}: expected dtype {self.dtype}, got "
                                  f"{value.dtype.name}; cast it with .astype('{self.dtype}')")
        if value.shape != self.type.shape:
            raise GraphcShapeError(f"shared {self.label()}: expected shape {self.type.shape}, got "
                                   f"{value.shape}; a shared variable keeps the shape it was created with")
        # borrow is a hint: compiled updates write into the value in place, so a read-only or
        # byte-swapped array (a read-only memmap, a view of bytes, big-endian data) is copied.
        value = value if borrow and _can_alias(value) else _native(np.array(value, order="C"))
        with self._lock:  # waits for a call that reads or updates the variable
            self._value = value

    def label(self):
        return self.name or f"shared{self.id}"


def _can_alias(value):
    return isinstance(value, np.ndarray) and value.flags.c_contiguous and value.flags.writeable \
        and value.dtype.isnative


def _from_python(value, sv):
    """A Python number or list for shared `sv`, in its dtype (Theano: set_value(1.0) on a
    float32 variable works; the float is rounded to float32). Ints go to float or int variables
    when they fit; floats only to float variables."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf" or (arr.dtype.kind == "f" and sv.dtype not in ("float32", "float64")):
        return arr  # the dtype check of set_value reports it
    with np.errstate(all="ignore"):
        out = arr.astype(sv.dtype)
    if arr.dtype.kind in "iu" and not np.array_equal(out, arr):
        raise GraphcTypeError(f"shared {sv.label()}: {value!r} does not fit in {sv.dtype}")
    return out


def _native(value):
    """value in this machine's byte order (compiled code reads memory as native numbers)."""
    return value if value.dtype.isnative else value.astype(value.dtype.newbyteorder("="))


def _where_what(where, what):
    return f"{where}: {what}"


class ShapeContext:
    """Collects the dim equalities an op's shape inference needs (checked or unified later)."""

    def __init__(self, where):
        self.where = where
        self.constraints = []

    def equal(self, a, b, what=""):
        if isinstance(a, int) and isinstance(b, int):
            if a != b:
                raise GraphcShapeError(f"{self.where}: {what} sizes differ: {a} vs {b}")
            return a
        if dims_equal(a, b):
            return a
        # (a message that explains itself at run time is kept as it is: graphc/runtime/checks.py;
        # others are formatted only if shown)
        self.constraints.append((a, b, what if hasattr(what, "explain")
                                 else LazyText(_where_what, self.where, what)))
        # Prefer the most informative side: an int, then a named dim, then a fresh one.
        if isinstance(b, int) or (is_fresh(a) and not isinstance(a, int)):
            return b
        return a


class LazyText:
    """A message printed only when needed (`what` of InferContext.equal): printing symbolic dims
    costs sympy milliseconds each, and most checks pass without a word."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __str__(self):
        return self.fn(*self.args)

    def __format__(self, spec):
        return format(str(self), spec)

    def __reduce__(self):  # pickled as its text (it may hold an op with unpicklable caches)
        return (str, (str(self),))


class Op:
    """An operation. Subclasses set __props__ (the parameters that make two ops equal)."""
    __props__ = ()
    nout = 1
    # The props holding an InnerGraph (graphc.ir.inner_graph): the pass manager optimizes each,
    # and rebuilds the op as type(op)(**props) with the optimized graphs.
    inner_graph_props = ()

    def _props(self):
        return tuple(getattr(self, p) for p in self.__props__)

    def __eq__(self, other):
        # Prop by prop, so that ops of one class with different first props (names) differ fast:
        # rewrites compare every node's op with the ones they look for.
        if self is other:
            return True
        if type(self) is not type(other):
            return False
        for p in self.__props__:
            a, b = getattr(self, p), getattr(other, p)
            if a is not b and not a == b:
                return False
        return True

    def __hash__(self):
        return hash((type(self).__name__,) + tuple(_hashable(p) for p in self._props()))

    def __str__(self):
        if not self.__props__:
            return type(self).__name__
        return f"{type(self).__name__}{{{', '.join(f'{p}={_prop_text(getattr(self, p))}' for p in self.__props__)}}}"

    # --- the faces of an op -------------------------------------------------------------
    def infer(self, input_types, ctx):
        """Return the output TensorTypes; record dim equalities in `ctx`."""
        raise NotImplementedError

    def reference(self, *arrays):
        """numpy implementation; returns one array (nout == 1) or a tuple."""
        raise NotImplementedError

    def grad(self, node, output_grads):
        """List of gradients w.r.t. node.inputs (None where not differentiable)."""
        raise NotImplementedError(f"{self} has no gradient rule")

    # --- construction ---------------------------------------------------------------------
    def __call__(self, *inputs):
        node = self.make_node(*inputs)
        return node.outputs[0] if self.nout == 1 else node.outputs

    # How make_node turns a Python value (number, array, sympy dim) into a variable: the tensor
    # API installs its as_variable here (ir/constructors.py); the core imports nothing above it.
    as_variable = None

    def make_node(self, *inputs):
        inputs = [Op.as_variable(i) for i in inputs]
        ctx = ShapeContext(LazyText(str, self))
        out_types = self.infer([i.type for i in inputs], ctx)
        return Node(self, inputs, out_types, ctx.constraints)


def _prop_text(value):
    # (a size expression printed once: ops are printed in every pass's log and kernel label)
    return dim_str(value) if isinstance(value, sympy.Basic) else value


def _hashable(p):
    if isinstance(p, list):
        return tuple(_hashable(x) for x in p)
    if isinstance(p, dict):
        return tuple(sorted(p.items()))
    return p


class Node:
    def __init__(self, op, inputs, out_types, constraints=()):
        self.op = op
        self.inputs = list(inputs)
        self.outputs = [Variable(t, self, i) for i, t in enumerate(out_types)]
        self.constraints = list(constraints)

    def __repr__(self):
        return f"{self.op}({', '.join(i.label() for i in self.inputs)})"


def toposort(outputs):
    """Nodes reachable from `outputs`, each after the nodes that produce its inputs."""
    order, seen = [], set()
    for out in outputs:
        if out.owner is None or out.owner in seen:
            continue
        stack = [(out.owner, False)]
        while stack:
            node, done = stack.pop()
            if done:
                order.append(node)
                continue
            if node in seen:
                continue
            seen.add(node)
            stack.append((node, True))
            for inp in reversed(node.inputs):
                if inp.owner is not None and inp.owner not in seen:
                    stack.append((inp.owner, False))
    return order


def variables_read(outputs):
    """`outputs` and every variable a node of their graph reads."""
    read = set(outputs)
    for node in toposort(outputs):
        read.update(node.inputs)
    return read


def leaves(outputs):
    """Leaf variables (inputs, constants, shareds) reachable from `outputs`, in first-seen order."""
    found, seen = [], set()
    for out in outputs:
        if out.owner is None and out not in seen:
            seen.add(out)
            found.append(out)
    for node in toposort(outputs):
        for inp in node.inputs:
            if inp.owner is None and inp not in seen:
                seen.add(inp)
                found.append(inp)
    return found
