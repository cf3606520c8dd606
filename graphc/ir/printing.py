"""Text form of a graph: one line per node, like Theano's debugprint, in execution order."""
from .graph import Constant, SharedVariable


def graph_text(fgraph):
    names = {}

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
        lines.append(f"{', '.join(outs)} = {node.op}({args}) : {types}")
    n = fgraph.n_user_outputs
    for k, o in enumerate(fgraph.outputs):
        if k < n:
            lines.append(f"output {k}: {name(o)}")
        else:
            lines.append(f"update {fgraph.update_targets[k - n].label()} <- {name(o)}")
    return "\n".join(lines)


def _t(fgraph, v):
    shape = fgraph.dims.shape(v) if hasattr(fgraph, "dims") else v.type.shape
    return f"{v.dtype}[{', '.join(str(d) for d in shape)}]"


def debugprint(obj, file=None):
    """Print a graph (a Function, or one or more variables) as text."""
    import sys
    from .fgraph import FunctionGraph
    if hasattr(obj, "pass_log"):
        text = obj.pass_log[-1][2]  # the graph as compiled (after the last pass)
    else:
        outs = obj if isinstance(obj, (list, tuple)) else [obj]
        text = graph_text(FunctionGraph([], outs, []))
    print(text, file=file or sys.stdout)
