"""The pass manager, FunctionGraph.replace, the graph verifier and the op matching helpers:
graph-level tests, no compiler (graphs are optimized directly or run by backend "py")."""
import numpy as np
import pytest

import graphc as G
from graphc.errors import GraphVerifyError, PipelineError
from graphc.ir.fgraph import build_function_graph
from graphc.ir.graph import Node
from graphc.ir.ops import elemwise as E
from graphc.ir.verify import verify_graph
from graphc.passes import manager, optimize
from graphc.passes.rewriting import applies, is_cast, made_by


def _graph():
    x = G.vector("x", "float64")
    return x, build_function_graph([x], [G.exp(x * 1.0) + G.exp(x * 1.0)], {})


# --- pipelines ---------------------------------------------------------------------------

def test_levels_are_explicit_lists_of_registered_passes():
    assert manager.PIPELINES["O0"] == []
    assert manager.PIPELINES["O1"] == ["scan_last_state", "canonicalize", "merge_increments",
                                       "stabilize"]
    assert manager.PIPELINES["O3"][-2:] == ["fuse_gemm", "fuse_siblings"]
    for names in manager.PIPELINES.values():
        assert manager.pipeline(names) == names


def test_unknown_level_or_pass_fails_naming_it():
    with pytest.raises(PipelineError, match="'O7'.*O0, O1, O2, O3"):
        manager.pipeline("O7")
    with pytest.raises(PipelineError, match="'fuse_everything'.*canonicalize"):
        manager.pipeline(["canonicalize", "fuse_everything"])
    with pytest.raises(PipelineError, match="GRAPHC_DISABLE_PASSES.*'gemm'"):
        manager.pipeline("O3", disabled=["gemm"])


def test_a_disabled_pass_does_not_run(monkeypatch):
    x, fg = _graph()
    monkeypatch.setattr(G.config, "disabled_passes", ["canonicalize"])
    _, log = optimize(fg, "O1")
    assert [r.name for r in log] == ["input", "scan_last_state", "merge_increments",
                                     "stabilize"]


def test_opt_level_may_be_a_list_of_passes():
    x = G.vector("x", "float64")
    out = G.exp(x * 1.0) + G.exp(x * 1.0)
    f = G.function([x], out, backend="py", opt_level=["canonicalize"])
    assert [r.name for r in f.pass_log] == ["input", "canonicalize"]
    assert sorted(n.op.name for n in f.fgraph.nodes) == ["add", "exp"]
    np.testing.assert_allclose(f(np.arange(3.0)), 2 * np.exp(np.arange(3.0)))


def test_each_pass_reports_whether_it_changed_the_graph():
    x, fg = _graph()
    _, log = optimize(fg, "O3")
    changed = {r.name: r.changed for r in log}
    assert changed["canonicalize"] and changed["fuse_elemwise"]
    assert not changed["merge_products"] and not changed["fuse_gemm"]
    _, again = optimize(build_function_graph([x], [G.exp(x)], {}), "O3")
    assert not any(r.changed for r in again)


def test_a_pass_that_hides_a_change_is_caught_by_the_verifier(monkeypatch):
    def sneaky(fgraph):
        node = fgraph.nodes[0]
        fgraph.replace(node.outputs[0], E.tanh_op(node.inputs[0]))
        return fgraph, False

    monkeypatch.setitem(manager._REGISTRY, "sneaky", sneaky)
    monkeypatch.setattr(G.config, "verify_graphs", True)
    x = G.vector("x", "float64")
    with pytest.raises(GraphVerifyError, match="'sneaky' reported no change"):
        optimize(build_function_graph([x], [G.exp(x)], {}), ["sneaky"])


def test_a_pass_must_return_graph_and_changed(monkeypatch):
    monkeypatch.setitem(manager._REGISTRY, "old_style", lambda fgraph: fgraph)
    x, fg = _graph()
    with pytest.raises(PipelineError, match="'old_style' returned FunctionGraph"):
        optimize(fg, ["old_style"])


