"""Inner graphs (graphc.ir.inner_graph): structural equality and hashing, CSE of ops that carry
equal inner graphs, the artifact cache's signature, and the passes recursing into them. The op
carrying one here is a test op; `scan` will be the first real one."""
import numpy as np
import pytest

import graphc as G
from graphc.targets.c.artifacts import graph_signature
from graphc.errors import GraphcTypeError
from graphc.ir.fgraph import build_function_graph
from graphc.ir.graph import Op
from graphc.ir.inner_graph import InnerGraph
from graphc.ir.types import TensorType
from graphc.passes import optimize


class ApplyGraph(Op):
    """Applies `body` (an InnerGraph) to its inputs: the simplest op that carries a graph."""
    __props__ = ("body",)
    inner_graph_props = ("body",)

    def __init__(self, body):
        self.body = body
        self.nout = len(body.outputs)

    def infer(self, input_types, ctx):
        # (the bodies here are elementwise: outputs shaped like the first input)
        for k, (t, want) in enumerate(zip(input_types, self.body.input_types)):
            if (t.dtype, t.ndim) != (want.dtype, want.ndim):
                raise GraphcTypeError(f"ApplyGraph: input {k} is {t}, the body takes {want}")
        return [TensorType(o.dtype, input_types[0].shape) for o in self.body.output_types]

    def reference(self, *arrays):
        out = self.body.evaluate(*arrays)
        return out if self.nout > 1 else out[0]


def body(name="a"):
    """exp(a * 1.0) + 0.0, with inputs and intermediates named after `name`."""
    a = G.vector(name, "float64")
    t = G.exp(a * 1.0)
    t.name = f"{name}_exp"
    return InnerGraph([a], [t + 0.0])


def test_equal_structure_is_equal_whatever_the_names():
    b1, b2 = body("a"), body("z")
    assert b1 == b2 and hash(b1) == hash(b2) and b1.signature() == b2.signature()
    a = G.vector("a", "float64")
    other = InnerGraph([a], [G.exp(a * 2.0) + 0.0])
    assert other != b1 and other.signature() != b1.signature()
    assert ApplyGraph(b1) == ApplyGraph(b2) and hash(ApplyGraph(b1)) == hash(ApplyGraph(b2))


def test_inner_graph_is_frozen_and_closed():
    a = G.vector("a", "float64")
    y = G.exp(a)
    g = InnerGraph([a], [y])
    y.owner.inputs = [G.vector("b", "float64")]  # editing the graph it was built from
    assert g.nodes[0].inputs == [a]
    w = G.vector("w", "float64")
    with pytest.raises(GraphcTypeError, match="read w .*pass it in as an input"):
        InnerGraph([a], [a * w])


def test_cse_merges_ops_with_equal_inner_graphs():
    x = G.vector("x", "float64")
    out = ApplyGraph(body("a"))(x) * ApplyGraph(body("b"))(x)
    fg = build_function_graph([x], [out], {})
    assert sum(isinstance(n.op, ApplyGraph) for n in fg.nodes) == 2
    opt, _ = optimize(fg, "O1")
    assert sum(isinstance(n.op, ApplyGraph) for n in opt.nodes) == 1
    f = G.function([x], out, backend="py", opt_level="O1")
    xv = np.linspace(-1, 1, 5)
    np.testing.assert_allclose(f(xv), np.exp(xv) ** 2, rtol=1e-12)


def test_artifact_signature_signs_inner_graphs_by_structure():
    def signature(b):
        x = G.vector("x", "float64")
        return graph_signature(build_function_graph([x], [ApplyGraph(b)(x)], {}), "c", "O3")

    assert signature(body("a")) == signature(body("q"))
    a = G.vector("a", "float64")
    assert signature(body("a")) != signature(InnerGraph([a], [G.tanh(a * 1.0) + 0.0]))


@pytest.mark.parametrize("level", ["O1", "O3"])
def test_passes_optimize_inner_graphs(level):
    x = G.vector("x", "float64")
    out = ApplyGraph(body())(x)
    f = G.function([x], out, backend="py", opt_level=level)
    (node,) = f.fgraph.nodes
    inner = node.op.body
    # canonicalize dropped * 1.0 and + 0.0 in the body: one exp left
    assert [n.op.name for n in inner.nodes] == ["exp"]
    assert [r.name for r in f.pass_log][:2] == ["input", "inner_graphs"] and f.pass_log[1].changed
    xv = np.linspace(-1, 1, 5)
    np.testing.assert_allclose(f(xv), np.exp(xv), rtol=1e-12)


def test_inner_graphs_of_inner_graphs_are_optimized():
    a = G.vector("a", "float64")
    outer_body = InnerGraph([a], [ApplyGraph(body())(a) * 1.0])
    x = G.vector("x", "float64")
    f = G.function([x], ApplyGraph(outer_body)(x), backend="py", opt_level="O1")
    (node,) = f.fgraph.nodes
    (inner_node,) = node.op.body.nodes
    assert [n.op.name for n in inner_node.op.body.nodes] == ["exp"]
    np.testing.assert_allclose(f(np.arange(3.0)), np.exp(np.arange(3.0)), rtol=1e-12)
