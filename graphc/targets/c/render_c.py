"""Render a Program as C from templates/c/ (jinja2): one source file, or several translation
units for a parallel build (render_units).

All C printing of the typed Program happens here, through the jinja filters in C_FILTERS: sizes
(`| c_int`), dtypes (`| c_type`), float literals (`| c_float(dtype)`), libm names
(`| c_libm(dtype)`), scalar bodies (`| c_scalar_code`: sympy.cse + the ScalarPrinter, once per
kernel), and the C target's policy (`| may_thread`, `| blas_precision`: capabilities.py)."""
import numbers
import os
from functools import lru_cache

import sympy

from ...codegen.kernels import spec_of
from .c_escape import c_comment, c_string
from .capabilities import C_CAPABILITIES
from .conv_library import conv_library
from .cprinter import C_TYPES, ScalarPrinter, int_to_c, scalars_to_c
from .cache_trust import check_file, private_dir
from .size_bound import size_checks
from .size_table import workspace_table
from .jinja_env import C_FILTER_NAMES, SHIPPED_DIR_NAME, make_environment
from .outline import first_use_costs, outline_kernels
from .range_functions import place_in_units, range_functions
from .runtime_build import RUNTIME_REDUCTIONS, library_kernel, reduce_helper_name
from .templates_dir import templates_root


class _ScalarCode:
    """A ScalarBody as C: loads [(name, C type)], statements [(temp, C)], results [C]."""

    def __init__(self, body):
        self.loads = [(name, C_TYPES[dtype]) for name, dtype in body.loads]
        self.stmts, self.results = scalars_to_c(body.exprs, body.ctx_dtype)


@lru_cache(maxsize=4096)
def _scalar_code(body):
    """_ScalarCode of a ScalarBody, once per distinct body: a ResNet's 312 elementwise kernels
    have ~70 bodies, each rendered for its identity (outline.py) and again when inline, and
    sympy.cse + printing cost ~4 ms a body."""
    return _ScalarCode(body)


def c_float(value, dtype):
    """A float constant as a C literal of `dtype`'s precision."""
    return ScalarPrinter(dtype).doprint(sympy.Float(value, 17))


def c_libm(name, dtype):
    """The libm function `name` in `dtype`'s precision (expf for float32)."""
    return name + ("f" if dtype == "float32" else "")


C_FILTERS = {
    "c_int": int_to_c,
    "c_type": C_TYPES.__getitem__,
    "c_float": c_float,
    "c_libm": c_libm,
    "c_scalar_code": _scalar_code,
    "may_thread": C_CAPABILITIES.may_parallelize,
    "blas_precision": C_CAPABILITIES.blas_precision,
    "c_comment": c_comment,
    "c_string": c_string,
}
assert set(C_FILTERS) == set(C_FILTER_NAMES), "jinja_env.C_FILTER_NAMES is out of date"


@lru_cache(maxsize=None)
def environment():
    # Compiled templates come from the user's cache or from the copy compiled at install
    # (setup.py), so a new process skips jinja's parse (~0.1 s).
    shipped = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
                           SHIPPED_DIR_NAME)
    return make_environment(templates_root(), private_dir("jinja"), shipped, filters=C_FILTERS,
                            check_file=check_file)


class _BufView:
    """What a template sees of a buffer: its id, C type, role, slot and offset as C text (the
    name of a workspace offset when `offset_names` has one: offset_chain)."""

    def __init__(self, b, offset_names=None):
        self.id, self.role, self.slot, self.name = b.id, b.role, b.slot, b.name
        self.ctype = C_TYPES[b.dtype]
        named = offset_names.get(b.offset) if offset_names and b.offset is not None else None
        self.offset = named or (int_to_c(b.offset) if b.offset is not None else "0")


