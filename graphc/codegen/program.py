"""The target-independent kernel program: an ordered list of kernels over a table of buffers.

Typed data, no target text: sizes are ints or sympy expressions over the bound dims, dtypes are
names, scalar bodies are sympy expressions (ScalarBody); each kernel kind's params are listed in
codegen/kernels.py. A renderer (C today, CUDA next) prints them with its own templates.
"""
import functools
from dataclasses import dataclass, field

import sympy

from ..ir.ops.scalar_fns import make_cast
from ..ir.size_rounding import rounding
from ..ir.types import size_of

DTYPE_BYTES = {"float32": 4, "float64": 8, "int32": 4, "int64": 8, "bool": 1}
ALIGN = 64


@dataclass(eq=False)
class Buffer:
    id: int
    dtype: str
    shape: tuple
    role: str  # input | shared | const | output | temp
    slot: int = -1  # position among the external pointers (not for temps)
    name: str = ""
    offset: object = None  # bytes into the workspace (temps), set by the memory planner
    first: int = -1  # first and last kernel that touch it (set by the planner)
    last: int = -1

    @property
    def size(self):
        return size_of(self.shape)

    @property
    def nbytes(self):
        return _nbytes(self.size, DTYPE_BYTES[self.dtype])

    @property
    def aligned_nbytes(self):
        return _aligned(self.nbytes)

    def __repr__(self):
        return f"b{self.id}"


@functools.lru_cache(maxsize=16384)
def _nbytes(size, itemsize):
    # (a symbolic size times the item size is a new sympy Mul each time, ~0.5 ms for a conv's
    # chunked scratch; the planner and the size checks ask for each buffer's several times)
    return sympy.sympify(size) * itemsize


@functools.lru_cache(maxsize=8192)
def _aligned(nbytes):
    # (sympy's ceiling asks the assumptions of every term, ~10 ms for a pooled size; the memory
    # planner asks for each buffer's several times)
    return rounding(sympy.ceiling, nbytes / ALIGN) * ALIGN  # (sympy's ceiling, its proofs skipped)


@dataclass(frozen=True)
class ScalarBody:
    """The per-element computation of an elementwise kernel (or of a reduction's fused producer):
    each operand is loaded as `name` of `dtype` (the kernel's inputs in order), then `exprs`, one
    per result, are sympy expressions over those names. A renderer runs sympy.cse over them and
    prints them in `ctx_dtype` precision (the float type of literals and math functions)."""
    loads: tuple  # ((name, dtype), ...)
    exprs: tuple
    ctx_dtype: str

    def __reduce__(self):
        # A compiled program is pickled for warm loads; the cast functions are classes made per
        # dtype (no module attribute pickle could find), and sympy's own unpickling re-evaluates.
        return _rebuild_body, (self.loads, tuple(_to_tree(e) for e in self.exprs), self.ctx_dtype)


def _to_tree(e):
    if not e.args:
        return e
    f = e.func
    ref = ("cast", f.dtype) if f.__name__.startswith("cast_") and hasattr(f, "dtype") else f
    return ref, tuple(_to_tree(a) for a in e.args)


def _from_tree(t):
    if not isinstance(t, tuple):
        return t
    ref, args = t
    f = make_cast(ref[1]) if isinstance(ref, tuple) else ref
    args = [_from_tree(a) for a in args]
    try:
        return f(*args, evaluate=False)
    except TypeError:
        return f(*args)


def _rebuild_body(loads, trees, ctx_dtype):
    return ScalarBody(loads, tuple(_from_tree(t) for t in trees), ctx_dtype)


@dataclass(eq=False)
class Kernel:
    kind: str  # its spec (codegen/kernels.py) and template: templates/<target>/<kind>.j2
    outputs: list
    inputs: list
    params: dict = field(default_factory=dict)
    label: str = ""
    in_place: bool = False
    # Buffers only this kernel uses, for its own working memory (a loop's body workspace and its
    # double-buffered states): temporaries live at this kernel alone.
    scratch: list = field(default_factory=list)

    @property
    def buffers(self):
        return self.inputs + self.outputs + self.scratch

    @property
    def dims_used(self):
        """The dim symbols the params mention (sorted by name): what a kernel needs passed in."""
        found = set()
        _collect_dims(self.params, found)
        return tuple(sorted(found, key=lambda s: s.name))


def _collect_dims(value, found):
    if isinstance(value, sympy.Basic):
        found.update(value.free_symbols)
    elif isinstance(value, dict):
        for v in value.values():
            _collect_dims(v, found)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _collect_dims(v, found)
    elif isinstance(value, Program):  # a loop's body: the dims its kernels use
        for kern in value.kernels:
            _collect_dims(kern.params, found)
    # ScalarBody: its symbols name operands, not dims


@dataclass(eq=False)
class Program:
    buffers: list
    kernels: list
    dim_symbols: list  # bound dims, in the order the runtime passes them
    externals: list  # buffers passed as pointers, in slot order
    output_buffers: list  # per graph output, the buffer that holds it
    workspace_bytes: object = 0
    plan_notes: list = field(default_factory=list)
    in_place_updates: dict = field(default_factory=dict)  # output index -> shared buffer
    naive_bytes: object = 0
    # [(offset, size)] of the workspace slots in address order (the memory planner's): each
    # offset is the one before plus that slot's size, which a renderer may print as such.
    workspace_slots: list = field(default_factory=list)

    @property
    def graph_naive_bytes(self):
        """Bytes of every intermediate of the graph as the user wrote it (codegen/plan.py), or
        None where no graph was noted."""
        lazy = getattr(self, "graph_naive", None)
        return lazy() if lazy is not None else None

    def describe(self):
        lines = ["dims: " + (", ".join(str(s) for s in self.dim_symbols) or "(none)"), "buffers:"]
        for b in self.buffers:
            where = f"slot {b.slot}" if b.role != "temp" else \
                f"workspace+{b.offset}" if b.first >= 0 else "(unused: merged in place)"
            lines.append(f"  b{b.id:<3} {b.role:<6} {b.dtype}[{', '.join(map(str, b.shape))}] "
                         f"{b.nbytes} bytes @ {where}  {b.name}")
        lines.append(f"workspace: {self.workspace_bytes} bytes")
        lines.extend(map(str, self.plan_notes))
        lines.append("kernels:")
        for k, kern in enumerate(self.kernels):
            ins = ", ".join(repr(b) for b in kern.inputs)
            outs = ", ".join(repr(b) for b in kern.outputs)
            lines.append(f"  k{k:<3} {kern.kind:<12} {outs} <- {ins}{' (in place)' if kern.in_place else ''}   # {kern.label}")
            if kern.kind == "loop":
                lines.extend("      " + line for line in _describe_loop(kern).splitlines())
        return "\n".join(lines)


def _describe_loop(kern):
    p = kern.params
    scratch = ", ".join(repr(b) for b in kern.scratch)
    order = f"reversed(range({p['trip']}))" if p.get("reverse") else f"range({p['trip']})"
    lines = [f"for it in {order}: body workspace and states in {scratch}"]
    for b, (kind, index, stride) in zip(p["body"].externals, p["bindings"]):
        outer = {"slice": kern.inputs, "whole": kern.inputs, "slice_out": kern.outputs}.get(kind)
        where = f"{outer[index]!r}" if outer is not None else f"state {index}"
        step = f" + it*{stride}" if kind in ("slice", "slice_out") else ""
        lines.append(f"  {b!r} = {kind} {where}{step}")
    return "\n".join(lines + [p["body"].describe()])
