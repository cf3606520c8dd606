"""The target-independent kernel program: an ordered list of kernels over a table of buffers.

Sizes are sympy expressions over the bound dims until the program is rendered; a renderer for a
new target (CUDA) consumes the same Program with its own templates.
"""
from dataclasses import dataclass, field

import sympy

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
        return sympy.sympify(self.size) * DTYPE_BYTES[self.dtype]

    @property
    def aligned_nbytes(self):
        return sympy.ceiling(self.nbytes / ALIGN) * ALIGN

    def __repr__(self):
        return f"b{self.id}"


@dataclass(eq=False)
class Kernel:
    kind: str  # the template that renders it: templates/<target>/<kind>.j2
    outputs: list
    inputs: list
    params: dict = field(default_factory=dict)
    label: str = ""
    in_place: bool = False


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

    def describe(self):
        lines = ["dims: " + (", ".join(str(s) for s in self.dim_symbols) or "(none)"), "buffers:"]
        for b in self.buffers:
            where = f"slot {b.slot}" if b.role != "temp" else \
                f"workspace+{b.offset}" if b.first >= 0 else "(unused: merged in place)"
            lines.append(f"  b{b.id:<3} {b.role:<6} {b.dtype}[{', '.join(map(str, b.shape))}] "
                         f"{b.nbytes} bytes @ {where}  {b.name}")
        lines.append(f"workspace: {self.workspace_bytes} bytes")
        lines.extend(self.plan_notes)
        lines.append("kernels:")
        for k, kern in enumerate(self.kernels):
            ins = ", ".join(repr(b) for b in kern.inputs)
            outs = ", ".join(repr(b) for b in kern.outputs)
            lines.append(f"  k{k:<3} {kern.kind:<12} {outs} <- {ins}{' (in place)' if kern.in_place else ''}   # {kern.label}")
        return "\n".join(lines)