# From this many numbers of bytecode on, the workspace offsets and size are a size table: gcc's
# time on them as C grows with their volume (ResNet-20's ~20 KB cost 0.36 s of a unit), while a
# table costs each call its interpretation (~1 ns a number); a small program (an MLP: ~50
# numbers) keeps its few C expressions.
SIZE_TABLE_FROM = 200


def workspace_offsets(program):
    """How the program's C names its workspace offsets: (size table or None, chain, {offset: C
    name}, the workspace size as C). Symbolic offsets of some volume are a size table
    (size_table.py) that the program fills at run time, gc_ws[j]; a few (or any the table
    cannot take) a chain of C locals (offset_chain)."""
    table = workspace_table(program)
    if table is None or len(table.code) < SIZE_TABLE_FROM:
        chain, names = offset_chain(program)
        return None, chain, names, int_to_c(program.workspace_bytes)
    names = {offset: f"gc_ws[{j}]" for offset, j in table.slot_of.items()}
    total = f"gc_ws[{table.total}]" if table.total is not None else int_to_c(program.workspace_bytes)
    return table, [], names, total


def offset_chain(program):
    """Symbolic workspace offsets as a chain of C locals, each the one before plus a slot's size:
    ([(name, C expression)], {offset: name}). Printed whole, every offset repeats the sizes of
    all slots below it (a ResNet's ran to ~7 KB of C each, a third of gcc's time on the
    program); the chain states each size once."""
    decls, names, prev = [], {}, None
    for j, (offset, size) in enumerate(getattr(program, "workspace_slots", ())):
        if isinstance(offset, sympy.Basic) and not offset.is_Number:
            names[offset] = f"gc_ws{j}"
            decls.append((names[offset], f"{prev[0]} + {int_to_c(prev[1])}"))
        prev = (names.get(offset) or int_to_c(offset), size)
    return decls, names


def gemm_prefixes(kernels):
    """BLAS precisions ('s', 'd') the kernels' products use: the gemm helpers to emit."""
    return sorted({C_CAPABILITIES.blas_precision(k.params["dtype"])
                   for k in _all_kernels(kernels) if spec_of(k.kind).blas})


def _all_kernels(kernels):
    """The kernels and, recursively, those of loop bodies (rendered inline in the same C)."""
    for k in kernels:
        yield k
        if k.kind == "loop":
            yield from _all_kernels(k.params["body"].kernels)


def reduce_helpers(kernels):
    """The shared functions (templates/c/_reduce_helpers.j2) the kernels' reductions call: one per
    kind and dtypes, for reductions of a plain input whose sizes are symbolic (all three branches
    are compiled then; reduce.j2 keeps static and fused ones inline)."""
    helpers = {}
    for k in _all_kernels(kernels):
        p = k.params
        if k.kind != "reduce" or p["fused"] or (isinstance(p["A"], numbers.Number)
                                                and isinstance(p["B"], numbers.Number)):
            continue
        dtypes = (p["kind"], p["in_dtype"], p["acc_dtype"], p["out_dtype"])
        name = reduce_helper_name(*dtypes)
        helpers[name] = {"name": name, "kind": p["kind"], "in_dtype": p["in_dtype"],
                         "acc_dtype": p["acc_dtype"], "out_dtype": p["out_dtype"], "fused": False,
                         "prebuilt": dtypes in RUNTIME_REDUCTIONS}
    return [helpers[n] for n in sorted(helpers)]


def library_kernels(kernels):
    """The runtime library's functions the kernels call (runtime_build.library_kernel: pooling, LRN,
    softmax cross-entropy), each once, for templates/c/_lib_kernels.j2 to declare (or define, in
    an AOT library)."""
    used = {}
    for k in _all_kernels(kernels):
        label = k.inputs[1].dtype if k.kind == "softmax_xent" else None
        kind = "softmax_xent_grad" if k.kind == "softmax_xent" and k.params["grad"] else k.kind
        f = library_kernel(kind, k.params.get("dtype"), label)
        if f is not None:
            used[f["name"]] = f
    return [used[n] for n in sorted(used)]


