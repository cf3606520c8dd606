"""Lowering: an optimized FunctionGraph becomes a Program of kernels over buffers.

Each op family has one lowering function (registered by op class in lower_support.LOWERINGS;
this module holds the core ops, lower_cnn.py the convolutional ones). Reshapes are views: they
share their input's buffer. Every graph output gets a buffer of its own that only the program
writes, so the runtime can hand it to the caller. Kernel params are typed data (kernels.py); the
target's capabilities are consulted only where they change the kernel sequence (conv algorithm).
"""
import itertools
import math

import sympy

from ..errors import CompileError
from ..ir.graph import Constant
from ..ir.ops import blas, elemwise, indexing, nn, reduce, shape as shape_ops
from ..ir.types import size_of
from ..passes.fuse_siblings import MultiElemwise
from . import lower_cnn  # noqa: F401  (registers the convolutional-net lowerings)
from . import lower_loop  # noqa: F401  (registers the loop lowering)
from . import lower_norm  # noqa: F401  (registers the batch-norm lowerings)
from .conv_epilogue import fold_conv_epilogues
from .dense_packed import pack_dense_products
from .kernels import check_params
from .lower_support import contig_strides as _contig_strides
from .lower_support import emit_strided_copy as _emit_strided_copy
from .lower_support import lowering_for, lowers
from .program import Buffer, Kernel, Program, ScalarBody


class Lowerer:
    def __init__(self, fgraph, dim_symbols, capabilities, dims=None, buffer_ids=None):
        self.fg = fgraph
        self.caps = capabilities
        self.dims = dims or fgraph.dims
        self.buffers, self.kernels = [], []
        self.buf_of = {}  # variable -> Buffer
        self.dim_symbols = list(dim_symbols)
        # Buffer ids are unique across a program and the bodies of its loops (a body's buffers
        # are locals in the same C function as the outer ones).
        self.buffer_ids = buffer_ids or itertools.count()

    def body_lowerer(self, fgraph, dims):
        """A Lowerer for a loop body: the same dims, target and buffer numbering."""
        return type(self)(fgraph, self.dim_symbols, self.caps, dims, self.buffer_ids)

    # --- buffers --------------------------------------------------------------------------
    def shape(self, v):
        return self.dims.shape(v)

    def new_buffer(self, dtype, shape, role, name=""):
        b = Buffer(next(self.buffer_ids), dtype, tuple(shape), role, name=name)
        self.buffers.append(b)
        return b

    def buffer(self, v):
        if v not in self.buf_of:
            if isinstance(v, Constant):
                self.buf_of[v] = self.new_buffer(v.dtype, v.data.shape, "const", v.label())
                self.buf_of[v].value = v.data
            else:
                raise CompileError(f"lowering: no buffer for {v}")
        return self.buf_of[v]

    def out_buffer(self, v):
        """The buffer an op writes its output v into (a temp unless planned otherwise)."""
        if v not in self.buf_of:
            self.buf_of[v] = self.new_buffer(v.dtype, self.shape(v), "temp", v.label())
        return self.buf_of[v]

    def emit(self, kernel_kind, outputs, inputs, label="", **params):
        check_params(kernel_kind, params)
        self.kernels.append(Kernel(kernel_kind, list(outputs), list(inputs), params, label))

    # --- driver ---------------------------------------------------------------------------
    def run(self):
        fg = self.fg
        externals = []
        for k, v in enumerate(fg.inputs):
            b = self.new_buffer(v.dtype, self.shape(v), "input", v.label())
            self.buf_of[v] = b
            externals.append(b)
        for v in fg.shareds:
            b = self.new_buffer(v.dtype, v.type.shape, "shared", v.label())
            self.buf_of[v] = b
            externals.append(b)
        # Outputs: a dedicated buffer each, owned by the caller.
        out_bufs, claimed = [], set()
        for k, v in enumerate(fg.outputs):
            b = self.new_buffer(v.dtype, self.shape(v), "output", f"out{k}")
            out_bufs.append(b)
            if v.owner is not None and v not in claimed and not self._is_view_of_leaf(v):
                self._claim(v, b)
                claimed.add(v)
        for node in fg.nodes:
            fn = lowering_for(node.op)
            if fn is None:
                raise CompileError(f"the C backend cannot lower {node.op} yet (use backend='py')")
            fn(self, node)
        # Outputs that are leaves, views of leaves or repeated: copy into their own buffer.
        for v, b in zip(fg.outputs, out_bufs):
            if self.buf_of.get(v) is not b:
                src = self.buffer(v) if v.owner is None else self.buf_of[v]
                self.emit("copy", [b], [src], "output copy", n=size_of(self.shape(v)))
        consts = [b for b in self.buffers if b.role == "const"]
        externals += consts + out_bufs
        for slot, b in enumerate(externals):
            b.slot = slot
        for k, b in enumerate(out_bufs):
            b.slot_index = k
        return Program(self.buffers, self.kernels, self.dim_symbols, externals, out_bufs)

    def _is_view_of_leaf(self, v):
        while v.owner is not None and isinstance(v.owner.op, shape_ops.Reshape):
            v = v.owner.inputs[0]
        return v.owner is None

    def _claim(self, v, b):
        """Make v (and the variables it is a reshape of) write straight into output buffer b."""
        self.buf_of[v] = b
        while v.owner is not None and isinstance(v.owner.op, shape_ops.Reshape):
            v = v.owner.inputs[0]
            if v in self.buf_of or v in self.fg.outputs:
                break
            self.buf_of[v] = b


