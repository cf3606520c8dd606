"""The Loop op (graphc.ir.ops.loop) and the loop kernel: an RNN recurrence and a cumulative sum
as loops, compiled on the C target and compared with the py target and numpy; the memory plan
of a loop (liveness, the body's region, double-buffered states) and the rule that the loop
kernel's params, its body included, hold no C text."""
import numpy as np
import pytest
import sympy

import graphc as G
from graphc.codegen.memplan import check_plan
from graphc.ir.inner_graph import InnerGraph
from graphc.ir.ops.loop import Loop, loop

from program_cases import program_of
from test_program import _program_bad


def rnn(dtype, steps):
    """h_t = tanh(x_t @ W + h_{t-1} @ U): returns (inputs, [final h, every h])."""
    x = G.tensor("x", (steps, None, 3), dtype)
    h0, W, U = G.matrix("h0", dtype), G.matrix("W", dtype), G.matrix("U", dtype)
    xt, h, w, u = (G.matrix(n, dtype) for n in ("xt", "h", "w", "u"))
    h_new = G.tanh(G.dot(xt, w) + G.dot(h, u))
    return [x, h0, W, U], loop(InnerGraph([xt, h, w, u], [h_new, h_new]), [x], [h0], [W, U])


def rnn_numpy(x, h0, W, U):
    h, hist = h0, []
    for xt in x:
        h = np.tanh(xt @ W + h @ U)
        hist.append(h)
    return [h, np.stack(hist) if hist else np.zeros((0,) + h0.shape, h0.dtype)]


def cumsum(dtype, steps):
    """acc_t = acc_{t-1} + x_t, scaled by a non-sequence: returns (inputs, [total, running])."""
    x = G.tensor("x", (steps, 4), dtype)
    acc0, scale = G.vector("acc0", dtype), G.scalar("scale", dtype)
    xt, acc, s = G.vector("xt", dtype), G.vector("acc", dtype), G.scalar("s", dtype)
    new = acc + xt * s
    return [x, acc0, scale], loop(InnerGraph([xt, acc, s], [new, new * 1.0]), [x], [acc0], [scale])


def cumsum_numpy(x, acc0, scale):
    running = acc0 + np.cumsum(x * scale, axis=0)
    return [running[-1] if len(x) else acc0, running]


CASES = {"rnn": (rnn, rnn_numpy, lambda r, T, dt: [r.standard_normal((T, 2, 3)),
                                                    r.standard_normal((2, 5)),
                                                    r.standard_normal((3, 5)) * 0.5,
                                                    r.standard_normal((5, 5)) * 0.5]),
         "cumsum": (cumsum, cumsum_numpy, lambda r, T, dt: [r.standard_normal((T, 4)),
                                                            r.standard_normal(4),
                                                            np.array(0.5)])}


