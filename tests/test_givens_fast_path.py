"""The Theano minibatch step (`givens={x: data[i*bs:(i+1)*bs]}`, called as f(i) with a Python
int) takes the C fast path (issue 14): its run-time slice dims are computed first and passed to
gc_dispatch. Wrong calls still reach the checked path's errors and change nothing."""
import numpy as np
import pytest

import graphc as G
from graphc.errors import InputError


def _step(backend="c"):
    data = np.arange(40, dtype="float32").reshape(10, 4)
    train_x = G.shared(data, name="train_x")
    w = G.shared(np.ones(4, "float32"), name="w")
    index, bs, x = G.lscalar("index"), 3, G.matrix("x")
    cost = G.dot(x, w).sum()
    f = G.function([index], [cost, x.shape[0]], updates=[(w, w - 0.01 * G.grad(cost, w))],
                   givens={x: train_x[index * bs:(index + 1) * bs]}, backend=backend)
    return f, data, w


def _no_checked_path(f, monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the call left the fast path")
    monkeypatch.setattr(f, "_call_checked", refuse)


def test_givens_step_runs_on_the_fast_path(monkeypatch):
    f, data, w = _step()
    assert f._fast is not None
    _no_checked_path(f, monkeypatch)
    want_w = np.ones(4, "float32")
    for i in (0, 1, 3, 4, np.int64(2)):  # 3: the short last batch; 4: past the end (empty)
        batch = data[i * 3:(i + 1) * 3]
        cost, n = f(i)
        assert n == len(batch)
        np.testing.assert_allclose(cost, (batch @ want_w).sum(), rtol=1e-6)
        want_w = want_w - np.float32(0.01) * batch.sum(axis=0)
        np.testing.assert_allclose(w.get_value(), want_w, rtol=1e-6)


def test_python_ints_for_integer_scalars_take_the_fast_path(monkeypatch):
    i, j, v, lr = G.lscalar("i"), G.iscalar("j"), G.vector("v"), G.scalar("lr")
    f = G.function([i, j, v, lr], (v * i).sum() * lr + j)
    _no_checked_path(f, monkeypatch)
    assert f(3, -2, np.ones(4, "float32"), np.float32(0.5)) == 4
    assert f(np.int64(3), np.int32(-2), np.ones(4, "float32"), np.float32(1)) == 10


def test_bad_calls_leave_the_fast_path_for_the_checked_errors():
    f, data, w = _step()
    before = w.get_value().copy()
    with pytest.raises(InputError, match="index"):
        f(1.5)  # a float for an int64 scalar
    with pytest.raises(InputError, match="expected 1 arguments"):
        f()
    j = G.iscalar("j")
    g = G.function([j], j * 2)
    with pytest.raises(InputError, match="j"):
        g(2 ** 40)  # does not fit int32: the checked path says so
    np.testing.assert_array_equal(w.get_value(), before)  # no failed call changed w


def test_run_time_slices_that_disagree_fail_on_the_fast_path_too():
    d = G.shared(np.arange(10, dtype="float32"), name="d")
    a, b = G.lscalar("a"), G.lscalar("b")
    f = G.function([a, b], d[a:a + 3] + d[b:b + 3])
    assert f._fast is not None
    np.testing.assert_array_equal(f(0, 5), [5, 7, 9])
    with pytest.raises(InputError, match=r"d\[b:b \+ 3\].*length 2.*needs 3"):
        f(0, 8)
