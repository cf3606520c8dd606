"""The per-call cost of an imported model (issue 15, batch 1 vs onnxruntime): its weights are
shared variables, one lock each, and the native call path takes a function's several locks
itself (gc_dispatch.c: each lock's acquire in order, release in reverse) instead of through
the Python several-locks object. What must hold: no Python __enter__ on that path, a call waits
for every lock another thread holds, and a call that fails or runs gives every lock back."""
import threading

import numpy as np
import pytest

import graphc as G
from graphc.errors import GraphcError
from graphc.runtime import function as function_module


def _model(n_weights=4):
    """A small dense stack whose weights are shared variables, as an imported model's are."""
    x = G.matrix("x")
    ws = [G.shared(np.full((3, 3), 0.5 + k, "float32"), name=f"w{k}") for k in range(n_weights)]
    h = x
    for w in ws:
        h = G.dot(h, w)
    return x, ws, G.function([x], h)


def _all_free(ws):
    free = [w._lock.acquire(blocking=False) for w in ws]
    for w, got in zip(ws, free):
        if got:
            w._lock.release()
    return all(free)


def test_a_fast_call_takes_several_locks_without_python(monkeypatch):
    x, ws, f = _model()
    if f._fast is None:
        pytest.skip("no fast call path")
    assert isinstance(f._shared_lock, function_module._Locks)

    def python_enter(self):
        raise AssertionError("the fast path went through _Locks.__enter__")

    monkeypatch.setattr(function_module._Locks, "__enter__", python_enter)
    xv = np.ones((2, 3), "float32")
    expect = xv
    for w in ws:
        expect = expect @ w.get_value()
    np.testing.assert_allclose(f(xv), expect, rtol=1e-6)
    assert _all_free(ws)


def test_a_call_waits_for_a_lock_another_thread_holds():
    x, ws, f = _model()
    xv = np.ones((2, 3), "float32")
    done = threading.Event()
    ws[2]._lock.acquire()  # (the third of four: two are taken first, then the call waits)
    try:
        t = threading.Thread(target=lambda: (f(xv), done.set()))
        t.start()
        assert not done.wait(0.3), "the call ran while a shared variable's lock was held"
    finally:
        ws[2]._lock.release()
    t.join(30)
    assert done.is_set()
    assert _all_free(ws)


def test_a_failed_call_gives_back_every_lock():
    """A program that fails at run time (a label out of range) raises, changes nothing and holds
    no lock afterwards; the next call runs."""
    x, t = G.matrix("x"), G.ivector("t")
    w = G.shared(np.eye(3, dtype="float32"), name="w")
    b = G.shared(np.zeros(3, "float32"), name="b")
    loss = G.softmax_cross_entropy(G.dot(x, w) + b, t).mean()
    step = G.function([x, t], loss, updates=[(b, b + 1)])
    xv = np.ones((2, 3), "float32")
    with pytest.raises(GraphcError):
        step(xv, np.array([0, 7], "int32"))
    assert _all_free([w, b])
    np.testing.assert_array_equal(b.get_value(), 0)  # the failed call changed nothing
    step(xv, np.array([0, 2], "int32"))
    np.testing.assert_array_equal(b.get_value(), 1)
    assert _all_free([w, b])


def test_outputs_sized_by_expressions_of_the_dims_take_the_fast_path():
    """A symbolic image's pool or conv (an imported model with dim_params on its spatial axes)
    has output rows floor((h - k) / s) + 1: the fast path gets them from its prebind instead of
    leaving every call to the checked path (~70 us a call)."""
    x = G.tensor4("x")
    w = G.shared(np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype("float32"))
    y = G.max_pool2d(G.relu(G.conv2d(x, w, padding=(0, 0))), (2, 2))
    f = G.function([x], [y, y.sum()])
    v = G.vector("v")
    if G.function([v], v + 1)._fast is None:
        pytest.skip("no fast call path")
    assert f._fast is not None
    reference = G.function([x], [y, y.sum()], backend="py")
    rng = np.random.default_rng(1)
    for shape in [(2, 3, 10, 9), (1, 3, 7, 12), (3, 3, 3, 4)]:  # (the last: one output row)
        xv = rng.standard_normal(shape).astype("float32")
        for got, want in zip(f(xv), reference(xv)):
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_an_input_too_small_for_the_window_still_gets_the_checked_paths_error():
    x = G.tensor4("x")
    w = G.shared(np.ones((2, 1, 3, 3), "float32"))
    f = G.function([x], G.conv2d(x, w))
    for rows in (2, 1):  # 0 and -1 output rows for a 3-row window
        small = np.ones((1, 1, rows, 5), "float32")
        with pytest.raises(GraphcError) as fast:
            f(small)
        with pytest.raises(GraphcError) as checked:
            f._call_checked((small,), {})
        assert str(fast.value) == str(checked.value)
        assert "x.shape[2]=%d" % rows in str(fast.value)