# --- elementwise ------------------------------------------------------------------------------

def scalar_body(L, inputs, exprs, out_dtype):
    """Inline size-1 constants into `exprs`, name the remaining inputs v0.. Returns (operand
    variables, ScalarBody): one set of loads for all the expressions, one result each."""
    subs, operands = {}, []
    used = set().union(*(e.free_symbols for e in exprs))
    for k, v in enumerate(inputs):
        sym = elemwise.ARGS[k]
        if sym not in used:
            continue
        if isinstance(v, Constant) and v.data.size == 1:
            val = v.data.reshape(()).item()
            subs[sym] = sympy.true if val is True else sympy.false if val is False else \
                sympy.Integer(val) if isinstance(val, int) else sympy.Float(val, 17)
            continue
        name = sympy.Symbol(f"v{len(operands)}")
        subs[sym] = name
        operands.append((v, name))
    exprs = [e.xreplace(subs) for e in exprs]
    ctx = next((d for d in [out_dtype] + [v.dtype for v, _ in operands] if d.startswith("float")),
               "float64")
    loads = tuple((name.name, v.dtype) for v, name in operands)
    return [v for v, _ in operands], ScalarBody(loads, tuple(exprs), ctx)


@lowers(elemwise.Elemwise, elemwise.Second)
def lower_elemwise(L, node):
    _lower_elementwise(L, node, [node.op.expr])


@lowers(MultiElemwise)
def lower_multi_elemwise(L, node):
    _lower_elementwise(L, node, list(node.op.exprs))


def _lower_elementwise(L, node, exprs):
    """One loop over the output shape computing every output of `node` (all of one shape)."""
    outs = node.outputs
    oshape = L.shape(outs[0])
    operands, body = scalar_body(L, node.inputs, exprs, outs[0].dtype)
    obs = [L.out_buffer(o) for o in outs]
    dims, strides = collapse_broadcast(oshape, [L.shape(v) for v in operands])
    full = [k for k, v in enumerate(operands) if tuple(L.shape(v)) == tuple(oshape)]
    L.emit("elemwise", obs, [L.buffer(v) for v in operands], str(node.op), full_inputs=full,
           dims=dims, strides=strides, n=size_of(oshape), body=body,
           out_dtypes=[o.dtype for o in outs])


