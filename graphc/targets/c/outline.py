"""Kernels as C functions, each distinct one compiled once (issue 16: cold compile time).

A CNN repeats its layers: ResNet-20's step has 593 kernels but 111 distinct bodies (the same batch
norm sums, the same 3x3 convs of a stage, the same fused elementwise bodies), and gcc compiled every
copy inline. Here each kernel's template is rendered once with its buffers numbered by first use
(b0, b1, ... as parameters), the text is the function's identity, and every kernel with the same
text calls one function. Nothing else changes: the body is the template's, with the same
constants, sizes and `restrict` pointers, so the code each kernel runs is what it ran inline.

A function is `noinline` (gcc would otherwise copy it into every caller and compile it again).
A kernel whose body is its own stays inline, as do loop kernels (their bodies name the kernel's
index for the profiler and their own buffers)."""
from dataclasses import dataclass, field

import sympy

from .cprinter import C_TYPES, int_to_c

NOT_OUTLINED = frozenset({"loop"})
# Kernels whose sizes (channels, image and output sizes, images per chunk) are run-time arguments
# of their function, so that the layers of a net share one body per stencil (kernel size, stride,
# padding, dilation, groups stay constants: they shape the inner loops). Their templates use these
# params only as C values (| c_int); the work per call is im2col/col2im loops and gemm calls whose
# sizes are mostly symbolic already. CIFAR-10 quick's eight chunked conv kernels are three bodies.
_CONV_SIZES = ("N", "CG", "MG", "H", "W", "HO", "WO", "NB", "NB1")
SIZE_ARGUMENTS = {"conv_chunked": _CONV_SIZES, "conv_chunked_grad_input": _CONV_SIZES,
                  "conv_chunked_grad_weights": _CONV_SIZES}


@dataclass(eq=False)
class _LocalBuffer:
    """A kernel's buffer as its function sees it: a parameter b<id>, id its order of first use."""
    id: int
    ctype: str


@dataclass(eq=False)
class KernelFunction:
    name: str
    kind: str
    label: str  # the first caller's
    body: str
    params: list  # [_LocalBuffer] in parameter order
    sizes: tuple = ()  # the size parameters (int64_t d_<name>), after the buffers
    uses: list = field(default_factory=list)  # kernel indices that call it
    unit: int = 0  # the translation unit that defines it (render_units)
    linkage: str = "static"  # or "hidden": called from another unit of the same library

    @property
    def shared(self):
        return len(self.uses) > 1


@dataclass(frozen=True)
class KernelCall:
    function: KernelFunction
    args: tuple  # the caller's buffer ids, in the function's parameter order
    sizes: tuple = ()  # the caller's values of the size parameters, as C


class _Renumbered:
    """The view of a kernel its template renders: the same kind, params and label, its buffers
    numbered 0, 1, ... by first use (a buffer used twice, as in place, keeps one number)."""

    def __init__(self, kernel):
        self.kind, self.params, self.label = kernel.kind, dict(kernel.params), kernel.label
        # size params as parameters a_<name> (printed d_a_<name>, as a dim is)
        self.size_names = tuple(f"a_{n}" for n in SIZE_ARGUMENTS.get(kernel.kind, ()))
        self.size_values = tuple(int_to_c(kernel.params[n]) for n in SIZE_ARGUMENTS.get(kernel.kind, ()))
        for n, name in zip(SIZE_ARGUMENTS.get(kernel.kind, ()), self.size_names):
            self.params[n] = sympy.Symbol(name, integer=True, positive=True)
        self.in_place = kernel.in_place
        numbers, self.order = {}, []

        def local(b):
            if b.id not in numbers:
                numbers[b.id] = len(numbers)
                self.order.append(b)
            return _LocalBuffer(numbers[b.id], C_TYPES[b.dtype])
        self.inputs = [local(b) for b in kernel.inputs]
        self.outputs = [local(b) for b in kernel.outputs]
        self.scratch = [local(b) for b in kernel.scratch]
        self.local_buffers = sorted({b.id: b for b in self.inputs + self.outputs + self.scratch}.values(),
                                    key=lambda b: b.id)

    @property
    def buffers(self):
        return self.inputs + self.outputs + self.scratch


