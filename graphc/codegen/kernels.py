"""One spec per kernel kind: the params a kernel of that kind carries, and the traits the memory
planner reads (instead of asking for kind names).

Param values are typed data, never C text (tests/test_program.py checks it):
  sizes, strides, offsets   int or sympy expression over the bound dims
  dtypes                    dtype names ("float32", ...; params named *dtype or *dtypes)
  scalar bodies             program.ScalarBody (sympy expressions over named operands)
  flags, counts, constants  bool, int, float
  names                     a plain identifier (a reduction's kind "sum", an operand's "v0")
A renderer turns them into its language (the C renderer: jinja filters in render_c.py).
"""
from dataclasses import dataclass

import sympy

from ..errors import CompileError

_CONV = ("N", "G", "CG", "MG", "C", "H", "W", "KH", "KW", "SH", "SW", "PH", "PW", "DH", "DW",
         "HO", "WO", "dtype", "acc_dtype")
_BLOCKED = ("N", "C", "H", "W", "CO", "KH", "KW", "SH", "SW", "PH", "PW", "HO", "WO", "SLOTS",
            "SLOT_ELEMS", "dtype")
_POOL = ("planes", "H", "W", "HO", "WO", "KH", "KW", "SH", "SW", "PH", "PW", "HW", "P", "dtype")
_LRN = ("N", "C", "P", "half", "k", "alpha_n", "coef", "beta", "dtype")
_INDEX = ("nidx", "inner", "dims", "idx_strides", "axis_sizes", "axis_strides", "idx_dtypes",
          "dtype", "strict", "axes")


@dataclass(frozen=True)
class KernelSpec:
    kind: str
    params: tuple
    # Can fail at run time (an index or label out of range): a bool, the name of the param that
    # says so (a loop: when its body can), or a function of the kernel.
    fallible: object = False
    # Each output element depends only on the input elements at the same index, so an output may
    # overwrite a full-size input (the params' `full_inputs`) that dies at this kernel.
    elementwise: bool = False
    copies_input: bool = False  # the output is a copy of the one input
    # Adds into what its output already holds: always (True), or when this param is nonzero.
    accumulates: object = False
    # Calls the BLAS (the C renderer then declares the gemm helpers for its dtype param).
    blas: bool = False

    def can_fail(self, kernel):
        if isinstance(self.fallible, str):
            return bool(kernel.params[self.fallible])
        return bool(self.fallible(kernel) if callable(self.fallible) else self.fallible)

    def accumulates_into_output(self, kernel):
        if isinstance(self.accumulates, str):
            return bool(kernel.params[self.accumulates])
        return bool(self.accumulates)


def _may_reduce_empty_axis(kernel):
    """max/min/argmax over an axis whose length is not known to be nonzero fail when it is 0."""
    p = kernel.params
    length = sympy.sympify(p["R"])
    return p.get("kind", "max") in ("max", "min") and not (length.is_Integer and length > 0)


