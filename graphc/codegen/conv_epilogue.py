"""The conv epilogue: an elementwise kernel that only adds a per-channel bias and/or a residual to a
blocked convolution's output and applies ReLU is folded into the convolution's stores
(templates/c/_conv_epilogue.j2), as onnxruntime's FusedConv does: one pass over the output
instead of two. Runs on the lowered Program, before memory planning.

The folded kernel computes what the elementwise kernel did, in its order: the conv's value, then
`+ bias[o]` and `+ residual` in the order the body's sums are evaluated, then `relu` (x < 0 ? 0 : x);
so the result is the same to the bit (NaN payloads aside: which of two NaN operands an add keeps
follows the operand order gcc picks, in either kernel). A kernel is folded only when
- the conv's output is a temporary that the elementwise kernel alone reads, once, and no other
  kernel writes;
- its body is relu(sum) or a sum of the conv's value, at most one per-channel operand (strides
  that make element i read index (i // HW) % C_out) and at most one residual (read with the conv
  output's strides) or residual + its own per-channel bias (a projection shortcut: conv + batch
  norm), each added once, as a chain that starts at the conv's value;
- every load, the output and the arithmetic are in the conv's dtype;
- no kernel between the two writes a buffer the conv reads (the folded conv runs where the
  elementwise kernel ran, when the residual exists; parameter updates are such writes).
A training graph's forward gets it where its elementwise kernel has this form; where the fusion
pass merged the forward's ReLU with the backward's (one kernel, two outputs) it does not.
"""
import sympy

from ..ir.ops import scalar_fns as sf

FOLDABLE = ("conv_blocked",)


def fold_conv_epilogues(program, capabilities):
    """Fold each foldable elementwise kernel into the conv before it (in place on `program`).
    Returns the program."""
    if not getattr(capabilities, "conv_store_epilogue", False):
        return program
    kernels = program.kernels
    readers, writers = {}, {}
    for k, kern in enumerate(kernels):
        for b in kern.inputs:
            readers.setdefault(b, []).append(k)
        for b in kern.outputs:
            writers.setdefault(b, []).append(k)
    dropped = set()
    for k, conv in enumerate(kernels):
        if conv.kind not in FOLDABLE or conv.params.get("FLIP") or conv.params["epilogue"]:
            continue
        y = conv.outputs[0]
        reads = readers.get(y, [])
        if y.role != "temp" or len(reads) != 1 or reads[0] <= k or writers[y] != [k]:
            continue  # (another writer: a kernel that adds into y)
        e = reads[0]
        fold = _epilogue_of(conv, kernels[e], y)
        if fold is None or _written_between(kernels, k, e, conv.inputs):
            continue
        steps, operands = fold
        conv.params["epilogue"] = steps
        conv.inputs = conv.inputs + operands
        conv.outputs = list(kernels[e].outputs)
        conv.label += " + " + " + ".join(steps)
        kernels[e] = conv
        dropped.add(k)
        program.buffers.remove(y)
        for b in operands:
            readers.setdefault(b, []).append(e)
    if dropped:
        program.kernels[:] = [kern for k, kern in enumerate(kernels) if k not in dropped]
    return program


def _written_between(kernels, first, last, buffers):
    wanted = set(buffers)
    return any(b in wanted for kern in kernels[first + 1:last] for b in kern.outputs)