def collapse_broadcast(oshape, in_shapes):
    """Merge adjacent axes that broadcast alike; returns (dims, per-input strides in elements)."""
    r = len(oshape)
    padded = [(1,) * (r - len(s)) + tuple(s) for s in in_shapes]
    axes = [a for a in range(r) if oshape[a] != 1]
    groups = []  # (size, pattern) with pattern[k] = input k is broadcast along this group
    for a in axes:
        pattern = tuple(p[a] == 1 for p in padded)
        if groups and groups[-1][1] == pattern:
            groups[-1] = (groups[-1][0] * oshape[a], pattern)
        else:
            groups.append((sympy.sympify(oshape[a]), pattern))
    dims = [g[0] for g in groups]
    strides = []
    for k in range(len(in_shapes)):
        st, acc = [], sympy.Integer(1)
        for size, pattern in reversed(groups):
            if pattern[k]:
                st.append(0)
            else:
                st.append(acc)
                acc = acc * size
        strides.append(list(reversed(st)))
    return dims, strides


# --- reductions -------------------------------------------------------------------------------

@lowers(reduce.Reduce)
def lower_reduce(L, node):
    out = node.outputs[0]
    fused = getattr(node.op, "expr", None) is not None
    x = None if fused else node.inputs[0]
    if fused:  # elementwise producer folded into the reduction: inputs are full-size or scalars
        shape, axes = L.shape(node.op.value_type(node)), node.op.axes
        operands, body = scalar_body(L, node.inputs, [node.op.expr], node.op.value_dtype)
        inputs = [L.buffer(v) for v in operands]
        scalar = [size_of(L.shape(v)) == 1 for v in operands]
        in_dtype = node.op.value_dtype
    else:
        inputs, body, scalar, in_dtype = [L.buffer(x)], None, [], x.dtype
        shape, axes = L.shape(x), tuple(node.op.axes)
    # sums and products accumulate in double (floats) or int64 (integers and bools)
    acc = "float64" if in_dtype.startswith("float") and node.op.kind in ("sum", "prod") else out.dtype
    if node.op.kind in ("sum", "prod") and not in_dtype.startswith("float"):
        acc = "int64"
    if not fused:
        inputs, shape, axes, in_dtype = _reduce_leading_blocks(L, node, inputs[0], shape, axes,
                                                               in_dtype, acc)
    a, r, b = _arb(shape, axes)
    L.emit("reduce", [L.out_buffer(out)], inputs, str(node.op), kind=node.op.kind,
           A=_num(a), R=r, B=_num(b), acc_dtype=acc, in_dtype=in_dtype, out_dtype=out.dtype,
           fused=fused, body=body, scalar_inputs=scalar)


def _reduce_leading_blocks(L, node, xb, shape, axes, in_dtype, acc):
    """Axes that are not one block (a bias or batch norm gradient: (0, 2, 3) of NCHW) reduce
    block by block from the last, each pass reading its input in order into a partial in the
    accumulator's dtype (no transposed copy of the input). Returns what the last pass reduces:
    ([buffer], shape, its one block of axes, dtype)."""
    blocks = []
    for ax in axes:
        if blocks and ax == blocks[-1][-1] + 1:
            blocks[-1].append(ax)
        else:
            blocks.append([ax])
    while len(blocks) > 1:
        block = blocks.pop()
        a, r, b = _arb(shape, block)
        shape = [1 if k in block else d for k, d in enumerate(shape)]
        part = L.new_buffer(acc, shape, "temp", f"{node.op} partial over axes {tuple(block)}")
        L.emit("reduce", [part], [xb], f"{node.op} (axes {tuple(block)} first)", kind=node.op.kind,
               A=_num(a), R=r, B=_num(b), acc_dtype=acc, in_dtype=in_dtype, out_dtype=acc,
               fused=False, body=None, scalar_inputs=[])
        xb, in_dtype = part, acc
    return [xb], shape, tuple(blocks[0]) if blocks else (), in_dtype


def _num(n):
    """An int when the size is static (templates can then specialize), else the expression."""
    return int(n) if isinstance(n, int) or sympy.sympify(n).is_Integer else n


def _arb(shape, axes):
    if not axes:
        return size_of(shape), 1, 1
    lo, hi = axes[0], axes[-1] + 1
    return size_of(shape[:lo]), size_of(shape[lo:hi]), size_of(shape[hi:])