SPECS = {s.kind: s for s in [
    KernelSpec("elemwise", ("full_inputs", "dims", "strides", "n", "body", "out_dtypes"),
               elementwise=True),
    KernelSpec("reduce", ("kind", "A", "R", "B", "acc_dtype", "in_dtype", "out_dtype", "fused",
                          "body", "scalar_inputs"), fallible=_may_reduce_empty_axis),
    KernelSpec("argmax", ("A", "R", "B", "in_dtype"), fallible=_may_reduce_empty_axis),
    KernelSpec("gemm", ("M", "N", "K", "batch", "lda", "ldb", "ldc", "stride_a", "stride_b",
                        "stride_c", "trans_a", "trans_b", "dtype", "alpha", "beta"),
               accumulates="beta", blas=True),
    # a gemm (batch 1, beta 0) whose B is a parameter: from min_rows rows of A on, B packed into
    # its scratch each call and the packed kernel run instead of the BLAS (dense_packed.py)
    KernelSpec("gemm_dense_packed", ("M", "N", "K", "batch", "lda", "ldb", "ldc", "stride_a",
                                     "stride_b", "stride_c", "trans_a", "trans_b", "dtype", "alpha",
                                     "beta", "min_rows"), blas=True),
    KernelSpec("copy", ("n",), copies_input=True),
    KernelSpec("strided_copy", ("rank", "shape", "src_strides", "dst_strides", "src_offset",
                                "dst_offset", "n", "dtype", "accumulate"), accumulates="accumulate"),
    KernelSpec("fill", ("n", "value")),
    KernelSpec("arange", ("n", "dtype")),
    KernelSpec("gather", _INDEX, fallible=True),
    KernelSpec("scatter_add", _INDEX, fallible=True, accumulates=True),
    KernelSpec("scatter_set", _INDEX, fallible=True, accumulates=True),  # (the last write wins)
    KernelSpec("softmax", ("rows", "cols", "log", "dtype")),
    KernelSpec("softmax_xent", ("rows", "cols", "grad", "dtype"), fallible=True),
    KernelSpec("conv_im2col", _CONV + ("RS", "NS")),
    KernelSpec("conv_col2im", _CONV + ("RS", "NS")),
    # im2col + gemm over chunks of NB images (the workspace stays bounded); scratch: the chunk's
    # column matrix and its (C_out, NB, P) product or output gradient (lower_cnn.py)
    # (NB1: the chunk for one thread, cache-sized, <= NB)
    KernelSpec("conv_chunked", _CONV + ("NB", "NB1"), blas=True),
    KernelSpec("conv_chunked_grad_input", _CONV + ("NB", "NB1"), blas=True),
    KernelSpec("conv_chunked_grad_weights", _CONV + ("NB", "NB1"), blas=True),
    # Winograd F(2x2, 3x3) of a 3x3 stride-1 conv (FLIP: its input gradient) over chunks of NB
    # images; scratch: the filters' transform U, the chunk's tiles V and products M (lower_cnn.py)
    KernelSpec("conv_winograd", ("N", "CI", "CO", "HI", "WI", "HO", "WO", "PH", "PW", "NB", "NB1",
                                 "FLIP", "dtype"), blas=True),
    # the same by F(4x4, 3x3) (conv_winograd4.j2; its scratch U, V, M hold 36 transforms)
    KernelSpec("conv_winograd4", ("N", "CI", "CO", "HI", "WI", "HO", "WO", "PH", "PW", "NB", "NB1",
                                  "FLIP", "dtype"), blas=True),
    # its weight gradient by F(3x3, 2x2); scratch: the transformed sum Z, tiles V, gy's tiles Q
    KernelSpec("conv_winograd_grad_weights", ("N", "CI", "CO", "HI", "WI", "HO", "WO", "PH", "PW",
                                              "NB", "NB1", "dtype"), blas=True),
    # Blocked direct convolution (templates/c/_conv_blocked.j2, in the runtime library: `blas`
    # declares it with the gemm helpers); FLIP: the input gradient of a stride-1 conv. Scratch:
    # packed weights, tap offsets, SLOTS per-thread slots of SLOT_ELEMS (lower_cnn_blocked.py)
    # epilogue: steps applied in its stores, in order ("bias", "residual", "residual_bias": one
    # more input each, in that order; "relu"), folded from the elementwise kernel after it
    # (conv_epilogue.py)
    KernelSpec("conv_blocked", _BLOCKED + ("FLIP", "epilogue"), blas=True),
    KernelSpec("conv_blocked_grad_weights", _BLOCKED, blas=True),
    KernelSpec("conv_direct", _CONV),
    KernelSpec("conv_direct_grad_input", _CONV),
    KernelSpec("conv_direct_grad_weights", _CONV),
    KernelSpec("pool_max", _POOL),
    # max pooling whose argmax nothing reads (C target: CCapabilities.max_pool_without_argmax)
    KernelSpec("pool_max_value", _POOL),
    KernelSpec("pool_max_grad", _POOL),
    KernelSpec("pool_avg", _POOL),
    KernelSpec("pool_avg_grad", _POOL),
    KernelSpec("pool_max_gather", ("planes", "HW", "P", "dtype")),
    KernelSpec("lrn", _LRN),
    KernelSpec("lrn_grad", _LRN),
    # Runs its body program `trip` times: inputs are (sequences, initial states, non-sequences,
    # the body's constants), outputs (final states, stacked per-step outputs); scratch is (body
    # workspace, then two buffers per state). `bindings`, one per body external in slot order:
    # (kind, index, stride) with kind slice (inputs[index] + it*stride elements), whole
    # (inputs[index]), state_in / state_out (state index's previous / next value), slice_out
    # (outputs[index] + it*stride). `state_sizes`: elements per state. `reverse`: the slices
    # are taken at trip-1-it instead of it. `packs`: body products whose right operand is
    # loop-invariant and packed once before the loop (lower_loop.py, the target's capabilities
    # decide), (body kernel index, loop input index, scratch index, trans_b, K, N, ldb) each.
    # `step_macs`, `step_elements`: an iteration's product multiply-adds and other elements
    # written (the C target opens a team of threads for the loop when they are large).
    KernelSpec("loop", ("trip", "n_seqs", "n_states", "state_sizes", "bindings", "body",
                        "body_fallible", "reverse", "packs", "step_macs", "step_elements"),
               fallible="body_fallible"),
    KernelSpec("random_uniform", ("n", "single", "k0", "k1", "m0", "m1", "w0", "w1")),
    # Training batch norm over x viewed as (N, C, P), per channel (lower_norm.py; the C target's
    # code is in the runtime library: templates/c/_batch_norm.j2). Outputs (y, mean, var); the
    # gradient's (gx, dgamma, dbeta) from inputs (x, gamma, mean, var, gy).
    # `act`: "none"; "relu" (y = relu(bn(x)), the gradient's mask from input y after gy);
    # "add_relu" (y = relu(bn(x) + r), r the fourth input): passes/fuse_batch_norm.py.
    KernelSpec("batch_norm", ("N", "C", "P", "eps", "dtype", "act")),
    KernelSpec("batch_norm_grad", ("N", "C", "P", "eps", "dtype", "act")),
]}


def spec_of(kind):
    try:
        return SPECS[kind]
    except KeyError:
        raise CompileError(f"no kernel spec for kind {kind!r}; expected one of {sorted(SPECS)}") \
            from None


def check_params(kind, params):
    """A kernel's params must be exactly its spec's (a typo would otherwise surface as a jinja
    error at render time, far from the lowering that made it)."""
    expected = spec_of(kind).params
    if set(params) != set(expected):
        missing = sorted(set(expected) - set(params))
        extra = sorted(set(params) - set(expected))
        raise CompileError(f"kernel {kind!r}: params missing {missing}, unexpected {extra}; "
                           f"expected {list(expected)}")
