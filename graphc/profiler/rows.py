"""Kernel rows of a report: each kernel's time with its FLOPs, bytes, achieved rate and the
fraction of the machine's peak: gemm GFLOP/s for the kinds whose work is arithmetic (products,
direct convolutions), else the bandwidth of a copy that moves as many bytes."""
from .cost import value_at, kernel_bytes, kernel_dtype, kernel_flops
from .report import KernelRow, user_names

# Kinds bound by arithmetic (decided by kind, not by a roofline of the measured peaks: one peak
# measured on a busy machine would turn a product "memory bound").
COMPUTE_KINDS = ("gemm", "conv_direct", "conv_direct_grad_input", "conv_direct_grad_weights",
                 "conv_blocked", "conv_blocked_grad_weights")


def _bound(flops, kind):
    return "compute" if kind in COMPUTE_KINDS and flops else "memory"


def kernel_work(program, dim_counts):
    """[(FLOPs, bytes)] per kernel, the mean over calls: dim_counts {dims tuple (in the order of
    program.dim_symbols): calls}."""
    return _mean_work(program, program.kernels, dim_counts, lambda k: 1)


def body_work(program, dim_counts):
    """{loop kernel index: [(FLOPs, bytes)] per body kernel over all iterations of a call}, the
    mean over calls (a body kernel's sizes are over the outer program's dims)."""
    out = {}
    for i, loop in enumerate(program.kernels):
        if loop.kind == "loop":
            trip = loop.params["trip"]
            out[i] = _mean_work(program, loop.params["body"].kernels, dim_counts,
                                lambda dims: value_at(trip, dims))
    return out


def _mean_work(program, kernels, dim_counts, times):
    total = sum(dim_counts.values())
    work = [(0.0, 0.0)] * len(kernels)
    for values, count in dim_counts.items():
        dims = dict(zip(program.dim_symbols, values))
        n = count * times(dims)
        work = [(f + n * kernel_flops(k, dims), b + n * kernel_bytes(k, dims))
                for (f, b), k in zip(work, kernels)]
    return [(f / total, b / total) for f, b in work] if total else work


def kernel_rows(program, work, seconds, call_seconds, peak=None, min_seconds=None,
                mean_seconds=None, loops=None, loop_work=None):
    """One KernelRow per top-level kernel of `program`: `work` [(FLOPs, bytes)] (kernel_work)
    and `seconds` per kernel. loops: {loop kernel index: (iterations a call, body kernels'
    seconds a call, their means or None)} from the profiling build's loop counters, with
    loop_work (body_work): the loop's row gets a row per body kernel."""
    rows = []
    for i, (kernel, s, (flops, nbytes)) in enumerate(zip(program.kernels, seconds, work)):
        row = _row(i, kernel, s, flops, nbytes, call_seconds, peak,
                   min_seconds[i] if min_seconds is not None else None,
                   mean_seconds[i] if mean_seconds is not None else None)
        if loops and i in loops:
            iterations, body_s, body_mean = loops[i]
            row.iterations = iterations
            # (the bandwidth to compare with is a copy of one iteration's size)
            row.body = [_row(j, k, bs, f, b, call_seconds, peak, None,
                             body_mean[j] if body_mean is not None else None,
                             b / iterations if iterations else b)
                        for j, (k, bs, (f, b)) in enumerate(zip(
                            kernel.params["body"].kernels, body_s, loop_work[i]))]
        rows.append(row)
    return rows


def _row(i, kernel, s, flops, nbytes, call_seconds, peak, min_s, mean_s, copy_bytes=None):
    dtype = kernel_dtype(kernel)
    gflops = peak.gflops(dtype) if peak is not None else None
    gbps = peak.bandwidth(copy_bytes or nbytes) if peak is not None else None
    bound = _bound(flops, kernel.kind)
    rate = (flops if bound == "compute" else nbytes) / s / 1e9 if s > 0 else 0.0
    top = gflops if bound == "compute" else gbps
    return KernelRow(
        index=i, kind=kernel.kind, ops=kernel.label, names=user_names(kernel),
        seconds=float(s), share=float(s / call_seconds) if call_seconds else 0.0,
        flops=int(round(flops)), bytes=int(round(nbytes)), dtype=dtype, bound=bound,
        rate=float(rate), peak_fraction=float(rate / top) if top and s > 0 else None,
        min_seconds=float(min_s) if min_s is not None else None,
        mean_seconds=float(mean_s) if mean_s is not None else None)
