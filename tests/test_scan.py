"""G.scan's semantics (Theano's): a table of scans, each compared with a numpy loop on every
target (the C target runs each as one C loop), then the errors that name the scan and the
argument at fault."""
import numpy as np
import pytest

import graphc as G
from graphc.ir.ops.scan import Scan


def _rng(seed=0):
    return np.random.default_rng(seed)


def case_rnn():
    """sequence + recurrent output + explicit non-sequences, symbolic length."""
    X, h0 = G.tensor("X", (G.dim("T"), 2, 3), "float64"), G.dmatrix("h0")
    W, U = G.dmatrix("W"), G.dmatrix("U")
    hs, upd = G.scan(lambda x, h, w, u: G.tanh(G.dot(x, w) + G.dot(h, u)),
                     sequences=X, outputs_info=h0, non_sequences=[W, U])
    assert upd == {}

    def numpy(x, h, w, u):
        out = []
        for xt in x:
            h = np.tanh(xt @ w + h @ u)
            out.append(h)
        return [np.stack(out) if out else np.zeros((0,) + h.shape)]
    r = _rng(1)
    points = [[r.standard_normal((n, 2, 3)), r.standard_normal((2, 4)),
               r.standard_normal((3, 4)) * .5, r.standard_normal((4, 4)) * .5] for n in (5, 1, 0)]
    return [X, h0, W, U], [hs], numpy, points


def case_taps():
    """sequence taps [-1, 0, 2], recurrent taps [-2, -1] (x[0] is the value at tap -2)."""
    X, init = G.dvector("X"), G.dvector("init")

    def step(x_m1, x_0, x_2, y_m2, y_m1):
        return x_m1 + 2 * x_0 + 3 * x_2 + 0.5 * y_m2 - 0.25 * y_m1

    ys, _ = G.scan(step, sequences=dict(input=X, taps=[-1, 0, 2]),
                   outputs_info=dict(initial=init, taps=[-2, -1]))

    def numpy(x, init):
        y = list(init[:2])
        for t in range(len(x) - 3):
            i = t + 1  # tap 0 of step t
            y.append(x[i - 1] + 2 * x[i] + 3 * x[i + 2] + 0.5 * y[-2] - 0.25 * y[-1])
        return [np.array(y[2:])]
    r = _rng(2)
    return [X, init], [ys], numpy, [[r.standard_normal(9), r.standard_normal(3)]]


def case_several_outputs_and_none():
    """two recurrent outputs and one output that is not fed back; an implicit non-sequence."""
    X = G.tensor("X", (6, 3), "float64")
    s0, p0 = G.dvector("s0"), G.dvector("p0")
    scale = G.dvector("scale")

    def step(x, s, p):
        return [s + x * scale, p * x, (s * p).sum()]

    (ss, ps, dots), _ = G.scan(step, sequences=[X], outputs_info=[s0, p0, None])

    def numpy(x, s, p, scale):
        out = [[], [], []]
        for xt in x:
            s, p, d = s + xt * scale, p * xt, (s * p).sum()
            for o, v in zip(out, (s, p, d)):
                o.append(v)
        return [np.stack(o) for o in out]
    r = _rng(3)
    return [X, s0, p0, scale], [ss, ps, dots], numpy, [
        [r.standard_normal((6, 3)), r.standard_normal(3), r.standard_normal(3), r.standard_normal(3)]]


def case_go_backwards():
    X, a0 = G.dmatrix("X"), G.dvector("a0")
    acc, _ = G.scan(lambda x, a: a * 0.5 + x, sequences=X, outputs_info=a0, go_backwards=True)

    def numpy(x, a):
        out = []
        for xt in x[::-1]:
            a = a * 0.5 + xt
            out.append(a)
        return [np.stack(out)]
    r = _rng(4)
    return [X, a0], [acc], numpy, [[r.standard_normal((5, 2)), r.standard_normal(2)]]


def case_n_steps_without_sequences():
    """n_steps from an input's shape (x.shape[0]): powers of a matrix, symbolic count."""
    A, v0, marks = G.dmatrix("A"), G.dvector("v0"), G.dvector("marks")
    vs, _ = G.scan(lambda v, a: G.dot(a, v), outputs_info=v0, non_sequences=A,
                   n_steps=marks.shape[0])

    def numpy(a, v, marks):
        out = []
        for _ in range(len(marks)):
            v = a @ v
            out.append(v)
        return [np.stack(out) if out else np.zeros((0,) + v.shape)]
    r = _rng(5)
    return [A, v0, marks], [vs], numpy, [[r.standard_normal((3, 3)) * .5, r.standard_normal(3),
                                          np.zeros(n)] for n in (4, 0)]


