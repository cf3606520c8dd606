"""The kernel sequence's cost to gcc (issue 16, cold compile): a status check only after the
kernels that can fail, and translation units balanced on the sequence's calls as well as on the
kernel bodies they define."""
import re

import numpy as np
import pytest

import graphc as G
from graphc.codegen.kernels import spec_of
from graphc.errors import GraphcError
from graphc.targets.c import render_c

from program_cases import program_of


def _step():
    """Elementwise work around a softmax cross-entropy (it fails on a label out of range)."""
    x, y = G.matrix("x", "float64"), G.lvector("y")
    w = G.shared(np.linspace(-1, 1, 12).reshape(4, 3), name="w")
    logits = G.tanh(G.dot(x, w)) * 2 + 1
    loss = G.softmax_cross_entropy(logits, y).mean()
    return [x, y], loss, {w: w - 0.1 * G.grad(loss, w)}, w


def test_status_is_checked_after_the_kernels_that_can_fail_only():
    inputs, loss, updates, _ = _step()
    program = program_of(inputs, [loss], updates, name="checks")
    source = render_c.render_program(program, "checks", "")
    blocks = re.split(r"\n    /\* k(\d+): ", source.split("static int gc_entry_run(")[-1])[1:]
    checked = {int(ki) for ki, text in zip(blocks[::2], blocks[1::2])
               if "\n    if (status) return status;" in text}
    fallible = {ki for ki, k in enumerate(program.kernels) if spec_of(k.kind).can_fail(k)}
    assert fallible and checked == fallible
    assert len(fallible) < len(program.kernels)


def test_a_kernel_that_fails_still_stops_the_call_and_changes_nothing():
    inputs, loss, updates, w = _step()
    f = G.function(inputs, loss, updates=updates, name="checks_run")
    x = np.linspace(-1, 1, 8).reshape(2, 4)
    before = w.get_value().copy()
    with pytest.raises(GraphcError, match="label"):
        f(x, np.array([0, 7]))  # 7: no such class
    np.testing.assert_array_equal(w.get_value(), before)
    ref = G.function(inputs, loss, backend="py", name="checks_ref")
    want = ref(x, np.array([0, 2]))  # (before f's update of w)
    np.testing.assert_allclose(f(x, np.array([0, 2])), want, rtol=1e-12)


def test_units_are_balanced_on_the_calls_of_shared_kernels_too(monkeypatch):
    """Layers alike: the first layer defines the shared bodies, the later ones only call them.
    Each call and its buffer pointers cost gcc about what as many bytes of a body cost (ResNet-20:
    ~0.35 s of a unit's ~0.75 s), so a later use weighs its call, not nothing."""
    x = G.matrix("x", "float32")
    rng = np.random.RandomState(0)
    h = x
    for i in range(12):
        w = G.shared(rng.standard_normal((8, 8)).astype(np.float32), name=f"w{i}")
        h = G.tanh(G.dot(h, w) + 1)
    program = program_of([x], [h.sum()], name="balance")
    real_plan, seen = render_c.plan_segments, {}

    def plan(program, max_units, **kw):
        seen.update(kw)
        return real_plan(program, max_units, **dict(kw, min_unit_cost=1))
    monkeypatch.setattr(render_c, "plan_segments", plan)
    assert len(render_c.render_units(program, "balance", "", 2)) == 2
    later_uses = [ki for ki, c in enumerate(seen["costs"]) if c == 0]  # bodies defined before
    assert len(later_uses) >= 20
    for ki in later_uses:
        assert seen["balance"][ki] == render_c._sequence_volume(program.kernels[ki]) > 0


def _two_units(monkeypatch, outputs, inputs):
    real_plan = render_c.plan_segments
    monkeypatch.setattr(render_c, "plan_segments",
                        lambda *a, **kw: real_plan(*a, **dict(kw, min_unit_cost=1)))
    program = program_of(inputs, outputs, name="light")
    sources = render_c.render_units(program, "light", "", 2)
    assert len(sources) == 2
    return program, sources


def test_a_segment_of_calls_and_simd_loops_compiles_at_O1(monkeypatch):
    x = G.tensor4("x")
    w = G.shared(np.linspace(-1, 1, 4 * 3 * 9, dtype=np.float32).reshape(4, 3, 3, 3), name="w")
    h = G.relu(G.conv2d(x, w, padding=1))
    cost = (G.max_pool2d(h, 2) ** 2).mean()
    program, sources = _two_units(monkeypatch, [cost, G.grad(cost, w)], [x])
    assert all(k.kind in render_c.LIGHT_KINDS or k.kind == "fill" for k in program.kernels)
    for src in sources:
        assert src.count('__attribute__((optimize("O1")))\nGC_SEGMENT int gc_entry_seg') == 1


def test_a_segment_with_other_loops_keeps_O3(monkeypatch):
    x = G.matrix("x", "float64")
    h = G.softmax(G.tanh(x) * 2)  # softmax: scalar loops inline
    program, sources = _two_units(monkeypatch, [h, G.tanh(h + 1).sum()], [x])
    softmax_units = [i for i, src in enumerate(sources) if "/* k" in src and ": softmax " in src]
    assert softmax_units
    for i in softmax_units:
        assert 'optimize("O1")' not in sources[i]
