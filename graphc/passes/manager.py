"""The pass manager: a registry of named passes, an explicit pipeline per optimization level,
and a run that times each pass, records whether it changed the graph, verifies the graph after
each pass (config.verify_graphs) and optimizes the inner graphs of ops that carry them.

A pass is a function FunctionGraph -> (FunctionGraph, changed), registered by name with
`@register(name)`; it rewires the graph only through FunctionGraph.replace (or rebuilds it, as
the local rewrites do) and says whether it changed anything.
"""
import time
from collections import namedtuple

from ..errors import PipelineError

# The levels, as run. Stabilize follows canonicalize (which folds what it would match) and the
# merges (whose patterns it would hide); chain fusion precedes reduction fusion (a reduction
# absorbs a fused chain); the gemm update goes before sibling fusion, which would hide its
# elementwise `w - lr * g` inside a multi-output loop. scan_last_state goes first: it only
# rewires reads of a loop's history (hs[-1] reads the final state). fuse_batch_norm goes before
# fuse_elemwise, which would hide the relu (and its gradient) it folds into batch norm.
PIPELINES = {
    "O0": [],
    "O1": ["scan_last_state", "canonicalize", "merge_increments", "stabilize"],
    "O2": ["scan_last_state", "canonicalize", "merge_increments", "merge_products", "stabilize",
           "fuse_batch_norm", "fuse_elemwise", "fuse_reductions", "fuse_siblings"],
    "O3": ["scan_last_state", "canonicalize", "merge_increments", "merge_products", "stabilize",
           "fuse_batch_norm", "fuse_elemwise", "fuse_reductions", "fuse_gemm", "fuse_siblings"],
}
_REGISTRY = {}

class PassRecord(namedtuple("PassRecord", "name seconds graph changed")):
    """One line of the pass log: the pass, its seconds, the graph after it as text (`text`,
    printed when first read: printing every pass's graph was ~10 % of a ResNet's optimize, and
    only dumps and debugprint read it) and whether the pass changed it."""
    __slots__ = ()

    @property
    def text(self):
        return str(self.graph)

    def __getitem__(self, k):  # (record[2] is the text, as when the log held strings)
        if isinstance(k, int) and k in (2, -2):
            return self.text
        if isinstance(k, slice):
            return tuple(self)[k]
        return super().__getitem__(k)

    def __iter__(self):
        yield self.name
        yield self.seconds
        yield self.text
        yield self.changed


class _GraphAsText:
    """A graph's text as it was when this was made: the wiring is copied now (passes rewire
    nodes in place), printed on first str() and then kept."""

    def __init__(self, fgraph, op_texts):
        self.frozen = _Frozen(fgraph)
        self.op_texts, self.value = op_texts, None

    def __str__(self):
        if self.value is None:
            from ..ir.printing import graph_text
            self.value = graph_text(self.frozen, self.op_texts)
            self.frozen = None
        return self.value

    def __reduce__(self):  # pickled as its text (the copied graph stays behind)
        return (str, (str(self),))


class _Frozen:
    """What graph_text reads of a FunctionGraph, copied."""

    def __init__(self, fgraph):
        self.inputs, self.shareds = list(fgraph.inputs), list(fgraph.shareds)
        self.nodes = [_FrozenNode(n) for n in fgraph.nodes]
        self.outputs, self.update_targets = list(fgraph.outputs), list(fgraph.update_targets)
        self.n_user_outputs = fgraph.n_user_outputs
        self.dims = fgraph.dims


class _FrozenNode:
    __slots__ = ("op", "inputs", "outputs")

    def __init__(self, node):
        self.op, self.inputs, self.outputs = node.op, tuple(node.inputs), tuple(node.outputs)


def register(name):
    """Decorator: make a pass (FunctionGraph -> (FunctionGraph, changed)) known by `name`."""
    def deco(fn):
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise PipelineError(f"pass {name!r} is registered twice")
        _REGISTRY[name] = fn
        return fn
    return deco


def pipeline(level, disabled=()):
    """The pass names to run for `level` ("O0".."O3", or a list of pass names), less `disabled`."""
    if isinstance(level, str):
        if level not in PIPELINES:
            raise PipelineError(f"unknown optimization level {level!r}: expected one of "
                                f"{', '.join(PIPELINES)}, or a list of pass names ({_known()})")
        names = PIPELINES[level]
    else:
        names = list(level)
    for what, given in (("opt_level", names), ("disabled passes (GRAPHC_DISABLE_PASSES)", disabled)):
        unknown = [n for n in given if n not in _REGISTRY]
        if unknown:
            raise PipelineError(f"{what}: unknown pass {unknown[0]!r}; the passes are {_known()}")
    return [n for n in names if n not in disabled]