def case_n_steps_shorter_than_sequence():
    X = G.tensor("X", (7,), "float64")
    c, _ = G.scan(lambda x, c: c + x, sequences=X, outputs_info=G.constant(np.zeros((), "float64")),
                  n_steps=4)
    return [X], [c], lambda x: [np.cumsum(x[:4])], [[_rng(6).standard_normal(7)]]


def case_updates_inside_the_step():
    """a shared counter the step updates: every step sees the count so far; scan returns the
    update, which the function applies."""
    counter = G.shared(np.int64(10), name="counter")
    X = G.dvector("X")

    def step(x):
        return x * G.cast(counter, "float64"), {counter: counter + 1}

    ys, upd = G.scan(step, sequences=X)
    assert list(upd) == [counter]
    return ([X], [ys], lambda x: [x * (10 + np.arange(len(x)))], [[_rng(7).standard_normal(4)]],
            upd, counter)


def case_nested():
    """a scan in the step of a scan: row-wise running sums of each matrix of a sequence."""
    X = G.tensor("X", (3, 4, 2), "float64")

    def outer(m, total):
        inner, _ = G.scan(lambda row, acc: acc + row, sequences=m, outputs_info=total)
        return inner[-1]

    ts, _ = G.scan(outer, sequences=X, outputs_info=G.constant(np.zeros(2)))
    return [X], [ts], lambda x: [np.cumsum(x.sum(axis=1), axis=0)], [
        [_rng(8).standard_normal((3, 4, 2))]]


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


@pytest.mark.parametrize("case", sorted(CASES))
def test_scan_table(case, target):
    built = CASES[case]()
    inputs, outputs, numpy, points = built[:4]
    updates, shared = (built[4], built[5]) if len(built) > 4 else ({}, None)
    f = G.function(inputs, outputs, updates=updates, backend=target)
    for point in points:
        if shared is not None:
            shared.set_value(np.int64(10))
        got = f(*point)
        for g, want in zip(got, numpy(*point)):
            assert g.shape == want.shape
            np.testing.assert_allclose(g, want, rtol=1e-10, atol=1e-12)
        if shared is not None:
            assert int(shared.get_value()) == 10 + len(point[0])


def test_scan_builds_one_scan_op_and_hoists_invariant_work():
    X, h0, W = G.tensor("X", (5, 3), "float64"), G.dvector("h0"), G.dmatrix("W")
    W2 = W * 2.0  # read by the step, computed outside it: stays outside the loop
    hs, _ = G.scan(lambda x, h: G.tanh(x + G.dot(h, W2)), sequences=X, outputs_info=h0,
                   name="cell")
    op = hs.owner.op
    assert isinstance(op, Scan) and op.name == "cell" and "cell" in str(op)
    assert hs.owner.inputs[-1] is W2  # an implicit non-sequence, passed whole
    assert all(not isinstance(n.op, type(W2.owner.op)) or n.op != W2.owner.op
               for n in op.body.nodes)


def test_scan_c_program_is_one_loop_kernel():
    from program_cases import program_of
    inputs, outputs, _, _ = case_rnn()
    program = program_of(inputs, outputs)
    loops = [k for k in program.kernels if k.kind == "loop"]
    assert len(loops) == 1 and "for it in range(T)" in program.describe()