@pytest.mark.parametrize("steps", ["symbolic", "static"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_loop_on_c_matches_py_and_numpy(case, steps, dtype):
    build, oracle, draw = CASES[case]
    T = G.dim("T") if steps == "symbolic" else 6
    inputs, outputs = build(dtype, T)
    fc = G.function(inputs, outputs, backend="c", name=f"loop_{case}_{steps}")
    fp = G.function(inputs, outputs, backend="py")
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    for n in ([6, 1, 0] if steps == "symbolic" else [6]):
        args = [a.astype(dtype) for a in draw(np.random.default_rng(n), n, dtype)]
        got_c, got_py = fc(*args), fp(*args)
        for c, p, want in zip(got_c, got_py, oracle(*args)):
            assert c.dtype == dtype and c.shape == want.shape
            np.testing.assert_allclose(c, want, **tol)
            np.testing.assert_allclose(p, want, **tol)


def test_loop_types_follow_the_outer_dims():
    T = G.dim("T")
    inputs, (h_final, h_all) = rnn("float32", T)
    assert h_final.ndim == 2 and h_all.ndim == 3 and h_all.type.shape[0] == T
    assert h_final.type.shape == h_all.type.shape[1:]  # the body's dims, in the outer ones
    xt, acc = G.vector("xt", "float64"), G.matrix("acc", "float64")
    with pytest.raises(G.GraphcError, match="state 0 starts as .* keeps its type"):
        loop(InnerGraph([xt, acc], [acc.sum(axis=0)]), [G.matrix("x", "float64")],
             [G.matrix("a0", "float64")])


def test_gradient_of_a_bare_loop_without_state_histories():
    """A Loop whose body does not return its states per step (scan's do) is differentiated by
    re-running it with those outputs added (graphc/scan_grad.py)."""
    def total(x, acc0, scale):
        xt, acc, s = G.vector("xt", "float64"), G.vector("acc", "float64"), G.scalar("s", "float64")
        final, = loop(InnerGraph([xt, acc, s], [G.tanh(acc + xt * s)]), [x], [acc0], [scale])
        return final
    r = np.random.default_rng(0)
    assert G.testing.verify_grad(total, [r.standard_normal((5, 4)), r.standard_normal(4),
                                         np.array(0.7)], backend="py")


def _rnn_program():
    inputs, outputs = rnn("float64", G.dim("T"))
    # a temporary before and after the loop, so the plan has something to share with
    pre = inputs[2] * 2.0
    inputs2, (h_final, h_all) = inputs, loop(outputs[0].owner.op.body, [inputs[0]],
                                             [inputs[1]], [pre, inputs[3]])
    return program_of(inputs2, [G.tanh(h_final) + 1.0, h_all])


def test_loop_plan_liveness_and_regions():
    program = _rnn_program()
    (k,) = [i for i, kern in enumerate(program.kernels) if kern.kind == "loop"]
    kern = program.kernels[k]
    body = kern.params["body"]
    region, state_a, state_b = kern.scratch
    # the loop's inputs (read on every iteration) and its scratch live at the loop kernel
    for b in kern.inputs + kern.scratch:
        assert b.first <= k <= b.last
    for b in kern.scratch:
        assert b.role == "temp" and b.first == b.last == k
    # the body's temporaries live in the body's own region, which is exactly its workspace
    temps = [b for b in body.buffers if b.role == "temp" and b.first >= 0]
    assert temps and sympy.simplify(region.nbytes - body.workspace_bytes) == 0
    # double buffering: the two halves of a state are distinct and do not overlap
    assert state_a is not state_b and state_a.offset != state_b.offset
    assert check_plan(program)
    # the checker sees a plan that breaks the loop's rules
    state_b.offset = state_a.offset
    with pytest.raises(AssertionError, match="overlap"):
        check_plan(program)
    state_b.offset, body.workspace_bytes = None, body.workspace_bytes * 2
    with pytest.raises(AssertionError, match="body workspace"):
        check_plan(program)


def test_loop_kernel_params_hold_no_c_text_and_describe_shows_the_body():
    program = _rnn_program()
    kern = next(k for k in program.kernels if k.kind == "loop")
    assert kern.params["trip"] == sympy.Symbol("T", positive=True, integer=True) or \
        kern.params["trip"].name == "T"
    assert not _program_bad(program, program.dim_symbols, "rnn")
    kinds = {k.kind for k in kern.params["body"].kernels}
    assert {"gemm", "elemwise"} <= kinds
    text = program.describe()
    assert "for it in range(T)" in text and "\n        k0   gemm" in text
    # a loop inside a body param would be checked the same way
    assert _program_bad(program, [], "no dims")  # T and the batch are not dims there


def test_loop_op_is_rebuilt_by_its_props():
    inputs, outputs = cumsum("float64", 3)
    op = outputs[0].owner.op
    assert isinstance(op, Loop) and Loop(**{p: getattr(op, p) for p in op.__props__}) == op


def test_nested_loop_with_a_constant_in_the_body_on_c():
    """A loop in a loop's body, and a body constant that is not a scalar (it becomes a constant
    of the outer program): rows summed inside, plus an offset, carried outside."""
    dt = "float64"
    row, acc = G.vector("row", dt), G.vector("acc", dt)
    inner = InnerGraph([row, acc], [acc + row + G.constant(np.arange(4.0))])
    block, total = G.matrix("block", dt), G.vector("total", dt)
    (block_sum,) = loop(inner, [block], [total])
    outer = InnerGraph([block, total], [block_sum, block_sum])
    x, t0 = G.tensor("x", (G.dim("T"), 3, 4), dt), G.vector("t0", dt)
    outputs = loop(outer, [x], [t0])
    program = program_of([x, t0], outputs)
    kern = next(k for k in program.kernels if k.kind == "loop")
    assert [k.kind for k in kern.params["body"].kernels].count("loop") == 1
    assert program.dim_symbols[0] in kern.dims_used  # T, the trip count
    assert check_plan(program)
    f = G.function([x, t0], outputs, backend="c", name="nested_loop")
    xv, t0v = np.random.default_rng(3).standard_normal((5, 3, 4)), np.ones(4)
    steps = t0v + np.cumsum(xv.sum(axis=1) + 3 * np.arange(4.0), axis=0)
    final, history = f(xv, t0v)
    np.testing.assert_allclose(final, steps[-1], rtol=1e-12)
    np.testing.assert_allclose(history, steps, rtol=1e-12)


def test_loop_without_sequences_runs_n_steps():
    """h <- tanh(h @ U) n_steps times: no sequence, the trip count is the op's."""
    dt = "float64"
    h, u = G.matrix("h", dt), G.matrix("u", dt)
    body = InnerGraph([h, u], [G.tanh(G.dot(h, u))])
    h0, U = G.matrix("h0", dt), G.matrix("U", dt)
    (final,) = loop(body, [], [h0], [U], n_steps=3)
    rng = np.random.default_rng(4)
    h0v, Uv = rng.standard_normal((2, 3)), rng.standard_normal((3, 3))
    want = h0v
    for _ in range(3):
        want = np.tanh(want @ Uv)
    for backend in ("py", "c"):
        f = G.function([h0, U], final, backend=backend, name="loop_n_steps")
        np.testing.assert_allclose(f(h0v, Uv), want, rtol=1e-12)
    (never_bound,) = loop(body, [], [h0], [U], n_steps=G.dim("N"))
    with pytest.raises(G.GraphcError, match="trip count N .*no input's shape gives"):
        G.function([h0, U], never_bound, backend="c")


def test_loop_state_kept_in_a_shared_variable_across_calls():
    """A stateful recurrence: the state starts from a shared variable that the call updates with
    the final state (its old value read on every iteration 0, the new one written after)."""
    dt = "float64"
    acc = G.shared(np.zeros(4), name="acc")
    x = G.tensor("x", (G.dim("T"), 4), dt)
    xt, a = G.vector("xt", dt), G.vector("a", dt)
    total, running = loop(InnerGraph([xt, a], [a + xt, a + xt]), [x], [acc])
    f = G.function([x], running, updates={acc: total}, backend="c", name="loop_shared_state")
    xv = np.random.default_rng(5).standard_normal((3, 4))
    np.testing.assert_allclose(f(xv), np.cumsum(xv, axis=0), rtol=1e-12)
    np.testing.assert_allclose(f(xv), xv.sum(axis=0) + np.cumsum(xv, axis=0), rtol=1e-12)
    np.testing.assert_allclose(acc.get_value(), 2 * xv.sum(axis=0), rtol=1e-12)
