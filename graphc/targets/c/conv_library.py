"""The convolution kernels whose code lives in the runtime library (templates/c/runtime_lib.c.j2),
compiled once with run-time sizes, instead of inline in every program that uses them (issue 16:
cold compile). A kernel of these kinds renders as a call (its template writes the layer's sizes
into a geometry array); program_head.j2 declares the functions for an in-process program, and
defines them, static, for an AOT library, which must stand alone. The blocked direct convolution
(_conv_blocked.j2) was the first such kernel; it is declared wherever a program uses the BLAS."""
from .capabilities import C_CAPABILITIES

# kind -> its family: templates/c/_<family>_functions.j2 defines the family's functions (for
# every precision in conv_library_prefixes), _<family>_decl.j2 declares them
LIBRARY_CONV_KINDS = {
    "conv_winograd": "winograd",
    "conv_winograd_grad_weights": "winograd",
    "conv_chunked": "conv_chunk",
    "conv_chunked_grad_input": "conv_chunk",
    "conv_chunked_grad_weights": "conv_chunk",
}


def conv_library(kernels):
    """{family: [BLAS precisions 's', 'd']} of the library convolutions among `kernels` and the
    bodies of loop kernels (rendered into the same C): the functions a program declares, or an
    AOT library defines. Empty for a program without them (its C is then what it was)."""
    found = {}

    def visit(ks):
        for k in ks:
            if k.kind in LIBRARY_CONV_KINDS:
                found.setdefault(LIBRARY_CONV_KINDS[k.kind], set()).add(
                    C_CAPABILITIES.blas_precision(k.params["dtype"]))
            elif k.kind == "loop":
                visit(k.params["body"].kernels)
    visit(kernels)
    return {family: sorted(found[family]) for family in sorted(found)}


def merge(into, more):
    """Add the families and precisions of `more` (a conv_library result) to `into`, in place."""
    for family, prefixes in more.items():
        into[family] = sorted(set(into.get(family, ())) | set(prefixes))
    return into