def test_the_cell_is_optimized_like_any_graph():
    """The step's elementwise work is fused inside the loop body (the pass pipeline runs on
    inner graphs): an LSTM cell's gates and state update are a few fused kernels."""
    from program_cases import program_of
    h0, c0, U = (G.tensor(n, s, "float64") for n, s in (("h0", (4, 5)), ("c0", (4, 5)),
                                                          ("U", (5, 20))))

    def cell(z, h, c):
        z = z + G.dot(h, U)
        i, f, g, o = (z[:, k * 5:(k + 1) * 5] for k in range(4))
        c = G.sigmoid(f) * c + G.sigmoid(i) * G.tanh(g)
        return G.sigmoid(o) * G.tanh(c), c

    (hs, cs), _ = G.scan(cell, sequences=G.tensor("Z", (G.dim("T"), 4, 20), "float64"),
                         outputs_info=[h0, c0])
    program = program_of([h0, c0, U, hs.owner.inputs[0]], [hs])
    body = next(k for k in program.kernels if k.kind == "loop").params["body"]
    labels = [k.label for k in body.kernels if k.kind == "elemwise"]
    # the 9 elementwise ops of the cell (3 sigmoid, 2 tanh, 3 mul, 1 add) in at most 3 kernels
    assert 1 <= len(labels) <= 3 and sum(k.count(",") + 1 for k in labels) >= 8, labels


# --- errors -----------------------------------------------------------------------------------

def _err(match, **kw):
    return pytest.raises(G.GraphcError, match=match)


def test_sequences_of_different_lengths():
    with _err(r"scan 'pair': sequences\[1\] gives 4 steps but sequences\[0\] gives 5"):
        G.scan(lambda a, b: a + b, sequences=[G.tensor("a", (5,)), G.tensor("b", (4,))],
               name="pair")
    # symbolic lengths: the call checks them (the second sequence is never read past its end)
    a, b = G.tensor("a", (G.dim("Ta"),), "float64"), G.tensor("b", (G.dim("Tb"),), "float64")
    ys, _ = G.scan(lambda x2, x0, y: x2 + x0 + y, sequences=[dict(input=a, taps=[2, 0]), b],
                   name="pair")
    f = G.function([a, b], ys, backend="py")
    np.testing.assert_allclose(f(np.arange(5.0), np.ones(3)), [3, 5, 7])
    with pytest.raises(G.InputError, match="Scan{pair.*sequence 2 length.*= 3 but Tb = 4"):
        f(np.arange(5.0), np.ones(4))


def test_n_steps_errors():
    X = G.tensor("X", (5,), "float64")
    with _err(r"scan: n_steps = 6 but the sequences give only 5"):
        G.scan(lambda x: x, sequences=X, n_steps=6)
    with _err("n_steps = -1 is negative"):
        G.scan(lambda x: x, sequences=X, n_steps=-1)
    with _err(r"n_steps = n is float64\[\]; pass an integer scalar"):
        G.scan(lambda: G.constant(1.0), n_steps=G.dscalar("n"))
    with _err("with no sequences the number of steps is unknown; pass n_steps"):
        G.scan(lambda h: h, outputs_info=G.dvector("h0"))


def test_zero_steps_give_empty_outputs(target):
    X, h0 = G.tensor("X", (4, 2), "float64"), G.dvector("h0")
    hs, _ = G.scan(lambda x, h: h + x, sequences=X, outputs_info=h0, n_steps=0)
    assert hs.type.shape == (0, 2)
    (got,) = G.function([X, h0], [hs], backend=target)(np.ones((4, 2)), np.ones(2))
    assert got.shape == (0, 2)


def test_wrong_number_of_outputs():
    with _err(r"scan 'two': the step function returned 2 output\(s\) but outputs_info has 1 entry"):
        G.scan(lambda x, h: [h + x, h], sequences=G.dmatrix("X"), outputs_info=G.dvector("h"),
               name="two")


def test_recurrent_output_must_keep_shape_and_dtype():
    X, h0 = G.tensor("X", (5, 3), "float64"), G.dvector("h0")
    with _err(r"output 0 of the step is float64\[2\] but its initial value outputs_info\[0\] \(h0\) "
              r"gives steps of float64\[3\]"):
        G.scan(lambda x, h: (h + x)[:2], sequences=X, outputs_info=G.tensor("h0", (3,), "float64"))
    with _err(r"output 0 of the step is float32.*keeps the shape and dtype"):
        G.scan(lambda x, h: G.cast(h + x, "float32"), sequences=X, outputs_info=h0)


def test_bad_taps_and_initials():
    X = G.dvector("X")
    with _err(r"outputs_info\[0\] has taps \[-1, 0\]; the taps of a recurrent output must be negative"):
        G.scan(lambda x, a, b: a, sequences=X, outputs_info=dict(initial=X, taps=[0, -1]))
    with _err(r"needs 2 leading entries; i has 1"):
        G.scan(lambda x, a, b: a + b, sequences=X,
               outputs_info=dict(initial=G.tensor("i", (1,), "float64"), taps=[-2, -1]))
    with _err(r"sequences\[0\] = s is a scalar"):
        G.scan(lambda x: x, sequences=G.dscalar("s"))


