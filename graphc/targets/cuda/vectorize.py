"""Which elementwise kernels get a vector path (templates/cuda/elemwise.cu.j2): 16-byte loads and
stores (float4, double2) with a scalar tail, launched when every pointer is 16-byte aligned (the
launcher checks at run time: a loop body's slices and a caller's device views need not be), the
scalar kernel otherwise. Decided here, printed by the template."""
import sympy

# Elements per 16-byte vector, by the one dtype every operand has.
VECTOR_WIDTH = {"float32": 4, "float64": 2}
# Kernels known to be smaller keep only the scalar kernel: 16 blocks of scalar threads cover them
# in one pass (the launch's few microseconds dominate), and each vector kernel costs nvcc time
# (the MLP step's 5 took its build from ~9.2 to ~10.7 s here, a loaded 2-CPU machine).
MIN_VECTOR_ELEMENTS = 4096


def vector_width(kernel):
    """4 or 2 when every input and output of the elementwise `kernel` is float32 (float64),
    every input is read contiguously in the output's order (one scalar per element, no
    broadcast) and its size is not known to be small; 0 when it keeps only the scalar kernel."""
    p = kernel.params
    dims = p["dims"]
    dtypes = {b.dtype for b in kernel.inputs} | set(p["out_dtypes"])
    if not dims or len(dtypes) != 1 or len(p["strides"]) != len(kernel.inputs):
        return 0
    width = VECTOR_WIDTH.get(dtypes.pop(), 0)
    n = sympy.sympify(p["n"])
    if n.is_Integer and int(n) < MIN_VECTOR_ELEMENTS:
        return 0
    expected, acc = [], sympy.Integer(1)
    for d in reversed(dims):
        expected.append(acc)
        acc = acc * d
    expected.reverse()
    for strides in p["strides"]:
        for d, got, want in zip(dims, strides, expected):
            # a dim of size 1 is never stepped: its stride does not matter
            if sympy.sympify(d) != 1 and sympy.expand(sympy.sympify(got) - want) != 0:
                return 0
    return width
