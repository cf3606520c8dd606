"""A graphc Loop (what G.scan builds) as ONNX's Scan operator.

The mapping is one to one: the Loop's sequences are Scan's scan inputs, its carried states
Scan's states, its stacked per-step outputs Scan's scan outputs; a reverse loop reads and writes
index T-1-it, which is scan_input_directions = scan_output_directions = 1. The non-sequences are
not inputs of ONNX's Scan: the body reads them by their outer names (ONNX's outer scope).
Constants of the body become Constant nodes inside it (a subgraph's initializers are not read by
every runtime).
"""
from .proto import DTYPE_TO_ELEM


def _value_info(w, name, v):
    dims = [d if isinstance(d, int) else str(d) for d in v.type.shape]
    return w.h.make_tensor_value_info(name, DTYPE_TO_ELEM[v.dtype], dims)


def write_loop(w, node, ins):
    """The Scan node for `node` (a Loop) in writer w; returns the outer output names."""
    from .exporter import OnnxExportError, Writer, write_nodes
    op = node.op
    body = op.body
    n_seqs, n_carry = op.n_seqs, op.n_carry
    where = f"scan {op.name!r}" if getattr(op, "name", None) else "a loop"
    if n_seqs == 0:
        raise OnnxExportError(f"{where} runs n_steps times over no sequence; ONNX's Scan takes "
                              "its length from a sequence: pass one (e.g. G.arange(n)) instead")
    sub = Writer(w.opset, inline_consts=True)
    sub.used, sub.dim_sources = w.used, dict(w.dim_sources)   # names unique across the model
    slice_names, state_names = [], []
    for k, v in enumerate(body.inputs):
        if k < n_seqs + n_carry:
            name = sub.fresh(f"{'seq' if k < n_seqs else 'state'}{k}_t")
            (slice_names if k < n_seqs else state_names).append((name, v))
            for axis, d in enumerate(v.type.shape):
                if not isinstance(d, int):
                    sub.dim_sources.setdefault(d, (name, axis))
        else:
            name = ins[k]          # a non-sequence: the outer value, read from the outer scope
        sub.names[v] = name
    problems = write_nodes(sub, body.nodes)
    if problems:
        raise OnnxExportError(f"the step of {where}: " + "; ".join(sorted(set(problems))))
    graph_outputs = []
    for j, o in enumerate(body.outputs):
        out = sub.fresh(f"{'state' if j < n_carry else 'step'}{j}_out")
        sub.nodes.append(w.h.make_node("Identity", [sub.name_of(o)], [out]))
        graph_outputs.append(_value_info(w, out, o))
    # ONNX's Scan body takes the states first, then the scan inputs' slices.
    graph_inputs = [_value_info(w, n, v) for n, v in state_names + slice_names]
    graph = w.h.make_graph(sub.nodes, w.fresh("scan_body"), graph_inputs, graph_outputs)
    direction = [int(op.reverse)]
    outer_ins = ins[n_seqs:n_seqs + n_carry] + ins[:n_seqs]
    return w.node("Scan", outer_ins, n_out=len(node.outputs), body=graph, num_scan_inputs=n_seqs,
                  scan_input_directions=direction * n_seqs,
                  scan_output_directions=direction * op.n_stacked)
