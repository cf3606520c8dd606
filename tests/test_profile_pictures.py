"""Pictures: G.dump(f, dir, format="svg") through Graphviz's dot (fused kernels as clusters of
their ops), _repr_svg_ of functions and variables, and the text or warning without dot."""
import os
import re
import warnings

import numpy as np
import pytest

import graphc as G
from graphc import pictures
from graphc.pictures import GraphvizMissing, PictureError, label_ops, program_dot

needs_dot = pytest.mark.skipif(pictures.dot_program() is None,
                               reason="Graphviz's dot is not installed (apt-get install graphviz)")


@pytest.fixture(scope="module")
def fn():
    x = G.matrix("x", shape=("batch", 3))
    w = G.shared(np.array([0.5, -1.0, 2.0], "float32"), name='w"\\odd')  # quote, backslash
    cost = G.tanh(G.dot(x, w) * 2 + 1).sum()
    return G.function([x], cost, updates={w: w - 0.1 * G.grad(cost, w)}, name="pic_fn")


def test_label_ops():
    assert label_ops("fused(add,relu)") == ["add", "relu"]
    assert label_ops("siblings(fused(cast_float32,true_div), fused(a,b))") == \
        ["cast_float32", "true_div", "a", "b"]
    assert label_ops("Reduce{kind=sum, axes=(0,), keepdims=True}") == \
        ["Reduce{kind=sum, axes=(0,), keepdims=True}"]
    assert label_ops("fused(") == ["fused("]


def test_program_dot_has_a_cluster_per_fused_kernel(fn):
    program = fn.program.program
    dot = program_dot(program, fn.name)
    fused = [k for k, kern in enumerate(program.kernels) if len(label_ops(kern.label)) > 1]
    assert fused, "the test graph should have a fused kernel"
    for k in fused:
        body = re.search(rf"subgraph cluster_k{k} \{{(.*?)\n  \}}", dot, re.S).group(1)
        for op in label_ops(program.kernels[k].label):
            assert f'[label="{op}", shape=box]' in body
    # one box per kernel that is not a cluster, and the updated parameter's new value
    assert len(re.findall(r"shape=box\]", dot)) == \
        sum(len(label_ops(kern.label)) for kern in program.kernels)
    assert "(updated)" in dot


@needs_dot
def test_dump_writes_svg_pictures(fn, tmp_path):
    paths = G.dump(fn, str(tmp_path), format="svg")
    names = sorted(os.path.basename(p) for p in paths)
    assert names == ["pic_fn.graph.dot", "pic_fn.graph.svg", "pic_fn.program.dot",
                     "pic_fn.program.svg"]
    svg = (tmp_path / "pic_fn.program.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "cluster_k" in svg
    assert (tmp_path / "pic_fn.c").exists()  # the text dumps too


def test_dump_without_dot_writes_dot_files_and_says_how_to_get_it(fn, tmp_path, monkeypatch):
    monkeypatch.setattr(pictures, "dot_program", lambda: None)
    with pytest.warns(GraphvizMissing, match="apt-get install graphviz"):
        paths = G.dump(fn, str(tmp_path), format="svg")
    assert sorted(os.path.basename(p) for p in paths) == ["pic_fn.graph.dot", "pic_fn.program.dot"]
    assert fn._repr_svg_() is None  # Jupyter then shows the text
    x = G.vector("x")
    assert G.exp(x)._repr_svg_() is None


def test_dump_format_errors(fn, tmp_path):
    with pytest.raises(PictureError, match="directory"):
        G.dump(fn, format="svg")
    with pytest.raises(PictureError, match="not one of svg, png, pdf"):
        G.dump(fn, str(tmp_path), format="gif")


@needs_dot
def test_repr_svg_of_a_function_and_a_variable(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        svg = fn._repr_svg_()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    x = G.vector("x")
    svg = (G.exp(x) + 1)._repr_svg_()
    assert "<svg" in svg and "exp" in svg


def test_function_text_fallback(fn):
    class Printer:
        def text(self, t):
            self.out = t
    p = Printer()
    fn._repr_pretty_(p, False)
    assert p.out.startswith("<graphc function pic_fn>") and "tanh" in p.out