def _epilogue_of(conv, elem, y):
    """(steps, operand buffers) when `elem` is an epilogue of `conv` (output y), else None."""
    p, ep = conv.params, elem.params
    if elem.kind != "elemwise":  # (a pool, a copy, a reduction: nothing to fold)
        return None
    dtype = p["dtype"]
    body = ep["body"]
    if (len(elem.outputs) != 1 or len(body.exprs) != 1
            or body.ctx_dtype != dtype or ep["out_dtypes"] != [dtype]
            or any(d != dtype for _, d in body.loads) or elem.inputs.count(y) != 1):
        return None
    k_y = elem.inputs.index(y)
    if k_y not in ep["full_inputs"] or not _same(ep["n"], y.size):
        return None
    expr, relu = body.exprs[0], False
    if isinstance(expr, sf.relu):
        expr, relu = expr.args[0], True
    chain = _add_chain(expr, sympy.Symbol(body.loads[k_y][0]))
    if chain is None:
        return None
    names, kinds = {}, {}  # operand symbol -> its buffer, its kind
    for k, (name, _) in enumerate(body.loads):
        if k != k_y:
            sym = sympy.Symbol(name)
            names[sym], kinds[sym] = elem.inputs[k], _operand_kind(ep, k, k_y, p)
    steps, operands = [], []
    for term in chain:
        if term.is_Symbol:  # bias[o] or residual[i]
            kind = kinds.get(term)
            if kind is None or kind in steps:
                return None
            steps.append(kind)
            operands.append(names[term])
        else:  # (residual[i] + its own bias[o]): a projection shortcut's conv and batch norm
            a, b = term.args
            if kinds.get(a) == "bias":
                a, b = b, a
            if (kinds.get(a), kinds.get(b)) != ("residual", "bias") or "residual" in steps:
                return None
            steps += ["residual", "residual_bias"]
            operands += [names[a], names[b]]
    if relu:
        steps.append("relu")
    return (steps, operands) if steps else None


def _operand_kind(ep, k, k_y, conv_params):
    """"residual" (read as y is), "bias" (per output channel) or None, for elementwise operand k."""
    if _same_layout(ep["strides"][k], ep["strides"][k_y]):
        return "residual"
    HW = conv_params["HO"] * conv_params["WO"]
    return "bias" if _per_channel(ep["dims"], ep["strides"][k], conv_params["CO"], HW) else None


def _term(e, y):
    """An operand added to the chain: a symbol, or a sum of two symbols (residual + its bias)."""
    if e.is_Symbol:
        return e != y
    return isinstance(e, sympy.Add) and len(e.args) == 2 and all(
        a.is_Symbol and a != y for a in e.args)


def _add_chain(expr, y):
    """The terms added to y, in the order C evaluates them, when `expr` is y + a + b ... as a
    chain that starts at y (a flat sum prints left to right; a nested one as its tree); else None."""
    if expr == y:
        return []
    if not isinstance(expr, sympy.Add):
        return None
    args = list(expr.args)
    if len(args) > 2:  # ((a0 + a1) + a2) + ...: the left part is a chain, each later term a leaf
        left, last = sympy.Add(*args[:-1], evaluate=False), args[-1]
        rest = _add_chain(left, y)
        return None if rest is None or not _term(last, y) else rest + [last]
    a, b = args
    for inner, leaf in ((a, b), (b, a)):  # (one add: a + b == b + a to the bit)
        if _term(leaf, y):
            rest = _add_chain(inner, y)
            if rest is not None:
                return rest + [leaf]
    return None


def _per_channel(dims, strides, channels, plane):
    """True when the operand read with `strides` over the collapsed `dims` is element
    (i // plane) % channels at linear index i: stride 0 over the inner `plane` elements, 1 over
    the next `channels`, 0 over the rest."""
    axes = list(zip(dims, strides))[::-1]  # innermost first
    for size, step in ((plane, 0), (channels, 1), (None, 0)):
        covered = sympy.Integer(1)
        while axes and (size is None or not _same(covered, size)):
            d, s = axes.pop(0)
            if not _same(s, covered if step else 0):
                return False
            covered = covered * d
        if size is not None and not _same(covered, size):
            return False
    return not axes


def _same(a, b):
    return a == b or sympy.expand(sympy.sympify(a) - b) == 0


def _same_layout(strides, y_strides):
    """Read element for element as y (a residual whose shape the graph ties to y's only at run
    time has other dims but the same strides)."""
    return all(_same(a, b) for a, b in zip(strides, y_strides))