# --- replace -------------------------------------------------------------------------------

def test_replace_rewires_readers_and_outputs_and_keeps_the_reader_index_exact():
    x = G.vector("x", "float64")
    e = G.exp(x)
    t = G.tanh(e)
    fg = build_function_graph([x], [t * e, e], {})
    assert set(fg.readers(e)) == {t.owner, fg.outputs[0].owner} and fg.is_output(e)
    new = G.sigmoid(x)
    fg.replace(e, new)
    assert fg.outputs[1] is new and t.owner.inputs == [new]
    assert not fg.readers(e)
    # The exp node is dead: it no longer counts as a reader of x.
    assert set(fg.readers(x)) == {new.owner}
    index = {v: dict(c) for v, c in fg._readers.items() if c}
    fg.refresh()
    assert index == {v: dict(c) for v, c in fg._index().items() if c}
    verify_graph(fg)


def test_replace_without_cascade_drops_only_the_replaced_node():
    x = G.vector("x", "float64")
    e = G.exp(x)
    y = G.tanh(e)
    fg = build_function_graph([x], [y], {})
    fg.replace(y, G.sigmoid(x), cascade=False)
    assert set(fg.readers(e)) == set()  # the tanh's read is gone
    assert set(fg.readers(x)) == {e.owner, fg.outputs[0].owner}  # the exp still listed
    fg.drop_if_dead(e.owner, cascade=False)
    assert set(fg.readers(x)) == {fg.outputs[0].owner}


# --- verifier ------------------------------------------------------------------------------

def test_verifier_accepts_every_optimized_graph():
    x, fg = _graph()
    for level in ("O0", "O1", "O2", "O3"):
        verify_graph(optimize(fg, level)[0])


def test_verifier_finds_a_stale_node_list_and_a_dead_read():
    x = G.vector("x", "float64")
    e = G.exp(x)
    fg = build_function_graph([x], [e * 2.0], {})
    mul = fg.nodes[-1]
    mul.inputs = [G.tanh(x), mul.inputs[1]]  # rewired by hand, no refresh
    with pytest.raises(GraphVerifyError, match="after pass bad.*stale"):
        verify_graph(fg, "bad")
    fg.refresh()
    fg.nodes = [n for n in fg.nodes if n.op.name != "tanh"]  # a reader of a dead value
    with pytest.raises(GraphVerifyError, match="dead variable"):
        verify_graph(fg)


def test_verifier_finds_a_type_that_inference_does_not_give():
    x = G.vector("x", "float64")
    y = G.exp(x)
    fg = build_function_graph([x], [y], {})
    node = fg.nodes[0]
    fg.replace(y, Node(node.op, node.inputs, [G.matrix("m", "float64").type]).outputs[0])
    fg.refresh()
    with pytest.raises(GraphVerifyError, match="but its op infers float64"):
        verify_graph(fg)


# --- matching helpers ----------------------------------------------------------------------

def test_rewrites_match_ops_not_names():
    x = G.vector("x", "float64")
    s = x + x
    impostor = E.Elemwise("add", E.ARGS[0] * E.ARGS[1], 2)  # named add, multiplies
    assert made_by(s, E.add_op) and applies(s.owner, E.add_op)
    assert not made_by(impostor(x, x), E.add_op) and not made_by(x, E.add_op)
    assert is_cast(E.cast(x, "float32").owner.op) and is_cast(E.cast(x, "bool").owner.op)
    assert not is_cast((x > 0).owner.op)  # dtype rule "bool" too, but a comparison


def test_an_op_named_like_a_table_op_is_not_rewritten():
    x = G.vector("x", "float64")
    impostor = E.Elemwise("add", E.ARGS[0] * E.ARGS[1], 2)
    out = impostor(x, G.constant(np.zeros(1)))  # "x + 0" by name, x * 0 in fact
    f = G.function([x], out, backend="py", opt_level="O1")
    np.testing.assert_array_equal(f(np.arange(3.0)), np.zeros(3))
