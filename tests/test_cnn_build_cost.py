"""Building a CNN's graph asks sympy for no work it does not need (issue 16: LeNet's warm compile
took ~0.5 s against the MLP's 0.04 s, most of it here): shape messages are printed only when a
check fails, conv and pool output sizes are built without sympy's floor/ceiling evaluation, and
unchanged dims are not rebuilt when the function graph resolves them."""
import itertools
import os
import sys

import numpy as np
import pytest
import sympy
from sympy.printing.str import StrPrinter

import graphc as G
from graphc.errors import GraphcShapeError
from graphc.ir.ops.conv import div_dim


def _lenet_like():
    x = G.tensor4("x")
    w1 = G.shared(np.zeros((4, 1, 5, 5), np.float32), name="w1")
    b1 = G.shared(np.zeros(4, np.float32), name="b1")
    w2 = G.shared(np.zeros((6, 4, 3, 3), np.float32), name="w2")
    h = G.max_pool2d(G.conv2d(x, w1, padding=1) + b1.dimshuffle("x", 0, "x", "x"), 3, 2)
    h = G.avg_pool2d(G.relu(G.conv2d(h, w2, stride=2)), 2)
    cost = (h.flatten(2) ** 2).mean()
    return x, cost, G.grad(cost, [w1, b1, w2])


@pytest.fixture
def counted(monkeypatch):
    calls = {"print": 0, "floor": 0}
    real_print = StrPrinter.doprint
    real_floor, real_ceiling = sympy.floor.eval.__func__, sympy.ceiling.eval.__func__

    def doprint(self, expr):  # str() of a sympy value, called from graphc's code
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_name != "__str__":
            frame = frame.f_back
        caller = frame.f_back if frame is not None else None
        if caller is not None and os.sep + "graphc" + os.sep in caller.f_code.co_filename:
            calls["print"] += 1
        return real_print(self, expr)

    def floor_eval(cls, arg):
        calls["floor"] += 1
        return (real_floor if cls is sympy.floor else real_ceiling)(cls, arg)

    monkeypatch.setattr(StrPrinter, "doprint", doprint)
    monkeypatch.setattr(sympy.floor, "eval", classmethod(floor_eval))
    monkeypatch.setattr(sympy.ceiling, "eval", classmethod(floor_eval))
    return calls


def test_building_a_cnn_graph_prints_nothing_and_evaluates_no_floor(counted):
    _lenet_like()
    assert counted == {"print": 0, "floor": 0}


def test_a_failing_shape_check_still_names_the_shapes():
    x, w = G.tensor("x", (2, 3, 8, 8)), G.tensor("w", (4, 3, 3, 3))
    with pytest.raises(GraphcShapeError, match=r"broadcast axis 1 of shapes \[\('2', '4', '6', '6'\)"):
        G.conv2d(x, w) + G.tensor("b", (1, 5, 1, 1))


def test_div_dim_matches_sympy_evaluation():
    x = G.tensor4("x").type.shape[2]
    sizes = [x, x - 4, sympy.ceiling(x / 2 - sympy.Rational(3, 2)) + 1,
             sympy.floor(x / 4 - sympy.Rational(11, 4)) + 1, 2 * x + 1, 3 * x]
    for size, c, s, up in itertools.product(sizes, range(-7, 4), [1, 2, 3], [False, True]):
        want = (sympy.ceiling if up else sympy.floor)((size + c) / s)
        assert div_dim(size + c, s, up) == want, (size, c, s, up)


def test_cnn_with_symbolic_sizes_still_runs():
    x, cost, grads = _lenet_like()
    f = G.function([x], [cost] + grads)
    ref = G.function([x], [cost] + grads, backend="py", opt_level="O0")
    xv = np.random.RandomState(0).standard_normal((3, 1, 15, 13)).astype(np.float32)
    for got, want in zip(f(xv), ref(xv)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_a_function_with_deferred_messages_pickles():
    """Constraint messages are LazyText; a pickled function carries them as plain text."""
    import pickle
    x, w = G.tensor4("x"), G.tensor("w", (2, 3, 3, 3))
    y = G.conv2d(x, w) * 2.0  # a symbolic channel count: a constraint with a deferred message
    f = G.function([x, w], y.sum(), backend="py")
    f(np.ones((1, 3, 4, 4), np.float32), np.ones((2, 3, 3, 3), np.float32))  # op caches filled
    g = pickle.loads(pickle.dumps(f))
    assert g(np.ones((1, 3, 4, 4), np.float32), np.ones((2, 3, 3, 3), np.float32)) == 432.0  # 2*2*2 outputs of 27, doubled
