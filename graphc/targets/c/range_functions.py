"""Threaded elementwise kernels (and static reductions) as range functions run by one shared
parallel loop (issue 16: cold compile time).

An elementwise kernel that may run on threads had its own OpenMP region: gcc outlines a function
for it, computes its schedule, and (1-D) compiled the loop twice, threaded and serial for small
sizes. That cost ~20-30 ms of gcc per kernel body, more than the loop itself, and a ResNet step
has ~70 such bodies. Here the kernel's loop over items [lo, hi) (elements, or outer rows of a
broadcasting kernel) is a function of its own, `void f(void *const *gc_p, const int64_t *dims,
int64_t lo, int64_t hi)`, and the kernel calls `graphc_rt_parallel_range` (the runtime library's:
templates/c/_parallel_range.j2), whose one OpenMP region hands each thread its share, as the
region's schedule(static) did. Each distinct loop is one function (the text is its identity, as
for outline.py's kernel functions). Kernels inside loop bodies keep their region (loop.j2 runs
some bodies on a team of threads)."""
import numbers

import sympy

from .capabilities import C_CAPABILITIES
from .outline import NOT_OUTLINED, KernelFunction, _Renumbered, _render_key


class RangeFunction(KernelFunction):
    """A kernel's loop over [lo, hi) as a function: outline.KernelFunction's record (name, the
    first caller's label, body, buffer parameters, callers, unit, linkage) without size
    parameters; the kernel's call hands it to graphc_rt_parallel_range."""


def runs_in_range(kernel):
    """Whether a kernel (outside loop bodies) runs its loop as a range function: an elementwise
    kernel with a loop that may be large enough for threads, or a reduction of static shape over
    rows or a middle axis (its one branch: reduce.j2; a whole-tensor reduction combines its
    threads' partial results, and one of symbolic shape calls the runtime library's)."""
    p = kernel.params
    if kernel.kind == "elemwise":
        return len(p["dims"]) >= 1 and C_CAPABILITIES.may_parallelize(p["n"])
    if kernel.kind == "reduce":
        static = isinstance(p["A"], numbers.Number) and isinstance(p["B"], numbers.Number)
        return (static and not (p["A"] == 1 and p["B"] == 1)
                and C_CAPABILITIES.may_parallelize(sympy.sympify(p["A"] * p["R"] * p["B"])))
    return False


def range_functions(env, kernels, prefix):
    """([RangeFunction], {kernel index: RangeFunction}) for the kernels that run in a range, each
    distinct loop once, named <prefix>r<n>."""
    functions, by_body, of_kernel, rendered = [], {}, {}, {}
    for ki, kernel in enumerate(kernels):
        if kernel.kind in NOT_OUTLINED or not runs_in_range(kernel):
            continue
        view = _Renumbered(kernel)
        seen = _render_key(view)
        body = rendered.get(seen) if seen is not None else None
        if body is None:
            body = env.get_template(f"c/{kernel.kind}.j2").render(k=view, range_part="body")
            if seen is not None:
                rendered[seen] = body
        key = (body, tuple(b.ctype for b in view.local_buffers))
        fn = by_body.get(key)
        if fn is None:
            fn = by_body[key] = RangeFunction(f"{prefix}r{len(functions)}", kernel.kind, kernel.label,
                                              body, view.local_buffers)
            functions.append(fn)
        fn.uses.append(ki)
        of_kernel[ki] = fn
    return functions, of_kernel


def place_in_units(functions, unit_of_call):
    """Define each function in the first unit whose code calls it (`unit_of_call`: kernel index ->
    the unit holding that kernel's code), hidden rather than static where another unit calls it."""
    for f in functions:
        units = {unit_of_call(ki) for ki in f.uses}
        f.unit = min(units)
        f.linkage = "static" if len(units) == 1 else "hidden"
