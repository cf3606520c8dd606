"""The graph verifier: what every pass must leave true of a FunctionGraph. The pass manager runs
it after each pass when config.verify_graphs is on (GRAPHC_VERIFY_GRAPHS=1; the tests do)."""
from ..errors import GraphVerifyError
from .graph import Constant, ShapeContext, SharedVariable, toposort
from .types import dims_equal, is_fresh


def verify_graph(fgraph, after="input"):
    """Raise GraphVerifyError naming the first problems found (after pass `after`):
    the node list is current, every input of every node is a leaf the function has or the
    output of a node listed earlier, the outputs are reachable, and each node's output types
    are what its op infers again from its inputs."""
    problems = []
    nodes = fgraph.nodes
    position = {n: k for k, n in enumerate(nodes)}
    live = toposort(fgraph.outputs)
    if len(position) != len(nodes) or len(live) != len(nodes) or any(n not in position for n in live):
        problems.append(f"the node list is stale ({len(nodes)} listed, {len(live)} reachable from "
                        "the outputs): the pass must call fgraph.refresh() after rewiring")
    inputs = set(fgraph.inputs)
    for k, node in enumerate(nodes):
        for j, v in enumerate(node.inputs):
            where = f"{node} input {j} ({v.label()})"
            if v.owner is None:
                if not isinstance(v, (Constant, SharedVariable)) and v not in inputs:
                    problems.append(f"{where} is a leaf that is not an input of the function")
            elif v.owner.outputs[v.index] is not v:
                problems.append(f"{where} is not the output its node claims to make")
            elif v.owner not in position:
                problems.append(f"{where} is a dead variable: its producer {v.owner} is not in "
                                "the graph")
            elif position[v.owner] >= k:
                problems.append(f"{where} is computed after the node that reads it")
        problems += _type_problems(fgraph, node)
    for k, o in enumerate(fgraph.outputs):
        if o.owner is not None and o.owner not in position:
            problems.append(f"output {k} ({o.label()}) is made by a node not in the graph")
    for sv, new in zip(fgraph.update_targets, fgraph.outputs[fgraph.n_user_outputs:]):
        if new.dtype != sv.dtype or new.ndim != sv.ndim:
            problems.append(f"the update of {sv.label()} ({sv.type}) is now {new.type}")
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise GraphVerifyError(f"graph verifier, after pass {after}: " + "; ".join(problems[:5])
                               + more)


def _type_problems(fgraph, node):
    try:
        inferred = node.op.infer([i.type for i in node.inputs], ShapeContext(str(node.op)))
    except Exception as e:  # noqa: BLE001 - any failure of inference is the finding
        return [f"{node}: its op no longer accepts its inputs' types ({e})"]
    if len(inferred) != len(node.outputs):
        return [f"{node}: the op infers {len(inferred)} outputs, the node has {len(node.outputs)}"]
    found = []
    for j, (want, o) in enumerate(zip(inferred, node.outputs)):
        same = want.dtype == o.dtype and want.ndim == o.ndim and all(
            _same_dim(fgraph, a, b) for a, b in zip(want.shape, o.type.shape))
        if not same:
            found.append(f"{node} output {j}: typed {o.type}, but its op infers {want} from its inputs")
    return found


def _same_dim(fgraph, a, b):
    if a == b or is_fresh(a) or is_fresh(b):
        return True
    ra, rb = fgraph.dims.resolve(a), fgraph.dims.resolve(b)
    return ra == rb or is_fresh(ra) or is_fresh(rb) or dims_equal(ra, rb)