def test_strict_wants_every_outer_variable_listed():
    X, W = G.dvector("X"), G.shared(np.float64(2.0), name="W")
    with _err("strict=True but the step reads W without it being a sequence or non-sequence"):
        G.scan(lambda x: x * W, sequences=X, strict=True)
    ys, _ = G.scan(lambda x, w: x * w, sequences=X, non_sequences=W, strict=True)
    np.testing.assert_allclose(G.function([X], ys, backend="py")(np.arange(3.0)), [0, 2, 4])


def test_input_projection_of_all_steps_is_one_product_before_the_loop():
    X, h0 = G.tensor("X", (G.dim("T"), 2, 3), "float64"), G.dmatrix("h0")
    W, U = G.dmatrix("W"), G.dmatrix("U")
    hs, _ = G.scan(lambda x, h: G.tanh(G.dot(x, W) + G.dot(h, U)), sequences=X, outputs_info=h0)
    from graphc.ir.graph import toposort
    from graphc.ir.ops.blas import Matmul
    body_products = [n for n in hs.owner.op.body.nodes if isinstance(n.op, Matmul)]
    assert len(body_products) == 1  # h @ U only
    outer = [n for n in toposort([hs]) if isinstance(n.op, Matmul)]
    assert len(outer) == 1 and outer[0].inputs[1] is W and outer[0].inputs[0].ndim == 2
    # W's gradient is one product after the loop too (over T*batch rows)
    gW = G.grad(hs.sum(), W)
    assert isinstance(gW.owner.op, Matmul) or any(
        isinstance(n.op, Matmul) and n.op.trans_a for n in toposort([gW]))


def test_per_step_values_nothing_reads_get_no_buffer():
    """A scan saves its products for the gradient; a function without the gradient plans no
    T-step buffer for them."""
    from program_cases import program_of
    X, h0 = G.tensor("X", (50, 2, 3), "float64"), G.dmatrix("h0")
    W, U = G.dmatrix("W"), G.dmatrix("U")
    hs, _ = G.scan(lambda x, h: G.tanh(G.dot(x, W) + G.dot(h, U)), sequences=X, outputs_info=h0)
    assert len(hs.owner.outputs) == 1 + 2  # final state, history, saved product
    last = program_of([X, h0, W, U], [hs[-1] * 1.0])
    every = program_of([X, h0, W, U], [hs * 1.0])
    (k_last,) = [k for k in last.kernels if k.kind == "loop"]
    (k_every,) = [k for k in every.kernels if k.kind == "loop"]
    # the product is never kept; hs[-1] reads the final state, so no history either
    assert len(k_last.outputs) == 1 and len(k_every.outputs) == 2
    f = G.function([X, h0, W, U], hs[-1], backend="c")
    r = np.random.default_rng(0)
    args = [r.standard_normal((50, 2, 3)), r.standard_normal((2, 4)),
            r.standard_normal((3, 4)), r.standard_normal((4, 4)) * 0.3]
    np.testing.assert_allclose(f(*args), G.function([X, h0, W, U], hs[-1], backend="py")(*args),
                               rtol=1e-12)


def test_a_sequence_read_only_through_the_projection_leaves_the_loop():
    X, h0, W = G.tensor("X", (5, 2, 3), "float64"), G.tensor("h0", (2, 4), "float64"), \
        G.tensor("W", (3, 4), "float64")
    hs, _ = G.scan(lambda x, h: G.tanh(G.dot(x, W) + h), sequences=X, outputs_info=h0)
    assert X not in hs.owner.inputs and hs.owner.op.n_seqs == 1  # X @ W only
    # and the backward loop emits no per-step gradient for it: X's comes from the product
    gX = G.grad(hs.sum(), X)
    from graphc.ir.graph import toposort
    from graphc.ir.ops.loop import Loop
    (back,) = [n for n in toposort([gX]) if isinstance(n.op, Loop) and n.op.reverse]
    assert back.op.body.outputs[-1].type.shape == (2, 4)  # the projection's gradient, per step