def _blas_context(kernels):
    """What program_head.j2 needs to know of the kernels' products, and the shared reduction
    functions they call."""
    prefixes = gemm_prefixes(kernels)
    return {"uses_blas": bool(prefixes), "gemm_prefixes": prefixes,
            "reduce_helpers": reduce_helpers(kernels), "packed_gemm": uses_packed_gemm(kernels),
            "lib_kernels": library_kernels(kernels),
            "conv_library": conv_library(kernels)}


def uses_packed_gemm(kernels):
    """Whether a loop among the kernels packs a product's operand, or a dense layer its weights
    (templates/c/_gemm_packed.j2)."""
    return any(k.kind == "loop" and k.params["packs"] or k.kind == "gemm_dense_packed"
               for k in _all_kernels(kernels))


def render_program(program, name, blas_prefix, wrapper="jit_wrapper", entry_prefix="gc_entry_",
                   extra=None, outlined=None):
    """The whole program as one C source (one function runs every kernel inline). `extra`: more
    template context, e.g. profile=True and profile_kernels=n for the profiling build (timers
    around each kernel: targets/c/profiling.py)."""
    used = {b.id for k in program.kernels for b in k.buffers}
    table, chain, offset_names, workspace_bytes = workspace_offsets(program)
    externals = [_BufView(b) for b in program.externals]
    temps = [_BufView(b, offset_names) for b in program.buffers if b.role == "temp" and b.id in used]
    context = _blas_context(program.kernels)
    outlined = outlined or _outline(program, entry_prefix, context)
    functions, calls = outlined.functions, outlined.calls
    for f in functions + outlined.ranges:
        f.unit, f.linkage = 0, "static"
    template = environment().get_template("c/program.c.j2")
    return template.render(
        name=name, prefix=entry_prefix, wrapper=wrapper,
        dim_names=[s.name for s in program.dim_symbols], workspace_bytes=workspace_bytes,
        ws_table=table,
        seq_buffers=externals + temps, seq_kernels=list(enumerate(program.kernels)), ws_chain=chain,
        size_checks=size_checks(program, program.kernels), kernel_fns=functions, kernel_calls=calls,
        range_fns=outlined.ranges, range_calls=outlined.range_of, fallible=_fallible(program),
        blas_prefix=blas_prefix, **context, **(extra or {}))


def _fallible(program):
    """The kernels that can fail (set status): the sequence checks after these only."""
    return {ki for ki, k in enumerate(program.kernels) if spec_of(k.kind).can_fail(k)}


class _Outlined:
    """The program's kernel functions and calls (outline.py), and its range functions and which
    kernel calls which (range_functions.py)."""

    def __init__(self, functions, calls, ranges, range_of):
        self.functions, self.calls, self.ranges, self.range_of = functions, calls, ranges, range_of


def _outline(program, prefix, context, body_bytes=None):
    """The program's kernels as functions, each distinct body once (outline.py), the loops of its
    threaded elementwise kernels as range functions (range_functions.py). `body_bytes`, when
    given, is filled with each kernel's bytes of C, a range function's counted at its first use."""
    ranges, range_of = range_functions(environment(), program.kernels, prefix)
    functions, calls = outline_kernels(environment(), program.kernels, prefix,
                                       {"reduce_helpers": context["reduce_helpers"]}, body_bytes,
                                       range_of)
    if body_bytes is not None:
        for f in ranges:
            body_bytes[f.uses[0]] += len(f.body)
    return _Outlined(functions, calls, ranges, range_of)


# Relative cost of compiling one kernel of each kind with gcc -O3, measured on the MLP train
# step: an OpenMP reduction or a row-wise softmax costs several times a loop nest, which costs
# several times a library call. Used only to balance the translation units.
_COMPILE_COST = {"gemm": 1, "fill": 1, "copy": 1, "arange": 1, "elemwise": 3, "reduce": 10,
                 "softmax": 8, "softmax_xent": 8}