def outline_kernels(env, kernels, prefix, context, body_bytes=None, range_of=None):
    """(functions, {kernel index: KernelCall}) for the kernels (loops excepted) whose rendered
    body repeats, one function per such body, named <prefix>k<n>; a kernel alone of its kind is
    left out (it stays inline: as a function of its own it cost gcc ~30 % more on AlexNet's
    inference step, where no kernel repeats). `context`: what the kernel templates may read
    besides `k` (reduce_helpers). `body_bytes`, when given, is a dict filled with the length of
    each kernel's rendered body (the compile cost the translation units are balanced on).
    `range_of`: {kernel index: its range function} (range_functions.py; the template then
    renders the call of that function)."""
    range_of = range_of or {}
    functions, by_body, calls = [], {}, {}
    rendered = {}  # what a template reads of a kernel -> its body (ResNet-20: 593 kernels, ~110 bodies)
    for ki, kernel in enumerate(kernels):
        if kernel.kind in NOT_OUTLINED:
            continue
        view = _Renumbered(kernel)
        range_fn = range_of.get(ki)
        seen = _render_key(view)
        seen = seen if seen is None or range_fn is None else (seen, range_fn.name)
        body = rendered.get(seen) if seen is not None else None
        if body is None:
            body = env.get_template(f"c/{kernel.kind}.j2").render(k=view, range_fn=range_fn, **context)
            if seen is not None:
                rendered[seen] = body
        if body_bytes is not None:
            body_bytes[ki] = len(body)
        key = (body, tuple(b.ctype for b in view.local_buffers))
        fn = by_body.get(key)
        if fn is None:
            fn = by_body[key] = KernelFunction(f"{prefix}k{len(functions)}", kernel.kind, kernel.label,
                                                  body, view.local_buffers, view.size_names)
            functions.append(fn)
        fn.uses.append(ki)
        calls[ki] = KernelCall(fn, tuple(b.id for b in view.order), view.size_values)
    functions = [f for f in functions if f.shared]
    for n, f in enumerate(functions):
        f.name = f"{prefix}k{n}"
    return functions, {ki: c for ki, c in calls.items() if c.function.shared}


def _render_key(view):
    """Everything a kernel template reads of its kernel (`k`: kind, label, params, buffers by
    their local number and C type, in place, size parameters), as a hashable value: equal keys
    render equal bodies. None where a param is of a type this does not know to compare exactly."""
    try:
        params = tuple(sorted((n, _exact(v)) for n, v in view.params.items()))
    except _NotExact:
        return None
    buffers = tuple(tuple((b.id, b.ctype) for b in group)
                    for group in (view.inputs, view.outputs, view.scratch))
    return (view.kind, view.label, view.in_place, view.size_names, params, buffers)


class _NotExact(Exception):
    pass


def _exact(v):
    """v as a hashable value that is equal only for values that print the same: with its type
    (2, 2.0 and True are equal in Python, and print differently)."""
    if v is None or isinstance(v, (bool, int, float, str, sympy.Basic)):
        return (type(v), v)
    if isinstance(v, (tuple, list)):
        if all(type(x) is int for x in v):  # (index tables: thousands of ints)
            return (type(v), tuple(v))
        return (type(v), tuple(_exact(x) for x in v))
    if isinstance(v, dict):
        return (dict, tuple(sorted((k, _exact(x)) for k, x in v.items())))
    if type(v).__name__ == "ScalarBody":  # (frozen: loads, sympy expressions, a dtype name)
        return (type(v), _exact(v.loads), _exact(v.exprs), v.ctx_dtype)
    raise _NotExact(v)


def first_use_costs(kernels, calls, cost):
    """Each kernel's compile cost once its function is shared: the first caller pays for the
    body, later callers only for a call."""
    seen, out = set(), []
    for ki, kernel in enumerate(kernels):
        call = calls.get(ki)
        if call is None or id(call.function) not in seen:
            out.append(cost(kernel))
            if call is not None:
                seen.add(id(call.function))
        else:
            out.append(0)
    return out
