"""Text form of a graph: one line per node, like Theano's debugprint, in execution order."""
from .fgraph import FunctionGraph
from .graph import Constant
from .graph import toposort as _toposort
from .types import dim_str


def graph_text(fgraph, op_texts=None):
    """`op_texts`: {id(op): (op, text)} shared by the calls of one optimization, which print the
    same ops after every pass (an op's text prints its scalar expressions with sympy)."""
    names = {}
    op_texts = {} if op_texts is None else op_texts

    def op_text(op):
        known = op_texts.get(id(op))
        if known is None or known[0] is not op:
            known = op_texts[id(op)] = (op, str(op))  # (the op is held: its id stays its own)
        return known[1]

    def name(v):
        if v in names:
            return names[v]
        if isinstance(v, Constant):
            return v.label()
        return v.label()

    lines = []
    for k, v in enumerate(fgraph.inputs):
        names[v] = v.label()
        lines.append(f"input  {v.label()} : {_t(fgraph, v)}")
    for v in fgraph.shareds:
        names[v] = v.label()
        lines.append(f"shared {v.label()} : {_t(fgraph, v)}")
    for k, node in enumerate(fgraph.nodes):
        outs = []
        for o in node.outputs:
            names[o] = o.name or f"%{k}" + (f".{o.index}" if len(node.outputs) > 1 else "")
            outs.append(names[o])
        args = ", ".join(name(i) for i in node.inputs)
        types = ", ".join(_t(fgraph, o) for o in node.outputs)
        lines.append(f"{', '.join(outs)} = {op_text(node.op)}({args}) : {types}")
    n = fgraph.n_user_outputs
    for k, o in enumerate(fgraph.outputs):
        if k < n:
            lines.append(f"output {k}: {name(o)}")
        else:
            lines.append(f"update {fgraph.update_targets[k - n].label()} <- {name(o)}")
    return "\n".join(lines)


def _t(fgraph, v):
    shape = fgraph.dims.shape(v) if hasattr(fgraph, "dims") else v.type.shape
    return f"{v.dtype}[{', '.join(dim_str(d) for d in shape)}]"


def debugprint(obj, file=None):
    """Print a graph (a Function, or one or more variables) as text."""
    import sys
    if hasattr(obj, "pass_log"):
        text = obj.pass_log[-1][2]  # the graph as compiled (after the last pass)
    else:
        outs = obj if isinstance(obj, (list, tuple)) else [obj]
        text = graph_text(FunctionGraph([], outs, []))
    print(text, file=file or sys.stdout)


def graph_dot(fgraph):
    """Graphviz DOT of a graph: ellipses for values, boxes for ops."""
    lines = ["digraph graphc {", "  rankdir=TB; node [fontname=monospace, fontsize=10];"]
    names = {}

    def vid(v):
        if v not in names:
            names[v] = f"v{len(names)}"
            shape = "ellipse" if v.owner is None else "plaintext"
            lines.append(f'  {names[v]} [label="{_esc(v.label())}\\n{_t(fgraph, v)}", shape={shape}];')
        return names[v]

    for k, node in enumerate(fgraph.nodes):
        lines.append(f'  n{k} [label="{_esc(str(node.op))}", shape=box];')
        for i in node.inputs:
            lines.append(f"  {vid(i)} -> n{k};")
        for o in node.outputs:
            lines.append(f"  n{k} -> {vid(o)};")
    for k, o in enumerate(fgraph.outputs):
        lines.append(f'  out{k} [label="output {k}", shape=doublecircle]; {vid(o)} -> out{k};')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _esc(text):
    return text.replace("\\", "\\\\").replace('"', '\\"')[:120]


_INFIX = {"add": "+", "sub": "-", "mul": "*", "true_div": "/", "floor_div": "//", "pow": "**",
          "mod": "%", "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "neq": "!="}


def expression_text(var):
    """One variable's graph as a nested expression, e.g. `((x * 2.0) + b)` (Theano's pprint);
    ops other than arithmetic and comparisons print as name(args)."""
    memo = {}
    for node in _toposort([var]):
        args = [memo.get(i) or i.label() for i in node.inputs]
        name = getattr(node.op, "name", None) or type(node.op).__name__
        if name in _INFIX and len(args) == 2:
            text = f"({args[0]} {_INFIX[name]} {args[1]})"
        elif name == "neg" and len(args) == 1:
            text = f"-{args[0]}"
        else:
            text = f"{name}({', '.join(args)})"
        for k, o in enumerate(node.outputs):
            memo[o] = text if len(node.outputs) == 1 else f"{text}[{k}]"
    return memo.get(var) or var.label()
