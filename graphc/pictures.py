"""Pictures of what the compiler did, through Graphviz's `dot` where it is installed: the graph
(ellipses for values, boxes for ops) and the kernel program (a fused kernel is a cluster of its
ops, labelled with the kernel), for G.dump(f, dir, format="svg") and Jupyter (_repr_svg_)."""
import os
import re
import shutil
import subprocess
import warnings

from .errors import GraphcError
from .ir.printing import _esc, graph_dot

FORMATS = ("svg", "png", "pdf")
INSTALL_HINT = ("Graphviz's `dot` program draws them: apt-get install graphviz (Debian, Ubuntu), "
                "brew install graphviz (macOS), conda install graphviz")
RENDER_TIMEOUT_S = 60
# Jupyter draws a value each time it is shown: beyond this many nodes it shows the text instead.
MAX_INLINE_NODES = 400


class PictureError(GraphcError, ValueError):
    pass


class GraphvizMissing(UserWarning):
    pass


def dot_program():
    return shutil.which("dot")


def render(dot_text, fmt="svg"):
    """The DOT text drawn by Graphviz as `fmt` bytes; None when `dot` is not installed."""
    if fmt not in FORMATS:
        raise PictureError(f"picture format {fmt!r} is not one of {', '.join(FORMATS)}")
    exe = dot_program()
    if exe is None:
        return None
    proc = subprocess.run([exe, f"-T{fmt}"], input=dot_text.encode(), capture_output=True,
                          timeout=RENDER_TIMEOUT_S)
    if proc.returncode != 0:
        raise PictureError(f"Graphviz's dot failed on a graph graphc wrote (exit "
                           f"{proc.returncode}): {proc.stderr.decode(errors='replace')[:500]}; "
                           "please report it with the DOT file G.dump(f, dir) writes")
    return proc.stdout


def label_ops(label):
    """The op names in a kernel label: 'fused(add,relu)' -> ['add', 'relu'];
    'siblings(fused(a,b), c)' -> ['a', 'b', 'c']; anything else is one op."""
    m = re.fullmatch(r"(fused|siblings)\((.*)\)", label.strip())
    if not m:
        return [label]
    parts, depth, start, inner = [], 0, 0, m.group(2)
    for i, ch in enumerate(inner):
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    parts.append(inner[start:])
    return [op for part in parts if part.strip() for op in label_ops(part.strip())]


