"""The target registry and the driver's use of it (graph-level: no compile unless named)."""
import os

import numpy as np
import pytest

import graphc as G
from graphc.targets import (available_targets, get_target, register, registered_names,
                            unregister)
from graphc.targets.base import Capabilities, Target
from graphc.targets.py.executor import PyProgram


def test_an_unknown_backend_names_the_registered_targets():
    x = G.vector("x")
    with pytest.raises(G.GraphcTypeError, match=r"unknown backend 'gpu'.*'c', 'cuda', 'py'"):
        G.function([x], x + 1, backend="gpu")


def test_py_and_c_are_registered_and_py_always_runs():
    assert {"py", "c"} <= set(registered_names())
    assert "py" in available_targets()
    assert get_target("py").capabilities.runs_graph


def test_a_registered_target_is_what_backend_names():
    class Traced(Target):
        """Runs the graph with the py executor and records what the driver asked of it."""
        name = "traced_py"
        capabilities = Capabilities(runs_graph=True)
        seen = []

        def prepare(self, fgraph):
            self.seen.append("prepare")

        def load_graph(self, fgraph, checker):
            self.seen.append("load_graph")
            return PyProgram(fgraph, checker)

    register(Traced())
    try:
        x = G.vector("x")
        f = G.function([x], x * 2, backend="traced_py")
    finally:
        unregister("traced_py")
    np.testing.assert_array_equal(f(np.arange(3, dtype="float32")), [0, 2, 4])
    assert Traced.seen == ["prepare", "load_graph"]
    assert f.program.source == "" and f.program.describe() == ""
    assert set(f.timings) >= {"build_graph", "optimize", "total"}


def test_a_checkout_renders_with_its_own_templates():
    # (an editable install of another checkout maps graphc.templates to that checkout's files)
    from graphc.targets.c.templates_dir import templates_root
    checkout = os.path.dirname(os.path.dirname(os.path.abspath(G.__file__)))
    assert templates_root() == os.path.join(checkout, "templates")
