"""Kernel rows of a report: each kernel's time with its FLOPs, bytes, achieved rate and the
fraction of the machine's peak: gemm GFLOP/s for the kinds whose work is arithmetic (products,
direct convolutions), else the bandwidth of a copy that moves as many bytes."""
from .cost import kernel_bytes, kernel_dtype, kernel_flops
from .report import KernelRow, user_names

# Kinds bound by arithmetic (decided by kind, not by a roofline of the measured peaks: one peak
# measured on a busy machine would turn a product "memory bound").
COMPUTE_KINDS = ("gemm", "conv_direct", "conv_direct_grad_input", "conv_direct_grad_weights")


def _bound(flops, kind):
    return "compute" if kind in COMPUTE_KINDS and flops else "memory"


def kernel_work(program, dim_counts):
    """[(FLOPs, bytes)] per kernel, the mean over calls: dim_counts {dims tuple (in the order of
    program.dim_symbols): calls}."""
    total = sum(dim_counts.values())
    work = [(0.0, 0.0)] * len(program.kernels)
    for values, count in dim_counts.items():
        dims = dict(zip(program.dim_symbols, values))
        work = [(f + count * kernel_flops(k, dims), b + count * kernel_bytes(k, dims))
                for (f, b), k in zip(work, program.kernels)]
    return [(f / total, b / total) for f, b in work] if total else work


def kernel_rows(program, work, seconds, call_seconds, peak=None, min_seconds=None,
                mean_seconds=None):
    """One KernelRow per top-level kernel of `program`: `work` [(FLOPs, bytes)] (kernel_work)
    and `seconds` per kernel."""
    rows = []
    for i, (kernel, s, (flops, nbytes)) in enumerate(zip(program.kernels, seconds, work)):
        dtype = kernel_dtype(kernel)
        gflops = peak.gflops(dtype) if peak is not None else None
        gbps = peak.bandwidth(nbytes) if peak is not None else None
        bound = _bound(flops, kernel.kind)
        rate = (flops if bound == "compute" else nbytes) / s / 1e9 if s > 0 else 0.0
        top = gflops if bound == "compute" else gbps
        rows.append(KernelRow(
            index=i, kind=kernel.kind, ops=kernel.label, names=user_names(kernel),
            seconds=float(s), share=float(s / call_seconds) if call_seconds else 0.0,
            flops=int(round(flops)), bytes=int(round(nbytes)), dtype=dtype, bound=bound, rate=float(rate),
            peak_fraction=float(rate / top) if top and s > 0 else None,
            min_seconds=float(min_seconds[i]) if min_seconds is not None else None,
            mean_seconds=float(mean_seconds[i]) if mean_seconds is not None else None))
    return rows