def program_dot(program, name="graphc"):
    """DOT of a kernel Program: buffers as ellipses (named as in the user's graph; a buffer
    written again, in place, gets a new node per value), kernels as boxes in execution order, a
    kernel of several fused ops as a cluster of them."""
    lines = [f'digraph "{_esc(name)}" {{',
             "  rankdir=TB; compound=true; node [fontname=monospace, fontsize=10];"]
    current, versions = {}, {}

    def value_node(b, write=False):
        """The node of buffer b's current value (a new one when `write`)."""
        if b.id in current and not write:
            return current[b.id]
        n = versions[b.id] = versions.get(b.id, -1) + 1
        node = f"b{b.id}_{n}"
        shape = ", ".join(str(d) for d in b.shape)
        style = "ellipse" if b.role != "temp" else "plaintext"
        label = (b.name or f"b{b.id}") + (" (updated)" if n and b.role == "shared" else "")
        lines.append(f'  {node} [label="{_esc(label)}\\n{b.dtype}[{_esc(shape)}]", '
                     f'shape={style}];')
        current[b.id] = node
        return node

    for k, kern in enumerate(program.kernels):
        ops = label_ops(kern.label)
        if len(ops) > 1:
            lines.append(f"  subgraph cluster_k{k} {{")
            lines.append(f'    label="k{k} {kern.kind}: {_esc(kern.label)}"; style=rounded; '
                         'color=steelblue;')
            for j, op in enumerate(ops):
                lines.append(f'    k{k}_{j} [label="{_esc(op)}", shape=box];')
            for j in range(len(ops) - 1):
                lines.append(f"    k{k}_{j} -> k{k}_{j + 1} [style=dotted];")
            lines.append("  }")
            first, last = f"k{k}_0", f"k{k}_{len(ops) - 1}"
            into, out = f" [lhead=cluster_k{k}]", f" [ltail=cluster_k{k}]"
        else:
            lines.append(f'  k{k}_0 [label="k{k} {kern.kind}\\n{_esc(kern.label)}", shape=box];')
            first = last = f"k{k}_0"
            into = out = ""
        for b in kern.inputs:
            lines.append(f"  {value_node(b)} -> {first}{into};")
        for b in kern.outputs:
            lines.append(f"  {last} -> {value_node(b, write=True)}{out};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def optimized_graph(fn):
    """The function's graph as compiled; a warm compile (loaded from the cache, no graph kept)
    optimizes the user's graph again. None when neither is at hand."""
    if getattr(fn.fgraph, "nodes", None) is not None:
        return fn.fgraph
    source = getattr(fn, "_source", None)
    if source is None:
        return None
    from .passes import optimize
    user_graph, _, level, _ = source
    return optimize(user_graph, level)[0]


def function_dots(fn):
    """{file stem: DOT text} of what a compiled function can show: its optimized graph, and its
    kernel program where a compiling target made one."""
    dots = {}
    graph = optimized_graph(fn)
    if graph is not None:
        dots["graph"] = graph_dot(graph)
    program = getattr(fn.program, "program", None)
    if program is not None:
        dots["program"] = program_dot(program, fn.name)
    return dots


def write_pictures(fn, directory, fmt="svg"):
    """Write <name>.<stem>.dot for the function's graph and program (and every pass's graph
    where GRAPHC_DUMP kept them), drawn as <name>.<stem>.<fmt> when `dot` is installed (else a
    warning says how to get it). Returns the paths written."""
    if fmt not in FORMATS:
        raise PictureError(f"picture format {fmt!r} is not one of {', '.join(FORMATS)}")
    os.makedirs(directory, exist_ok=True)
    base = os.path.join(directory, fn.name)
    dots = function_dots(fn)
    for k, dot in enumerate(getattr(fn.fgraph, "pass_dots", None) or []):
        record = fn.pass_log[k] if k < len(fn.pass_log) else None
        if dot and record is not None:
            dots[f"{k:02d}.{record[0]}"] = dot
    written = []
    have_dot = dot_program() is not None
    for stem, dot in dots.items():
        path = f"{base}.{stem}.dot"
        with open(path, "w") as fh:
            fh.write(dot)
        written.append(path)
        if have_dot:
            with open(f"{base}.{stem}.{fmt}", "wb") as fh:
                fh.write(render(dot, fmt))
            written.append(f"{base}.{stem}.{fmt}")
    if not have_dot:
        warnings.warn(f"graphc.dump: wrote the DOT files to {directory} but could not draw them "
                      f"as {fmt}: {INSTALL_HINT}", GraphvizMissing, stacklevel=3)
    return written


def function_svg(fn):
    """A compiled function's picture for Jupyter: its kernel program (or its graph), or None
    (no `dot`: Jupyter then shows the text)."""
    if dot_program() is None:
        return None
    program = getattr(fn.program, "program", None)
    if program is not None:
        if len(program.kernels) > MAX_INLINE_NODES:
            return None
        return render(program_dot(program, fn.name), "svg").decode()
    graph = optimized_graph(fn)
    if graph is None or len(graph.nodes) > MAX_INLINE_NODES:
        return None
    return render(graph_dot(graph), "svg").decode()


def variable_svg(var):
    """A variable's graph (everything it is computed from) for Jupyter, or None without `dot`."""
    from .ir.fgraph import FunctionGraph
    if dot_program() is None:
        return None
    graph = FunctionGraph([], [var], [])
    if len(graph.nodes) > MAX_INLINE_NODES:
        return None
    return render(graph_dot(graph), "svg").decode()


def function_text(fn):
    """The text Jupyter shows for a function when there is no picture."""
    log = fn.pass_log
    graph = log[-1][2] if log else ""
    return f"<graphc function {fn.name}>\n{graph}"
