"""What a kernel of the Program does, in FLOPs and bytes moved, at given dim values: the
numerators of the profiler's GFLOP/s and GB/s.

FLOPs count arithmetic: a multiply-add is 2, each operation or function call of an elementwise
body is 1 (exp as 1: the count is of work asked for, not of instructions). Bytes are the buffers
a kernel reads and writes once each (a buffer updated in place counts twice): what a kernel that
streams its operands moves at least; a kernel that rereads them moves more."""
import math
import sympy

from ..codegen.program import DTYPE_BYTES


def value_at(expr, dims):
    """An int or sympy size at the bound dims ({symbol: int})."""
    if isinstance(expr, int):
        return expr
    return int(sympy.sympify(expr).xreplace(dims))


def _body_ops(body):
    """Operations per element of a ScalarBody (at least 1: a copy still moves each element)."""
    if body is None:
        return 0
    return max(1, sum(int(sympy.count_ops(e)) for e in body.exprs))


def _elements(buf, dims):
    return value_at(buf.size, dims)


def _conv_macs(p, dims):
    v = {k: value_at(p[k], dims) for k in ("N", "G", "CG", "MG", "HO", "WO", "KH", "KW")}
    return v["N"] * v["G"] * v["MG"] * v["CG"] * v["KH"] * v["KW"] * v["HO"] * v["WO"]


def kernel_flops(kernel, dims):
    p, kind = kernel.params, kernel.kind
    if kind in ("gemm", "gemm_dense_packed"):
        return 2 * value_at(p["M"], dims) * value_at(p["N"], dims) * value_at(p["K"], dims) * \
            value_at(p["batch"], dims)
    if kind == "elemwise":
        return value_at(p["n"], dims) * _body_ops(p["body"])
    if kind in ("reduce", "argmax"):
        n = value_at(p["A"], dims) * value_at(p["R"], dims) * value_at(p["B"], dims)
        return n * (1 + (_body_ops(p.get("body")) if p.get("fused") else 0))
    if kind in ("softmax", "softmax_xent"):  # max, subtract and exp, sum, divide (or log)
        return 4 * value_at(p["rows"], dims) * value_at(p["cols"], dims)
    if kind.startswith("conv_direct"):
        return 2 * _conv_macs(p, dims)
    if kind.startswith("conv_blocked"):  # (the input gradient: the forward's products, H x W of gy)
        plane = ("H", "W") if p.get("FLIP") else ("HO", "WO")
        return 2 * math.prod(value_at(p[k], dims) for k in ("N", "C", "CO", "KH", "KW") + plane)
    if kind.startswith("pool_") and "KH" in p:
        return value_at(p["planes"], dims) * value_at(p["HO"], dims) * value_at(p["WO"], dims) * \
            value_at(p["KH"], dims) * value_at(p["KW"], dims)
    if kind in ("lrn", "lrn_grad"):  # a window sum, then scale ** -beta (~ 5 operations)
        return value_at(p["N"], dims) * value_at(p["C"], dims) * value_at(p["P"], dims) * \
            (2 * value_at(p["half"], dims) + 1 + 5)
    if kind in ("batch_norm", "batch_norm_grad"):  # the sums' pass (~4), the output's (~3)
        return 7 * value_at(p["N"], dims) * value_at(p["C"], dims) * value_at(p["P"], dims)
    if kind == "loop":
        return value_at(p["trip"], dims) * sum(kernel_flops(k, dims) for k in p["body"].kernels)
    return 0  # copies, fills, gathers, scatters, im2col, random bits: data movement


def kernel_bytes(kernel, dims):
    if kernel.kind == "loop":
        p = kernel.params
        return value_at(p["trip"], dims) * sum(kernel_bytes(k, dims) for k in p["body"].kernels)
    moved = 0
    for b in kernel.inputs + kernel.outputs:
        moved += _elements(b, dims) * DTYPE_BYTES[b.dtype]
    return moved


def kernel_dtype(kernel):
    """The float type a kernel computes in (for the gemm peak of its precision)."""
    p = kernel.params
    for key in ("dtype", "acc_dtype", "in_dtype"):
        if isinstance(p.get(key), str):
            return p[key]
    dtypes = [b.dtype for b in kernel.outputs if b.dtype.startswith("float")]
    return dtypes[0] if dtypes else "float32"