@lowers(reduce.Argmax)
def lower_argmax(L, node):
    x, out = node.inputs[0], node.outputs[0]
    shape = L.shape(x)
    a, r, b = (1, size_of(shape), 1) if node.op.axis is None else _arb(shape, (node.op.axis,))
    L.emit("argmax", [L.out_buffer(out)], [L.buffer(x)], str(node.op), A=a, R=r, B=b,
           in_dtype=x.dtype)


# --- gemm -------------------------------------------------------------------------------------

@lowers(blas.Matmul, blas.GemmUpdate)
def lower_matmul(L, node):
    update = isinstance(node.op, blas.GemmUpdate)
    if update:  # out = c, then the gemm adds alpha * a @ b (the copy vanishes when in place)
        c, a, b = node.inputs
        L.emit("copy", [L.out_buffer(node.outputs[0])], [L.buffer(c)], "gemm update: start from c",
               n=size_of(L.shape(c)))
    else:
        a, b = node.inputs
    out = node.outputs[0]
    ash, bsh, osh = L.shape(a), L.shape(b), L.shape(out)
    m, n = osh[-2], osh[-1]
    k = ash[-2] if node.op.trans_a else ash[-1]
    batch = osh[0] if len(osh) == 3 else 1
    L.emit("gemm", [L.out_buffer(out)], [L.buffer(a), L.buffer(b)], str(node.op),
           M=m, N=n, K=k, batch=batch, lda=ash[-1], ldb=bsh[-1], ldc=n,
           stride_a=size_of(ash[-2:]), stride_b=size_of(bsh[-2:]), stride_c=size_of(osh[-2:]),
           trans_a=node.op.trans_a, trans_b=node.op.trans_b, dtype=out.dtype,
           alpha=float(node.op.alpha) if update else 1.0, beta=1.0 if update else 0.0)


# --- data movement -----------------------------------------------------------------------------

@lowers(shape_ops.Reshape)
def lower_reshape(L, node):
    out, x = node.outputs[0], node.inputs[0]
    if out in L.buf_of and L.buf_of[out] is not L.buffer(x):  # claimed by an output: copy
        L.emit("copy", [L.buf_of[out]], [L.buffer(x)], "reshape into output",
               n=size_of(L.shape(out)))
    else:
        L.buf_of[out] = L.buffer(x)


@lowers(shape_ops.Transpose)
def lower_transpose(L, node):
    x, out = node.inputs[0], node.outputs[0]
    xs = _contig_strides(L.shape(x))
    oshape = L.shape(out)
    _emit_strided_copy(L, L.out_buffer(out), L.buffer(x), oshape, [xs[p] for p in node.op.perm], 0,
                       _contig_strides(oshape), 0, str(node.op))


def _slice_geometry(L, index, xshape):
    """(offset, strides of the kept axes) of a basic slice, in elements of the sliced tensor."""
    xs = _contig_strides(xshape)
    offset, strides = sympy.Integer(0), []
    for axis, d in enumerate(xshape):
        it = index[axis] if axis < len(index) else (0, d, 1)
        if isinstance(it, tuple):
            start, _, step = it
            offset += start * xs[axis]
            strides.append(xs[axis] * step)
        else:
            offset += it * xs[axis]
    return L.dims.resolve(offset), strides


@lowers(shape_ops.Subtensor)
def lower_subtensor(L, node):
    x, out = node.inputs[0], node.outputs[0]
    offset, strides = _slice_geometry(L, node.op.index, L.shape(x))
    oshape = L.shape(out)
    _emit_strided_copy(L, L.out_buffer(out), L.buffer(x), oshape, strides, offset,
                       _contig_strides(oshape), 0, str(node.op))


@lowers(shape_ops.IncSubtensor)
def lower_incsubtensor(L, node):
    g, out = node.inputs[0], node.outputs[0]
    ob = L.out_buffer(out)
    L.emit("fill", [ob], [], "zeros", n=size_of(L.shape(out)), value=0)
    offset, strides = _slice_geometry(L, node.op.index, L.shape(out))
    gshape = L.shape(g)
    _emit_strided_copy(L, ob, L.buffer(g), gshape, _contig_strides(gshape), 0, strides, offset,
                       str(node.op))


