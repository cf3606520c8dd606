"""x[k] on an axis whose size is known only at the call: the compiled kernels read x[k]
unchecked, so the call checks 0 <= k < size first (before, the C target returned whatever lay
before or after the buffer: x[-1] of an empty vector read x[-1]). Such functions keep the C fast
path: the check runs in its pre-step."""
import numpy as np
import pytest

import graphc as G
from graphc.errors import InputError


@pytest.mark.parametrize("backend", ["py", "c"])
def test_an_index_past_a_symbolic_size_is_refused_at_the_call(backend, dtype):
    x, m = G.vector("x", dtype), G.matrix("m", dtype)
    f = G.function([x, m], [x[-1], x[2], m[:, -2], m[0]], backend=backend)
    xv, mv = np.arange(4, dtype=dtype), np.arange(6, dtype=dtype).reshape(2, 3)
    got = f(xv, mv)
    for g, w in zip(got, [xv[-1], xv[2], mv[:, -2], mv[0]]):
        np.testing.assert_array_equal(g, w)
    bad = [(np.zeros(0, dtype), mv, "index -1 is out of range for axis 0 of size x.shape[0] = 0"),
           (xv[:2], mv, "index 2 is out of range for axis 0 of size x.shape[0] = 2"),
           (xv, np.ascontiguousarray(mv[:, :1]), "index -2 is out of range for axis 1 of size m.shape[1] = 1"),
           (xv, mv[:0], "index 0 is out of range for axis 0 of size m.shape[0] = 0")]
    for a, b, message in bad:
        with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
            f(a, b)


def test_the_gradient_of_an_index_is_checked_too():
    x = G.vector("x", "float64")
    w = G.shared(np.ones(3), name="w")
    cost = (x[-1] * w).sum()
    f = G.function([x], cost, updates=[(w, w - 0.5 * G.grad(cost, w))])
    assert f(np.array([1.0, 2.0])) == 6.0
    with pytest.raises(InputError, match="index -1"):
        f(np.zeros(0))
    np.testing.assert_array_equal(w.get_value(), 1.0 - 0.5 * 2.0)  # the failed call changed nothing


def test_a_checked_index_keeps_the_fast_path(monkeypatch):
    x = G.vector("x", "float64")
    f = G.function([x], x[-1] * 2.0)
    assert f._fast is not None

    def refuse(*a, **k):
        raise AssertionError("the call left the fast path")
    monkeypatch.setattr(f, "_call_checked", refuse)
    assert f(np.array([1.0, 3.0])) == 6.0
    monkeypatch.undo()
    with pytest.raises(InputError, match="index -1"):
        f(np.zeros(0))


def test_a_static_size_needs_no_check():
    x = G.tensor("x", (3,), "float64")
    f = G.function([x], x[-1])
    assert not f.checker.runtime_checks and f(np.arange(3.0)) == 2.0
