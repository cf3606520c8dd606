"""Dense layers with constant weights: a product op(A) @ op(B) whose B is a parameter (a shared
variable or a constant, as an imported model's initializers are) becomes a gemm_dense_packed
kernel, which at run time, when A has enough rows, packs B into panels and runs the runtime
library's packed kernel (templates/c/_gemm_packed.j2, the LSTM's) instead of the BLAS; with few
rows it calls the BLAS as gemm does. The target's capabilities say which sizes pay
(CCapabilities.packs_dense_product) and from how many rows. Runs on the lowered Program, before
memory planning; the packed panels are the kernel's scratch.
"""
import sympy

# Columns per packed panel, per dtype (_gemm_packed.j2: 4 vectors of 32 bytes).
PANEL_COLUMNS = {"float32": 32, "float64": 16}


def pack_dense_products(program, capabilities, new_buffer):
    """Turn each product whose right operand is a parameter into gemm_dense_packed where the
    capabilities say it pays (in place on `program`; `new_buffer(dtype, shape, role, name)` makes
    the scratch, in program.buffers). Returns the program."""
    pays = getattr(capabilities, "packs_dense_product", None)
    if pays is None:
        return program
    for kern in program.kernels:
        p = kern.params
        if kern.kind != "gemm" or kern.inputs[1].role not in ("shared", "const") \
                or p["batch"] != 1 or p["beta"] or p["dtype"] not in PANEL_COLUMNS:
            continue
        N, K = p["N"], p["K"]
        if not all(isinstance(d, (int, sympy.Integer)) for d in (N, K)):
            continue
        min_rows = pays(int(N), int(K), p["dtype"])
        if not min_rows:
            continue
        cols = PANEL_COLUMNS[p["dtype"]]
        buf = new_buffer(p["dtype"], (-(-int(N) // cols) * cols * int(K),), "temp",
                         f"{kern.label} packed weights")
        kern.kind = "gemm_dense_packed"
        kern.params = dict(p, min_rows=min_rows)
        kern.scratch = [buf]
        kern.label += f" (weights packed from {min_rows} rows)"
    return program