@lowers(shape_ops.IncSubtensorSum)
def lower_incsubtensor_sum(L, node):
    out = node.outputs[0]
    ob, oshape = L.out_buffer(out), L.shape(out)
    tiled = _slices_tile(L, node.op.indices, oshape)
    if not tiled:  # gaps stay zero; overlaps add up
        L.emit("fill", [ob], [], "zeros", n=size_of(oshape), value=0)
    for index, g in zip(node.op.indices, node.inputs):
        offset, strides = _slice_geometry(L, index, oshape)
        gshape = L.shape(g)
        _emit_strided_copy(L, ob, L.buffer(g), gshape, _contig_strides(gshape), 0, strides, offset,
                           str(node.op), accumulate=not tiled)


def _slices_tile(L, indices, shape):
    """True when the slices are disjoint boxes that cover the whole shape (every element is then
    written once: no zero fill, plain copies). Axes that every slice takes whole (a symbolic
    batch dim) are left out; any other symbolic bound or a step other than 1 answers False."""
    volume, spans = 1, [[] for _ in indices]
    for axis, d in enumerate(shape):
        d = L.dims.resolve(d)
        ranges = [_axis_range(L, index, axis, d) for index in indices]
        if all(r == (0, d) for r in ranges):
            continue
        if not all(r is not None and _is_int(r[0]) and _is_int(r[1]) for r in ranges) or not _is_int(d):
            return False
        volume *= int(d)
        for span, (lo, hi) in zip(spans, ranges):
            span.append((int(lo), int(hi)))
    if sum(math.prod(max(0, hi - lo) for lo, hi in span) for span in spans) != volume:
        return False
    return all(any(a1 <= b0 or b1 <= a0 for (a0, a1), (b0, b1) in zip(s, t))
               for i, s in enumerate(spans) for t in spans[i + 1:])


def _axis_range(L, index, axis, d):
    """[start, stop) of a basic slice along one axis of size d; None for a step other than 1."""
    it = index[axis] if axis < len(index) else (0, d, 1)
    start, stop, step = it if isinstance(it, tuple) else (it, it + 1, 1)
    if step != 1:
        return None
    return L.dims.resolve(start), sympy.Min(L.dims.resolve(stop), d)


def _is_int(v):
    return isinstance(v, int) or getattr(v, "is_Integer", False)


@lowers(shape_ops.Concatenate)
def lower_concatenate(L, node):
    out = node.outputs[0]
    ob = L.out_buffer(out)
    oshape = L.shape(out)
    ost = _contig_strides(oshape)
    offset = sympy.Integer(0)
    for x in node.inputs:
        xshape = L.shape(x)
        _emit_strided_copy(L, ob, L.buffer(x), xshape, _contig_strides(xshape), 0, ost,
                           L.dims.resolve(offset * ost[node.op.axis]), str(node.op))
        offset = offset + xshape[node.op.axis]


@lowers(shape_ops.DimValue)
def lower_dim_value(L, node):
    L.emit("fill", [L.out_buffer(node.outputs[0])], [], str(node.op), n=1,
           value=L.dims.resolve(node.op.expr))


@lowers(shape_ops.Arange)
def lower_arange(L, node):
    out = node.outputs[0]
    L.emit("arange", [L.out_buffer(out)], [], str(node.op), n=L.dims.resolve(node.op.n),
           dtype=out.dtype)


# --- indexing ---------------------------------------------------------------------------------

def _index_operands(L, idx_vars):
    """The common (broadcast) shape of the index arrays, collapsed dims and per-array strides."""
    shapes = [L.shape(i) for i in idx_vars]
    r = max(len(s) for s in shapes)
    ishape = []
    for a in range(r):
        ds = [s[a - (r - len(s))] for s in shapes if a - (r - len(s)) >= 0]
        ishape.append(next((d for d in ds if d != 1), 1))
    dims, strides = collapse_broadcast(ishape, shapes)
    return ishape, dims, strides


