"""hs[-1] of a scan whose history nothing else reads (inference) reads the loop's final state
(graphc/passes/scan_last_state.py): no T-step history buffer is planned, so the planned memory
does not grow with T, and a training step (whose BPTT reads the history) is left as it was."""
import numpy as np
import pytest

import graphc as G
from program_cases import program_of

B, H = 2, 3


def rnn(T, dtype="float64", taps=(-1,), **kw):
    """h_t = tanh(z_t + h_{t-1} @ U) (+ 0.5 h_{t-2} with taps (-2, -1)): the input projection
    is the sequence itself (as lstm.py's state_below): nothing T-sized is hoisted before the
    loop."""
    Z = G.tensor("Z", (T, B, H), dtype)
    U = G.tensor("U", (H, H), dtype)
    if taps == (-1,):
        h0 = G.tensor("h0", (B, H), dtype)
        hs, _ = G.scan(lambda z, h: G.tanh(z + G.dot(h, U)), sequences=Z, outputs_info=h0,
                       name="rnn", **kw)
    else:
        h0 = G.tensor("h0", (2, B, H), dtype)
        hs, _ = G.scan(lambda z, h2, h1: G.tanh(z + G.dot(h1, U)) + 0.5 * h2, sequences=Z,
                       outputs_info=dict(initial=h0, taps=[-2, -1]), name="rnn", **kw)
    return [Z, h0, U], hs


def _loop(program):
    return next(k for k in program.kernels if k.kind == "loop")


def _point(T, dtype, taps=(-1,), seed=0):
    r = np.random.default_rng(seed)
    h0 = r.standard_normal((B, H) if taps == (-1,) else (2, B, H))
    return [r.standard_normal((T, B, H)).astype(dtype), h0.astype(dtype),
            (0.5 * r.standard_normal((H, H))).astype(dtype)]


READS = {  # what the function returns of hs, and which taps the scan needs for it
    "last": (lambda hs: [hs[-1]], (-1,)),
    "last_row": (lambda hs: [hs[-1, 1]], (-1,)),
    "last_as_slice": (lambda hs: [hs[-1:]], (-1,)),
    "last_two_from_taps": (lambda hs: [hs[-2], hs[-2:], hs[-1]], (-2, -1)),
}


@pytest.mark.parametrize("read", sorted(READS))
def test_last_states_equal_the_history_s_on_every_target(read, target, dtype):
    pick, taps = READS[read]
    inputs, hs = rnn(None, dtype, taps)
    f = G.function(inputs, pick(hs), backend=target)
    ref = G.function(inputs, pick(hs), backend="py", opt_level="O0")  # the history, indexed
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-13)
    for T in (5, 2):
        point = _point(T, dtype, taps, seed=T)
        for got, want in zip(f(*point), ref(*point)):
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, **tol)
    assert len(_loop(program_of(inputs, pick(hs))).outputs) == (1 if taps == (-1,) else 2)


def test_inference_plan_does_not_grow_with_T(monkeypatch):
    def plan(T):
        inputs, hs = rnn(T, "float32")
        return program_of(inputs, [hs[-1]])
    short, long = plan(32), plan(512)
    assert len(_loop(short).outputs) == 1  # the final state; no [T, B, H] history
    assert int(short.workspace_bytes) == int(long.workspace_bytes)
    # without the pass, the history is planned: T steps of B x H floats
    monkeypatch.setattr(G.config, "disabled_passes", ["scan_last_state"])
    assert int(plan(512).workspace_bytes) - int(plan(32).workspace_bytes) >= 480 * B * H * 4


def test_training_step_keeps_the_history(monkeypatch):
    """BPTT reads the history: the training step's program is the same with or without the pass."""
    def plan():
        inputs, hs = rnn(8, "float32")
        U = inputs[2]
        loss = (hs[-1] ** 2).sum()
        return program_of(inputs, [loss, G.grad(loss, U)])
    with_pass = plan()
    monkeypatch.setattr(G.config, "disabled_passes", ["scan_last_state"])
    without = plan()
    assert [k.kind for k in with_pass.kernels] == [k.kind for k in without.kernels]
    assert int(with_pass.workspace_bytes) == int(without.workspace_bytes)
    assert (8, B, H) in [tuple(b.shape) for b in _loop(with_pass).outputs]  # the history


def test_history_read_elsewhere_is_kept():
    inputs, hs = rnn(8, "float64")
    program = program_of(inputs, [hs[-1], hs.sum()])
    assert len(_loop(program).outputs) == 2


def test_too_few_steps_for_the_last_entries_read_is_refused(target):
    inputs, hs = rnn(None, "float64", (-2, -1))
    counter = G.shared(np.float64(0.0), name="counter")
    f = G.function(inputs, hs[-2], updates={counter: counter + 1}, backend=target)
    with pytest.raises(G.InputError, match=r"scan 'rnn': its output is read 2 steps from the "
                       r"end \(hs\[-2\]\), but the loop runs Z\.shape\[0\] = 1 step"):
        f(*_point(1, "float64", (-2, -1)))
    assert float(counter.get_value()) == 0.0
    f(*_point(2, "float64", (-2, -1)))
    assert float(counter.get_value()) == 1.0


def test_a_state_passed_through_unchanged_ends_the_lag_chain():
    """A step that returns a state as it came (the body's output is its input) made the chain
    of lags a cycle: the pass looped, growing memory without bound (found by reading back an
    exported BPTT gradient)."""
    x = G.tensor("x", (None, 2, 3), "float64")
    h0, c0 = G.tensor("h0", (2, 3), "float64"), G.tensor("c0", (2, 3), "float64")
    (hs, cs), _ = G.scan(lambda x_t, h, c: (G.tanh(x_t + h + c), c), sequences=x,
                         outputs_info=[h0, c0])
    f = G.function([x, h0, c0], [hs[-1], cs[-1]])
    xv = np.random.RandomState(0).standard_normal((4, 2, 3))
    hv, cv = np.zeros((2, 3)), np.ones((2, 3))
    got_h, got_c = f(xv, hv, cv)
    h = hv
    for t in range(4):
        h = np.tanh(xv[t] + h + cv)
    np.testing.assert_allclose(got_h, h, rtol=1e-12)
    np.testing.assert_array_equal(got_c, cv)
