"""Golden rendered C for a few small graphs: lowered and rendered (no compiler), compared byte for
byte with tests/golden/<name>.c. A change to lowering, a template or a printer that alters the
generated code shows up here as a readable diff.

After an intended change, regenerate and review the diff before committing:

    GRAPHC_UPDATE_GOLDEN=1 python -m pytest -q -p no:cacheprovider tests/test_render_golden.py
    git diff tests/golden/
"""
import os
import re

import numpy as np
import pytest

import graphc as G
from graphc.targets.c.render_c import render_program

from program_cases import program_of

GOLDEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")


def elemwise_broadcast():
    batch = G.dim("batch")
    x = G.tensor("x", (batch, 4), "float32")
    b = G.tensor("b", (4,), "float32")
    i = G.tensor("i", (batch, 4), "int32")
    return [x, b, i], [G.tanh(x * 2 + b) + G.cast(i, "float32"), (G.exp(x) * x).sum(axis=1)]


def mlp_softmax_step():
    batch = G.dim("batch")
    x = G.tensor("x", (batch, 3), "float64")
    y = G.tensor("y", (batch,), "int64")
    w = G.shared(np.full((3, 2), 0.5), name="W")
    b = G.shared(np.zeros(2), name="b")
    p = G.softmax(G.dot(x, w) + b)
    loss = G.softmax_cross_entropy(G.dot(x, w) + b, y).mean()
    gw, gb = G.grad(loss, [w, b])
    return [x, y], [loss, p], {w: w - 0.1 * gw, b: b - 0.1 * gb}


def conv_pool_lrn():
    x = G.tensor("x", (2, 2, 6, 6), "float32")
    w = G.tensor("w", (4, 2, 3, 3), "float32")
    y = G.lrn(G.max_pool2d(G.relu(G.conv2d(x, w, padding=1)), 2), 3, alpha=0.3, beta=0.6)
    return [x, w], [y] + G.grad((y * y).sum(), [x, w])


def _canonical(source):
    """Unnamed variables are labelled by a process-wide counter (v60: how many were made before);
    in the comments they are renumbered by first appearance, so the text depends on the graph
    only."""
    names = {}

    def renumber(comment):
        return re.sub(r"\bv\d+\b", lambda m: names.setdefault(m.group(0), f"v_{len(names)}"),
                      comment.group(0))
    return re.sub(r"/\*.*?\*/", renumber, source, flags=re.S)


CASES = {"elemwise_broadcast": elemwise_broadcast, "mlp_softmax_step": mlp_softmax_step,
         "conv_pool_lrn": conv_pool_lrn}


@pytest.mark.parametrize("name", sorted(CASES))
def test_rendered_source_matches_golden(name):
    built = CASES[name]()
    inputs, outputs = built[:2]
    updates = built[2] if len(built) > 2 else None
    source = _canonical(render_program(program_of(inputs, outputs, updates, name=name), name, ""))
    path = os.path.join(GOLDEN_DIR, f"{name}.c")
    if os.environ.get("GRAPHC_UPDATE_GOLDEN"):
        with open(path, "w") as fh:
            fh.write(source)
    with open(path) as fh:
        expected = fh.read()
    assert source == expected, (f"rendered C of {name} differs from {path}; if the change is "
                                "intended, regenerate (see this file's docstring) and review")
