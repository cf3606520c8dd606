"""The convolution kernels whose code lives in the runtime library (templates/c/runtime_lib.c.j2),
compiled once with run-time sizes, instead of inline in every program that uses them (issue 16:
cold compile). A kernel of these kinds renders as a call (its template writes the layer's sizes
into a geometry array); program_head.j2 declares the functions for an in-process program, and
defines them, static, for an AOT library, which must stand alone. The blocked direct convolution
(_conv_blocked.j2) was the first such kernel; it is declared wherever a program uses the BLAS."""
from .capabilities import C_CAPABILITIES

# kind -> the template that defines (and its _decl twin that declares) the library's functions
LIBRARY_CONV_KINDS = {
    "conv_winograd": "c/_winograd_functions.j2",
    "conv_winograd_grad_weights": "c/_winograd_functions.j2",
}


def conv_library_prefixes(kernels):
    """BLAS precisions ('s', 'd') of the library convolutions among `kernels` and the bodies of
    loop kernels (rendered into the same C): the functions a program declares, or an AOT library
    defines."""
    found = set()

    def visit(ks):
        for k in ks:
            if k.kind in LIBRARY_CONV_KINDS:
                found.add(C_CAPABILITIES.blas_precision(k.params["dtype"]))
            elif k.kind == "loop":
                visit(k.params["body"].kernels)
    visit(kernels)
    return sorted(found)