@lowers(indexing.AdvancedSubtensor)
def lower_gather(L, node):
    x, idx, out = node.inputs[0], node.inputs[1:], node.outputs[0]
    xshape = L.shape(x)
    ishape, dims, strides = _index_operands(L, idx)
    xst = _contig_strides(xshape)
    L.emit("gather", [L.out_buffer(out)], [L.buffer(x)] + [L.buffer(i) for i in idx],
           _gather_text(node), strict=node.op.strict, axes=node.op.user_axes(len(idx)),
           **_index_params(L, x, idx, ishape, dims, strides, xshape, xst))


def _gather_text(node):
    """x[:, i] as the user wrote it (for error messages): the indexed variable before take()'s
    transpose, an index array's name at its axis."""
    x, idx = node.inputs[0], node.inputs[1:]
    axes = node.op.user_axes(len(idx))
    if node.op.axes is not None and x.owner is not None and x.owner.inputs:
        x = x.owner.inputs[0]
    at = dict(zip(axes, idx))
    return f"{x.label()}[" + ", ".join(at[a].label() if a in at else ":"
                                      for a in range(max(axes) + 1)) + "]"


@lowers(indexing.AdvancedIncSubtensor)
def lower_scatter_add(L, node):
    _lower_scatter(L, node, "scatter_add", "scatter-add")


@lowers(indexing.AdvancedSetSubtensor)
def lower_scatter_set(L, node):
    _lower_scatter(L, node, "scatter_set", "scatter-set")


def _lower_scatter(L, node, kind, label):
    """zeros, then g added (scatter_add) or written (scatter_set) at the index arrays."""
    g, idx, out = node.inputs[0], node.inputs[1:], node.outputs[0]
    oshape = L.shape(out)
    ishape, dims, strides = _index_operands(L, idx)
    ob = L.out_buffer(out)
    L.emit("fill", [ob], [], "zeros", n=size_of(oshape), value=0)
    L.emit(kind, [ob], [L.buffer(g)] + [L.buffer(i) for i in idx], label, strict=False,
           axes=list(range(len(idx))),
           **_index_params(L, out, idx, ishape, dims, strides, oshape, _contig_strides(oshape)))


def _index_params(L, x, idx, ishape, dims, strides, xshape, xst):
    k = len(idx)
    return dict(nidx=size_of(ishape), inner=size_of(xshape[k:]), dims=dims, idx_strides=strides,
                axis_sizes=list(xshape[:k]), axis_strides=xst[:k],
                idx_dtypes=[i.dtype for i in idx], dtype=x.dtype)


# --- nn ----------------------------------------------------------------------------------------

@lowers(nn.Softmax, nn.LogSoftmax)
def lower_softmax(L, node):
    x, out = node.inputs[0], node.outputs[0]
    shape = L.shape(x)
    L.emit("softmax", [L.out_buffer(out)], [L.buffer(x)], str(node.op),
           rows=size_of(shape[:-1]), cols=shape[-1], log=isinstance(node.op, nn.LogSoftmax),
           dtype=x.dtype)


@lowers(nn.SoftmaxCrossEntropy, nn.SoftmaxCrossEntropyGrad)
def lower_softmax_xent(L, node):
    x, out = node.inputs[0], node.outputs[0]
    shape = L.shape(x)
    grad = isinstance(node.op, nn.SoftmaxCrossEntropyGrad)
    L.emit("softmax_xent", [L.out_buffer(out)], [L.buffer(v) for v in node.inputs], str(node.op),
           rows=shape[0], cols=shape[1], grad=grad, dtype=x.dtype)


def lower_program(fgraph, dim_symbols, capabilities):
    """The Program of an optimized graph; `capabilities` is the target's (conv algorithm)."""
    L = Lowerer(fgraph, dim_symbols, capabilities)
    program = fold_conv_epilogues(L.run(), capabilities)
    return pack_dense_products(program, capabilities, L.new_buffer)  # (L.buffers is the table)