# Below this much work per unit, a unit's fixed cost (gcc start-up, headers, the link step)
# outweighs what compiling it in parallel saves.
MIN_UNIT_COST = 20


def kernel_compile_cost(kernel):
    if kernel.kind == "loop":
        return sum(kernel_compile_cost(k) for k in kernel.params["body"].kernels)
    if kernel.kind == "elemwise" and all(all(d == 1 for d in b.shape) for b in kernel.outputs):
        return 1  # a scalar expression: no loop to vectorize
    if library_kernel(kernel.kind, kernel.params.get("dtype"), "int64"):
        return 1  # a call of the runtime library (pooling, LRN, softmax cross-entropy)
    return _COMPILE_COST.get(kernel.kind, 6)


def plan_segments(program, max_units, cost=kernel_compile_cost, min_unit_cost=MIN_UNIT_COST,
                  costs=None, balance=None):
    """Split the kernel list into contiguous segments of about equal compile cost, one per
    translation unit; one segment when splitting would not pay. Returns index ranges. (Another
    toolchain passes its own `cost` of a kernel and `min_unit_cost` of a unit; `costs`, when
    given, is each kernel's cost already.) `balance`, when given, is each kernel's cost to
    balance the segments on (the C target: bytes of rendered C); `costs` then only decides how
    many segments pay."""
    costs = costs if costs is not None else [cost(k) for k in program.kernels]
    n = max(1, min(max_units, sum(costs) // min_unit_cost, len(costs)))
    costs = balance if balance is not None else costs
    total = sum(costs)
    segments, start, done = [], 0, 0
    for u in range(n - 1):
        target = total * (u + 1) / n
        end = start + 1
        while end < len(costs) - (n - 2 - u) and done + costs[end - 1] + costs[end] / 2 <= target:
            done += costs[end - 1]
            end += 1
        done += costs[end - 1]
        segments.append(range(start, end))
        start = end
    segments.append(range(start, len(costs)))
    return segments


# Bytes of C a kernel's compile cost is estimated as when its body is not rendered alone (loops).
_BYTES_PER_COST = 200


def _volume(kernel, body_bytes):
    """A kernel's compile cost as the bytes of C gcc reads for it: gcc's time on these programs
    is the volume of code, not one pass (round 2 of issue 16). The kind table above left VGG's
    units 6.3 and 3.3 s of gcc (ten inline Winograd convs of ~10 KB each weighed a loop nest)."""
    n = body_bytes.get(id(kernel))
    return n if n is not None else kernel_compile_cost(kernel) * _BYTES_PER_COST


# What a kernel costs gcc in the sequence that runs it, whether its body is compiled there or
# not: the call (or the inline block's frame) and its buffers' pointers. ResNet-20's units spent
# ~0.35 s each on their sequences (~200 calls, ~440 buffer pointers), as much per byte as on
# kernel bodies; balanced on bodies alone, the unit with the later layers' calls was 10-25 %
# slower to compile.
_SEQUENCE_BYTES = 12
_SEQUENCE_BYTES_PER_BUFFER = 10


def _sequence_volume(kernel):
    return _SEQUENCE_BYTES + _SEQUENCE_BYTES_PER_BUFFER * len({b.id for b in kernel.buffers})


# Kernels whose inline code in a sequence is calls (of their runtime-library or range function,
# or of BLAS) or `omp simd` loops, which gcc vectorizes at -O1 as at -O3 (the simd pragma forces
# it): a segment of these only is compiled at -O1 (light_sequence). gcc's time on a sequence is
# its hundreds of calls, not the kernels' code: ResNet-20's units took 0.85 and 0.75 s of gcc at
# -O3, 0.72 and 0.54 s with their segments at -O1 (two samples each, load ~2). Any other kind
# (loops over a body, scalar loops: copies, gathers, softmax, random, long fills) keeps the
# segment at -O3.
LIGHT_KINDS = frozenset({
    "elemwise", "reduce", "copy", "gemm", "gemm_dense_packed", "batch_norm", "batch_norm_grad",
    "conv_blocked", "conv_blocked_grad_weights", "conv_chunked", "conv_chunked_grad_input",
    "conv_chunked_grad_weights", "conv_winograd", "conv_winograd_grad_weights", "pool_max",
    "pool_max_value", "pool_max_grad", "pool_avg", "pool_avg_grad", "pool_max_gather", "lrn",
    "lrn_grad", "softmax_xent"})


def light_sequence(kernels, calls, first):
    """Whether the segment that runs `kernels` (program indices from `first`; `calls`: those that
    call their outlined function) may be compiled at -O1: each kernel is a call or of a kind in
    LIGHT_KINDS."""
    return all(first + i in calls or _light(k) for i, k in enumerate(kernels))


def _light(kernel):
    if kernel.kind == "fill":  # a scalar loop: light when it is short (a dim's value, a counter)
        n = kernel.params["n"]
        return isinstance(n, (int, sympy.Integer)) and int(n) <= 1024
    return kernel.kind in LIGHT_KINDS


def render_units(program, name, blas_prefix, max_units):
    """The program as a list of C sources (translation units compiled in parallel and linked into
    one library): contiguous segments of the kernels, one function each."""
    body_bytes = {}
    outlined = _outline(program, "gc_entry_", _blas_context(program.kernels), body_bytes)
    functions, calls = outlined.functions, outlined.calls
    body_bytes = {id(program.kernels[ki]): n for ki, n in body_bytes.items()}
    segments = plan_segments(program, max_units,
                             costs=first_use_costs(program.kernels, calls, kernel_compile_cost),
                             balance=[body + _sequence_volume(k) for k, body in zip(
                                 program.kernels, first_use_costs(program.kernels, calls,
                                                                  lambda k: _volume(k, body_bytes)))])
    if len(segments) == 1:
        return [render_program(program, name, blas_prefix, outlined=outlined)]
    unit_of = {ki: u for u, seg in enumerate(segments) for ki in seg}
    for f in functions:  # defined where first called; hidden, not static, if another unit calls it
        f.unit = unit_of[f.uses[0]]
        f.linkage = "static" if all(unit_of[ki] == f.unit for ki in f.uses) else "hidden"

    def unit_of_call(ki):  # the unit whose code calls kernel ki's range function
        return calls[ki].function.unit if ki in calls else unit_of[ki]
    place_in_units(outlined.ranges, unit_of_call)
    table, chain, offset_names, workspace_bytes = workspace_offsets(program)
    views = {b.id: _BufView(b, offset_names) for b in program.buffers}
    fallible = _fallible(program)
    template = environment().get_template("c/program_unit.c.j2")
    sources = []
    for u, seg in enumerate(segments):
        kernels = [program.kernels[ki] for ki in seg]
        used = {b.id: views[b.id] for k in kernels for b in k.buffers}
        sources.append(template.render(
            name=name, prefix="gc_entry_", wrapper="jit_wrapper", unit=u, n_units=len(segments),
            seq_kernels=[(ki, program.kernels[ki]) for ki in seg],
            seq_buffers=sorted(used.values(), key=lambda v: v.id), ws_chain=chain, ws_table=table,
            size_checks=size_checks(program, kernels),
            dim_names=[s.name for s in program.dim_symbols], workspace_bytes=workspace_bytes,
            kernel_fns=[f for f in functions if f.unit == u or any(unit_of[ki] == u for ki in f.uses)],
            kernel_calls={ki: calls[ki] for ki in seg if ki in calls},
            range_fns=[f for f in outlined.ranges
                       if f.unit == u or any(unit_of_call(ki) == u for ki in f.uses)],
            range_calls=outlined.range_of, fallible=fallible,
            light_sequence=light_sequence(kernels, calls, seg.start),
            blas_prefix=blas_prefix, **_blas_context(kernels)))
    return sources