def _known():
    return ", ".join(sorted(_REGISTRY))


def optimize(fgraph, level="O3", enabled=True):
    """Run the pipeline for `level`; returns the new graph and a list of PassRecord."""
    from ..config import config
    from ..ir.printing import graph_dot
    dots = [] if config.dump_dir else None  # DOT only when dumping: it costs compile time
    op_texts = {}  # each op printed once for the whole log
    log = [PassRecord("input", 0.0, _GraphAsText(fgraph, op_texts), False)]
    if dots is not None:
        dots.append(graph_dot(fgraph))
    if not enabled:
        return fgraph, log
    names = pipeline(level, config.disabled_passes)
    fgraph = fgraph.clone()  # passes may edit nodes in place; the user's graph stays as built
    if config.verify_graphs:
        _verify(fgraph, "input")
    run = _Run(names, config.verify_graphs)
    if any(n.op.inner_graph_props for n in fgraph.nodes):
        t = time.perf_counter()
        changed = run.inner_graphs(fgraph)
        log.append(PassRecord("inner_graphs", time.perf_counter() - t, _GraphAsText(fgraph, op_texts), changed))
        if dots is not None:
            dots.append(graph_dot(fgraph))
    for name in names:
        t = time.perf_counter()
        fgraph, changed = run.one(name, fgraph)
        # (a pass that changed nothing leaves the text as it was)
        text = _GraphAsText(fgraph, op_texts) if changed else log[-1].graph
        log.append(PassRecord(name, time.perf_counter() - t, text, changed))
        if dots is not None:
            dots.append(graph_dot(fgraph))
    fgraph.pass_dots = dots
    return fgraph, log


class _Run:
    """One optimization: the passes to run, whether to verify, and the inner graphs optimized so
    far (equal inner graphs are optimized once)."""

    def __init__(self, names, verify):
        self.names, self.verify = names, verify
        self.done = {}

    def one(self, name, fgraph):
        before = _snapshot(fgraph) if self.verify else None
        result = _REGISTRY[name](fgraph)
        if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], bool)):
            raise PipelineError(f"pass {name!r} returned {type(result).__name__}; a pass returns "
                                "(graph, changed)")
        fgraph, changed = result
        if changed or self.verify:  # (verifying refreshes: that is how a hidden change shows)
            fgraph.refresh()
        else:  # the graph is as the last refresh left it: its order, leaves and dims stand
            fgraph._readers = None
        if self.verify:
            _verify(fgraph, name)
            if not changed and _snapshot(fgraph)[:2] != before[:2]:
                from ..errors import GraphVerifyError
                raise GraphVerifyError(f"pass {name!r} reported no change but changed the graph")
        return fgraph, changed

    def all(self, fgraph):
        changed = self.inner_graphs(fgraph)
        for name in self.names:
            fgraph, c = self.one(name, fgraph)
            changed = changed or c
        return fgraph, changed

    def inner_graphs(self, fgraph):
        """Optimize the inner graphs of every op that carries some; returns whether any changed."""
        from .loop_outputs import drop_unused_stacked
        changed = drop_unused_stacked(fgraph)
        for node in list(fgraph.nodes):
            props = node.op.inner_graph_props
            if not props:
                continue
            values = dict(zip(node.op.__props__, node.op._props()))
            new = {p: self.inner(values[p]) for p in props}
            if all(new[p] is values[p] for p in props):
                continue
            op = type(node.op)(**{**values, **new})
            rebuilt = op.make_node(*node.inputs)
            for old, out in zip(node.outputs, rebuilt.outputs):
                fgraph.replace(old, out)
            changed = True
        if changed:
            fgraph.refresh()
            if self.verify:
                _verify(fgraph, "inner_graphs")
        return changed

    def inner(self, graph):
        if graph not in self.done:
            from ..ir.inner_graph import InnerGraph
            fgraph, changed = self.all(graph.function_graph())
            self.done[graph] = InnerGraph(fgraph.inputs, fgraph.outputs) if changed else graph
        return self.done[graph]


def _verify(fgraph, after):
    from ..ir.verify import verify_graph
    verify_graph(fgraph, after)


def _snapshot(fgraph):
    """The graph's wiring by object identity (the objects are kept alive, so no id is reused)."""
    return ([(n, n.op, tuple(map(id, n.inputs))) for n in fgraph.nodes], list(map(id, fgraph.outputs)),
            list(fgraph.nodes) + list(fgraph.outputs) + [i for n in fgraph.nodes for i in n.inputs])
