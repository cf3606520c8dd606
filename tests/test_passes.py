"""One group of tests per optimization pass (canonicalize, stabilize, fuse_elemwise,
fuse_reductions) and for the memory plan made over the final kernel program.

Each test looks at what the pass left behind (f.fgraph.nodes, f.fgraph.fusion_notes, and the
kernels of f.program.program where lowering is the point) and checks the values against the
numpy reference (backend="py", opt_level="O0"), so a rewrite that changes the result fails as
well as one that stops firing. Most compile with `graph_level` (the passes, then each op's numpy
reference: no C compiler); the C backend is used where the kernels or the C numerics are checked.
"""
import re

import numpy as np
import pytest
import sympy

import graphc as G
from graphc.codegen.memplan import check_plan
from graphc.ir.graph import Constant

F64_TOL = dict(rtol=1e-12, atol=1e-12)


# --- helpers ------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def no_artifact_hits(monkeypatch):
    """Compile every graph through the passes: a warm artifact-cache hit gives a Function whose
    fgraph has no nodes or fusion notes to look at (the gcc library cache still applies)."""
    from graphc.targets.c import artifacts
    monkeypatch.setattr(artifacts, "load", lambda key: None)


def graph_level(inputs, outputs, opt_level="O3", updates=None):
    """The optimized graph (f.fgraph), run by the numpy reference of each op: no C compiler."""
    return G.function(inputs, outputs, updates=updates, backend="py", opt_level=opt_level)


def ref(inputs, outputs, *values):
    """The oracle: every op's numpy reference, no rewrites."""
    return G.function(inputs, outputs, backend="py", opt_level="O0")(*values)


def op_names(f):
    """The ops left in the optimized graph: elementwise ops by name, the others by class."""
    return [getattr(n.op, "name", type(n.op).__name__) for n in f.fgraph.nodes]


def primitives(f):
    """Every primitive op name in the optimized graph, fused ones spelled out."""
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", " ".join(op_names(f)))) - {"fused"}


def kernels(f):
    return f.program.program.kernels


def dead_kernels(program):
    """Kernels none of whose outputs is read by a later kernel, returned to the caller or an
    updated shared variable: work thrown away."""
    live_ends = set(map(id, program.output_buffers)) | \
        {id(b) for b in program.in_place_updates.values()}
    dead = []
    for k, kern in enumerate(program.kernels):
        read_later = {id(b) for later in program.kernels[k + 1:] for b in later.inputs}
        if not any(id(b) in live_ends or id(b) in read_later for b in kern.outputs):
            dead.append(f"k{k} {kern.kind} {kern.label}")
    return dead


def at(expr, **values):
    """A symbolic size (sympy) evaluated with dims given by name."""
    expr = sympy.sympify(expr)
    return int(expr.subs({s: values[s.name] for s in expr.free_symbols}))


# === canonicalize ===========================================================================

@pytest.mark.parametrize("level", ["O1", "O3"])
def test_constant_folding_elemwise_reduce_concat(level):
    c = G.constant(np.arange(12.0).reshape(3, 4))
    d = G.constant(np.linspace(-1, 1, 4))
    out = G.concatenate([(G.exp(c) * 2.0 + 1.0).sum(axis=0), G.tanh(d) - d * d], axis=0) * 0.5
    expected = 0.5 * np.concatenate([(np.exp(np.arange(12.0).reshape(3, 4)) * 2 + 1).sum(0),
                                     np.tanh(np.linspace(-1, 1, 4)) - np.linspace(-1, 1, 4) ** 2])
    f0 = graph_level([], out, opt_level="O0")
    assert len(f0.fgraph.nodes) >= 6
    f = graph_level([], out, opt_level=level)
    assert f.fgraph.nodes == [], op_names(f)
    assert isinstance(f.fgraph.outputs[0], Constant)
    np.testing.assert_allclose(f(), expected, **F64_TOL)
    np.testing.assert_allclose(f0(), expected, **F64_TOL)


def test_constant_subgraph_next_to_an_input_folds_to_one_constant():
    x = G.matrix("x", "float64", shape=(3, 4))
    c = G.constant(np.arange(12.0).reshape(3, 4))
    out = x + (G.exp(c) * 2.0 + G.constant(1.0)).sum(axis=0)
    f = graph_level([x], out, opt_level="O1")
    assert op_names(f) == ["add"]
    (node,) = f.fgraph.nodes
    assert node.inputs[0] is x and isinstance(node.inputs[1], Constant)
    assert node.inputs[1].data.shape == (4,)
    xv = np.random.RandomState(0).randn(3, 4)
    np.testing.assert_allclose(f(xv), ref([x], out, xv), **F64_TOL)


def test_transpose_of_a_constant_folds():
    c = G.constant(np.arange(6.0).reshape(2, 3))
    f = graph_level([], c.T + 1.0, opt_level="O1")
    assert f.fgraph.nodes == [], op_names(f)
    np.testing.assert_array_equal(f(), np.arange(6.0).reshape(2, 3).T + 1)


_SHAPE_OP_CONSTANTS = {
    "reshape": (lambda c: c.reshape((2, 3)) * 2.0, lambda a: a.reshape(2, 3) * 2),
    "slice": (lambda c: c[1:4] * 2.0, lambda a: a[1:4] * 2),
    "dimshuffle": (lambda c: c.dimshuffle("x", 0) + 1.0, lambda a: a[None, :] + 1),
    "dot_of_reshapes": (lambda c: G.dot(c.reshape((2, 3)), c.reshape((3, 2))),
                        lambda a: a.reshape(2, 3) @ a.reshape(3, 2)),
}


@pytest.mark.parametrize("case", sorted(_SHAPE_OP_CONSTANTS))
def test_constant_folding_through_static_shape_ops(case):
    build, numpy_fn = _SHAPE_OP_CONSTANTS[case]
    f = graph_level([], build(G.constant(np.arange(6.0))), opt_level="O1")
    np.testing.assert_allclose(f(), numpy_fn(np.arange(6.0)), **F64_TOL)  # right either way
    assert f.fgraph.nodes == [], op_names(f)


def test_constant_folding_through_static_shape_ops_keeps_values():
    """The values are right whether or not the fold happens (the xfail above is about work)."""
    for case, (build, numpy_fn) in sorted(_SHAPE_OP_CONSTANTS.items()):
        for level in ("O1", "O3"):
            f = graph_level([], build(G.constant(np.arange(6.0))), opt_level=level)
            np.testing.assert_allclose(f(), numpy_fn(np.arange(6.0)), **F64_TOL, err_msg=case)


def test_multiply_by_one_and_add_zero_are_removed(dtype):
    x = G.matrix("x", dtype, shape=(3, 4))
    out = ((1.0 * (x * 1.0 + 0.0) - 0.0) / 1.0) ** 1
    out = 0.0 + out
    f0 = graph_level([x], out, opt_level="O0")
    assert len(f0.fgraph.nodes) >= 5
    f = G.function([x], out, opt_level="O1")  # C: the result must be a copy, not x itself
    assert f.fgraph.nodes == [] and f.fgraph.outputs[0] is x, op_names(f)
    xv = np.random.RandomState(1).randn(3, 4).astype(dtype)
    got = f(xv)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, xv)
    assert not np.shares_memory(got, xv)


def test_neutral_elements_inside_a_graph():
    x = G.vector("x", "float64")
    out = G.exp(x * 1.0) + 0.0
    f = graph_level([x], out, opt_level="O1")
    assert op_names(f) == ["exp"]
    assert f.fgraph.nodes[0].inputs == [x]


def test_neutral_element_that_broadcasts_is_kept():
    """x * ones and x + zeros change the shape when they broadcast: not an identity."""
    x = G.matrix("x", "float64", shape=(3, 1))
    outs = [x * G.constant(np.ones((1, 4))), G.constant(np.zeros((2, 3, 1))) + x]
    f = graph_level([x], outs, opt_level="O1")
    xv = np.arange(3.0).reshape(3, 1)
    a, b = f(xv)
    assert a.shape == (3, 4) and b.shape == (2, 3, 1)
    np.testing.assert_array_equal(a, np.broadcast_to(xv, (3, 4)))
    np.testing.assert_array_equal(b, np.broadcast_to(xv, (2, 3, 1)))


def test_transpose_of_transpose_is_removed():
    x = G.matrix("x", "float64", shape=(3, 4))
    f = graph_level([x], x.T.T * 2.0, opt_level="O1")
    assert op_names(f) == ["mul"]
    assert "Transpose" not in " ".join(op_names(f))
    xv = np.random.RandomState(2).randn(3, 4)
    np.testing.assert_array_equal(f(xv), xv * 2)


def test_transposes_compose_into_one():
    x = G.tensor("x", (2, 3, 4), "float64")
    xv = np.random.RandomState(3).randn(2, 3, 4)
    two = x.transpose(1, 2, 0).transpose(1, 2, 0)
    f = graph_level([x], two, opt_level="O1")
    assert op_names(f) == ["Transpose"] and f.fgraph.nodes[0].op.perm == (2, 0, 1)
    np.testing.assert_array_equal(f(xv), xv.transpose(1, 2, 0).transpose(1, 2, 0))
    three = two.transpose(1, 2, 0)  # a full cycle: nothing left
    f = graph_level([x], three, opt_level="O1")
    assert f.fgraph.nodes == [] and f.fgraph.outputs[0] is x
    np.testing.assert_array_equal(f(xv), xv)


def test_reshape_chain_collapses():
    x = G.tensor("x", (2, 3, 4), "float64")
    xv = np.random.RandomState(4).randn(2, 3, 4)
    out = x.reshape((6, 4)).reshape((24,)).reshape((4, 6))
    assert len(graph_level([x], out, opt_level="O0").fgraph.nodes) == 3
    f = graph_level([x], out, opt_level="O1")
    assert op_names(f) == ["Reshape"] and f.fgraph.nodes[0].inputs == [x]
    np.testing.assert_array_equal(f(xv), xv.reshape(4, 6))
    # Back to the shape it started from: no reshape at all.
    f = graph_level([x], x.reshape((6, 4)).reshape((24,)).reshape((2, 3, 4)) * 3.0, opt_level="O1")
    assert op_names(f) == ["mul"] and f.fgraph.nodes[0].inputs[0] is x
    np.testing.assert_array_equal(f(xv), xv * 3)


def test_common_subexpressions_are_merged():
    x = G.matrix("x", "float64", shape=(5, 6))
    out = G.exp(x * 2.0) + G.exp(x * 2.0)  # two separate builds of the same expression
    f0 = graph_level([x], out, opt_level="O0")
    f1 = graph_level([x], out, opt_level="O1")
    assert len(f0.fgraph.nodes) == 5
    assert sorted(op_names(f1)) == ["add", "exp", "mul"]
    xv = np.random.RandomState(5).randn(5, 6)
    np.testing.assert_allclose(f1(xv), 2 * np.exp(2 * xv), **F64_TOL)


def test_common_subexpressions_are_merged_across_outputs():
    x = G.vector("x", "float64")
    outs = [G.tanh(x) + 1.0, G.tanh(x) * 2.0, G.tanh(x)]
    f = graph_level([x], outs, opt_level="O1")
    assert op_names(f).count("tanh") == 1
    xv = np.linspace(-2, 2, 7)
    for got, want in zip(f(xv), [np.tanh(xv) + 1, np.tanh(xv) * 2, np.tanh(xv)]):
        np.testing.assert_allclose(got, want, **F64_TOL)


def test_unused_values_are_not_computed():
    x = G.vector("x", "float64")
    y = G.tanh(x)
    _unused = G.exp(y) * 3.0  # built but never asked for
    f = G.function([x], y * 1.0, opt_level="O1")
    assert op_names(f) == ["tanh"] and len(kernels(f)) == 1
    assert dead_kernels(f.program.program) == []


def test_x_minus_x_is_computed_at_O3():
    """exp(x) - exp(x) is nan where exp overflows: no rewrite to 0 (issue 10, item 4)."""
    x = G.matrix("x", "float64", shape=(3, 4))
    out = G.exp(x) - G.exp(x) + x
    f = G.function([x], out, opt_level="O3")
    assert len(kernels(f)) == 1
    xv = np.random.RandomState(6).randn(3, 4)
    xv[0, 0] = 1000.0
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(f(xv), np.exp(xv) - np.exp(xv) + xv)


_DEAD_AT_O1 = {
    # (x - x is no longer rewritten to second(x, 0): it is nan at inf and nan.)
    # d(sum(x * w))/dw = x: the grad rule reads the forward value mul(x, w) only for its shape.
    "grad_of_sum_x_w": lambda x, w: G.grad((x * w).sum(), w),
}


@pytest.mark.xfail(strict=True, reason="core: at O1 a value read only for its shape (second(v, c), "
                   "the forward output argument of an elementwise gradient) is still computed; "
                   "lowering drops the read but keeps the producer kernel. Only fuse_elemwise "
                   "(O2+) prunes such inputs")
@pytest.mark.parametrize("case", sorted(_DEAD_AT_O1))
def test_no_dead_kernels_at_O1(case):
    x = G.matrix("x", "float64", shape=(3, 4))
    w = G.matrix("w", "float64", shape=(3, 4))
    out = _DEAD_AT_O1[case](x, w)
    f = G.function([x, w], out, opt_level="O1")
    xv = np.random.RandomState(8).randn(3, 4)
    np.testing.assert_allclose(f(xv, xv), ref([x, w], out, xv, xv), **F64_TOL)
    assert dead_kernels(f.program.program) == []


# === stabilize ==============================================================================
# Each input makes the form as written overflow to inf/nan (the py reference at O0 shows it);
# the default compile must be finite and match a float64 numpy formula that is stable.

def _stable_tol(dtype):
    return dict(rtol=2e-6, atol=1e-30) if dtype == "float32" else dict(rtol=1e-12, atol=1e-300)


def _log_softmax64(x):
    x = x.astype("float64")
    s = x - x.max(axis=-1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


def test_log_softmax_of_large_logits(dtype):
    x = G.matrix("x", dtype)
    xv = np.array([[1000.0, -1000.0, 0.0, 3.0],
                   [100.0, -100.0, 3.0, 0.0],
                   [-500.0, 700.0, 690.0, 0.5],
                   [0.5, 1.0, 2.0, -1.0]], dtype)
    out = G.log(G.softmax(x))
    naive = ref([x], out, xv)
    assert not np.isfinite(naive).all()
    f = G.function([x], out)
    assert "LogSoftmax" in op_names(f) and "Softmax" not in op_names(f)
    got = f(xv)
    assert got.dtype == np.dtype(dtype) and np.isfinite(got).all()
    # Absolute error within a few ulps of the largest logit (see the xfail below for better).
    atol = 4 * np.finfo(dtype).eps * np.abs(xv).max()
    np.testing.assert_allclose(got, _log_softmax64(xv), rtol=_stable_tol(dtype)["rtol"], atol=atol)


@pytest.mark.parametrize("which", ["log_softmax", "xent"])
def test_log_softmax_of_the_max_logit_is_precise(which):
    z = np.array([[700.0, 690.0, -500.0], [-1000.0, 990.0, 1000.0]], "float32")
    want = _log_softmax64(z)[[0, 1], [0, 2]]  # -4.54e-5 each: both rows pick their largest
    x = G.matrix("x", "float32")
    if which == "log_softmax":
        out = G.log_softmax(x)[G.arange(2), G.constant(np.array([0, 2]))]
        sign = 1.0
    else:
        out = G.categorical_crossentropy(G.softmax(x), G.constant(np.array([0, 2])))
        sign = -1.0
    np.testing.assert_allclose(ref([x], out, z) * sign, want, rtol=1e-3)  # the oracle is precise
    np.testing.assert_allclose(G.function([x], out)(z) * sign, want, rtol=1e-3)


def test_log_of_one_plus_tiny_x_is_log1p(dtype):
    x = G.vector("x", dtype)
    xv = np.array([1e-10, -1e-10, 1e-12, 3e-8, 1e-3, 0.5], dtype)
    out = G.log(1 + x)
    want = np.log1p(xv.astype("float64"))
    naive = ref([x], out, xv)
    f = graph_level([x], out)
    assert op_names(f) == ["log1p"]
    got = f(xv)
    if dtype == "float32":
        assert naive[0] == 0.0  # 1 + 1e-10 rounds to 1
        np.testing.assert_allclose(got, want, rtol=1e-6)
    else:
        assert abs(naive[0] / want[0] - 1) > 1e-9  # ~8e-8 relative error as written
        np.testing.assert_allclose(got, want, rtol=1e-14)


def test_log_sigmoid_and_log_one_minus_sigmoid(dtype):
    x = G.vector("x", dtype)
    xv = np.array([-1000.0, -100.0, -30.0, 0.0, 30.0, 100.0, 1000.0], dtype)
    x64 = xv.astype("float64")
    cases = [(G.log(G.sigmoid(x)), -np.logaddexp(0.0, -x64)),       # log sigmoid(x)
             (G.log(1 - G.sigmoid(x)), -np.logaddexp(0.0, x64))]     # log(1 - sigmoid(x))
    for out, want in cases:
        assert not np.isfinite(ref([x], out, xv)).all()
        f = graph_level([x], out)
        assert "log" not in primitives(f) and "softplus" in primitives(f), op_names(f)
        got = f(xv)
        assert np.isfinite(got).all(), got
        np.testing.assert_allclose(got, want, **_stable_tol(dtype))


def _sigmoid64(x):
    x = x.astype("float64")
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def test_one_over_one_plus_exp_is_sigmoid(dtype):
    x = G.vector("x", dtype)
    xv = np.array([-1000.0, -100.0, -10.0, 0.0, 10.0, 100.0, 1000.0], dtype)
    out = 1 / (1 + G.exp(-x))
    f = graph_level([x], out)
    assert op_names(f) == ["sigmoid"]
    # Values: exact where representable (float32 may flush exp(-100) to 0, hence atol).
    np.testing.assert_allclose(f(xv), _sigmoid64(xv), rtol=2e-6 if dtype == "float32" else 1e-15,
                               atol=1e-37 if dtype == "float32" else 1e-300)
    # log of it: -inf as written, exactly -softplus(-x) once rewritten.
    lg = G.log(out)
    assert not np.isfinite(ref([x], lg, xv)).all()
    got = graph_level([x], lg)(xv)
    np.testing.assert_allclose(got, -np.logaddexp(0.0, -xv.astype("float64")), **_stable_tol(dtype))
    # Gradient: exp(-x) / (1 + exp(-x))**2 as written is inf/inf = nan at x = -1000.
    naive_grad = G.exp(-x) / (1 + G.exp(-x)) ** 2
    assert np.isnan(ref([x], naive_grad, xv)).any()
    g = graph_level([x], G.grad(out.sum(), x))(xv)
    s = _sigmoid64(xv)
    assert np.isfinite(g).all(), g
    # Absolute accuracy: the gradient is s * (1 - s), rounded near s = 1 (see the xfail below).
    np.testing.assert_allclose(g, s * (1 - s), rtol=_stable_tol(dtype)["rtol"],
                               atol=2 * np.finfo(dtype).eps)


def test_sigmoid_gradient_is_relatively_precise_for_large_x(dtype):
    x = G.vector("x", dtype)
    xv = np.array([-30.0, -15.0, 15.0, 30.0] if dtype == "float32" else [-40.0, -30.0, 30.0, 40.0],
                  dtype)
    g = G.function([x], G.grad(G.sigmoid(x).sum(), x))(xv)
    s = _sigmoid64(xv)
    np.testing.assert_allclose(g, s * _sigmoid64(-xv), rtol=1e-4)


def _xent_inputs(dtype):
    z = np.array([[1000.0, -1000.0, 0.0, 500.0],
                  [-800.0, 0.0, 800.0, 0.0],
                  [1.0, 2.0, 3.0, 4.0],
                  [90.0, -90.0, 89.0, 0.0]], dtype)
    y = np.array([1, 2, 0, 3], "int64")
    ls = _log_softmax64(z)
    loss = -ls[np.arange(4), y].mean()
    grad = (np.exp(ls) - np.eye(4)[y]) / 4
    return z, y, loss, grad


@pytest.mark.parametrize("target", ["labels", "onehot"])
def test_categorical_crossentropy_of_softmax_large_logits(dtype, target):
    zv, yv, want_loss, want_grad = _xent_inputs(dtype)
    z = G.matrix("z", dtype)
    if target == "labels":
        t, tv = G.vector("y", "int64"), yv
    else:
        t, tv = G.matrix("t", dtype), np.eye(4, dtype=dtype)[yv]
    loss = G.categorical_crossentropy(G.softmax(z), t).mean()
    gz = G.grad(loss, z)
    naive = ref([z, t], loss, zv, tv)
    assert not np.isfinite(naive)
    # C for the labels (the stable kernel's numbers), the graph level for the one-hot targets.
    f = G.function([z, t], [loss, gz], backend="c" if target == "labels" else "py")
    names = op_names(f)
    assert "Softmax" not in names and "log" not in names, names
    got_loss, got_grad = f(zv, tv)
    assert np.isfinite(got_loss) and np.isfinite(got_grad).all()
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got_loss, want_loss, **tol)
    np.testing.assert_allclose(got_grad, want_grad, **tol)  # (softmax - onehot) / N
    np.testing.assert_allclose(got_grad.sum(axis=1), 0, atol=tol["atol"] * 10)


def test_stabilized_gradient_at_O0_and_O1_too(dtype):
    """grad differentiates the stabilized cost, so the gradient is finite at every level."""
    zv, yv, _, want_grad = _xent_inputs(dtype)
    z, y = G.matrix("z", dtype), G.vector("y", "int64")
    gz = G.grad(G.categorical_crossentropy(G.softmax(z), y).mean(), z)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-15)
    for level in ("O0", "O1"):
        np.testing.assert_allclose(graph_level([z, y], gz, opt_level=level)(zv, yv), want_grad, **tol)


# === fuse_elemwise ==========================================================================

def _fusable(dtype):
    x = G.matrix("x", dtype)
    a, b = G.scalar("a", dtype), G.scalar("b", dtype)
    return [x, a, b], G.tanh(x * a + b) * G.sigmoid(x) + G.exp(-x * x)


def test_elementwise_expression_is_one_kernel_at_O3(dtype):
    ins, out = _fusable(dtype)
    f0 = graph_level(ins, out, opt_level="O0")
    f3 = graph_level(ins, out, opt_level="O3")
    assert [type(n.op).__name__ for n in f3.fgraph.nodes] == ["FusedElemwise"]
    assert len(f0.fgraph.nodes) >= 5
    rng = np.random.RandomState(9)
    vals = [rng.randn(7, 33).astype(dtype), np.asarray(0.7, dtype), np.asarray(-0.3, dtype)]
    tol = 2e-5 if dtype == "float32" else 1e-12
    want = ref(ins, out, *vals)
    np.testing.assert_allclose(f3(*vals), want, rtol=tol, atol=tol)
    np.testing.assert_allclose(f0(*vals), want, rtol=tol, atol=tol)


def test_expensive_producer_of_two_siblings_is_computed_once_in_their_shared_loop():
    x, y = G.vector("x", "float64"), G.vector("y", "float64")
    e = G.exp(x * y)
    outs = [e * y + 1.0, e - y]
    f = G.function([x, y], outs, opt_level="O3")
    labels = [k.label for k in kernels(f)]
    assert len(labels) == 1 and labels[0].startswith("siblings("), labels
    assert "exp" in labels[0], labels
    kernel_source = f.program.source.split("/* k0:")[1]
    assert kernel_source.count("exp(") == 1  # once per element, for both outputs
    xv, yv = np.linspace(-1, 1, 9), np.linspace(2, -2, 9)
    for got, want in zip(f(xv, yv), ref([x, y], outs, xv, yv)):
        np.testing.assert_allclose(got, want, **F64_TOL)


def test_expensive_producer_with_readers_of_different_shapes_is_kept():
    x, y = G.vector("x", "float64"), G.vector("y", "float64")
    z = G.matrix("z", "float64")
    e = G.exp(x * y)
    outs = [e * y + 1.0, e.dimshuffle(0, "x") * z]
    f = graph_level([x, y, z], outs, opt_level="O3")
    labels = [str(n.op) for n in f.fgraph.nodes if type(n.op).__name__ != "Reshape"]  # (a view)
    assert len(labels) == 3, labels
    assert sum("exp" in lb for lb in labels) == 1, labels  # computed once, not per consumer
    assert any(n.startswith("not fusing fused(mul,exp)") for n in f.fgraph.fusion_notes), \
        f.fgraph.fusion_notes
    xv, yv = np.linspace(-1, 1, 9), np.linspace(2, -2, 9)
    zv = np.arange(27.0).reshape(9, 3) / 10
    for got, want in zip(f(xv, yv, zv), ref([x, y, z], outs, xv, yv, zv)):
        np.testing.assert_allclose(got, want, **F64_TOL)


def test_two_consumers_of_a_cheap_producer_share_one_loop():
    x, y = G.vector("x", "float64"), G.vector("y", "float64")
    p = x * y + 2.0
    outs = [p * y, p - x]
    f = graph_level([x, y], outs, opt_level="O3")
    assert [type(n.op).__name__ for n in f.fgraph.nodes] == ["MultiElemwise"], op_names(f)
    xv, yv = np.linspace(-1, 1, 9), np.linspace(2, -2, 9)
    for got, want in zip(f(xv, yv), ref([x, y], outs, xv, yv)):
        np.testing.assert_allclose(got, want, **F64_TOL)


def test_siblings_where_one_reads_the_other_stay_apart(dtype):
    x = G.vector("x", dtype)
    a = G.exp(x)  # an output, so it stays a kernel of its own
    b = a * x + x  # reads x (like a) and a: merging them would be a cycle
    f = graph_level([x], [a, b], opt_level="O3")
    assert len(f.fgraph.nodes) == 2, op_names(f)
    xv = np.linspace(-2, 2, 11).astype(dtype)
    for got, want in zip(f(xv), ref([x], [a, b], xv)):
        np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == "float32" else 1e-12)


def test_sibling_outputs_may_overwrite_dying_inputs_and_stay_correct(dtype):
    x, y = G.matrix("x", dtype), G.matrix("y", dtype)
    t = G.tanh(G.dot(x, y))  # a temporary read by two siblings, dead after them
    u, v = t * 2.0 - 1.0, t * t
    outs = [G.dot(u, v.T)]
    f = G.function([x, y], outs, opt_level="O3")
    assert any(k.label.startswith("siblings(") for k in kernels(f)), [k.label for k in kernels(f)]
    rng = np.random.RandomState(3)
    xv, yv = rng.randn(5, 4).astype(dtype), rng.randn(4, 5).astype(dtype)
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(f(xv, yv)[0], ref([x, y], outs, xv, yv)[0], rtol=tol, atol=tol)


def test_producer_that_is_an_output_is_not_fused_away():
    x = G.vector("x", "float64")
    t = G.tanh(x)
    f = graph_level([x], [t, t * 2.0 + 1.0], opt_level="O3")
    assert len(f.fgraph.nodes) == 2
    assert any("function output" in n for n in f.fgraph.fusion_notes), f.fgraph.fusion_notes
    xv = np.linspace(-2, 2, 5)
    a, b = f(xv)
    np.testing.assert_allclose(a, np.tanh(xv), **F64_TOL)
    np.testing.assert_allclose(b, np.tanh(xv) * 2 + 1, **F64_TOL)


# --- the MLP train step: 784-512-512-10 ReLU, softmax cross-entropy, SGD ---------------------

MLP_SIZES = (784, 512, 512, 10)
BATCH = 128


def build_mlp_step(dtype="float32", seed=0, lr=0.1):
    rng = np.random.RandomState(seed)
    params = []
    for k, (n_in, n_out) in enumerate(zip(MLP_SIZES[:-1], MLP_SIZES[1:])):
        params.append(G.shared((rng.randn(n_in, n_out) * np.sqrt(2.0 / n_in)).astype(dtype), f"W{k}"))
        params.append(G.shared((rng.randn(n_out) * 0.1).astype(dtype), f"b{k}"))
    batch = G.dim("batch")
    x = G.tensor("x", (batch, MLP_SIZES[0]), dtype)
    y = G.tensor("y", (batch,), "int64")
    h = x
    for k in range(3):
        h = G.dot(h, params[2 * k]) + params[2 * k + 1]
        if k < 2:
            h = G.relu(h)
    loss = G.categorical_crossentropy(G.softmax(h), y).mean()
    grads = G.grad(loss, params)
    updates = {p: p - lr * g for p, g in zip(params, grads)}
    return [x, y], loss, updates, params


def mlp_batch(dtype="float32", seed=1):
    rng = np.random.RandomState(seed)
    return rng.rand(BATCH, MLP_SIZES[0]).astype(dtype), rng.randint(0, 10, BATCH).astype("int64")


@pytest.fixture(scope="module")
def mlp_steps():
    """Compiled MLP train steps by optimization level (each with its own parameters)."""
    steps = {}
    for level in ("O1", "O3"):
        ins, loss, updates, params = build_mlp_step()
        steps[level] = (G.function(ins, loss, updates=updates, opt_level=level), params)
    return steps


def test_mlp_train_step_has_fewer_kernels_at_O3(mlp_steps):
    n1 = len(kernels(mlp_steps["O1"][0]))
    n3 = len(kernels(mlp_steps["O3"][0]))
    print(f"MLP train step kernels: O1 {n1}, O3 {n3}")
    assert n3 < n1


def test_mlp_train_step_same_result_at_O1_O3_and_reference(mlp_steps):
    xv, yv = mlp_batch()
    ins, loss, updates, params_ref = build_mlp_step()
    want_loss = G.function(ins, loss, updates=updates, backend="py", opt_level="O0")(xv, yv)
    for level, (f, params) in mlp_steps.items():
        before = [p.get_value() for p in params]
        got_loss = f(xv, yv)
        np.testing.assert_allclose(got_loss, want_loss, rtol=1e-5, err_msg=level)
        for p, p_ref, b in zip(params, params_ref, before):
            np.testing.assert_allclose(p.get_value(), p_ref.get_value(), rtol=1e-4, atol=1e-5,
                                       err_msg=f"{level} {p.name}")
            assert not np.array_equal(p.get_value(), b), f"{level}: {p.name} was not updated"
            p.set_value(b)  # leave the fixture as it was


# === fuse_reductions ========================================================================

def test_sum_of_squared_difference_is_one_reduce_kernel(dtype):
    x, y = G.matrix("x", dtype), G.matrix("y", dtype)
    out = ((x - y) ** 2).sum()
    f3 = graph_level([x, y], out, opt_level="O3")
    assert [type(n.op).__name__ for n in f3.fgraph.nodes] == ["FusedReduce"]
    assert len(graph_level([x, y], out, opt_level="O1").fgraph.nodes) == 3
    rng = np.random.RandomState(10)
    xv, yv = rng.randn(37, 53).astype(dtype), rng.randn(37, 53).astype(dtype)
    want = ((xv.astype("float64") - yv) ** 2).sum()
    np.testing.assert_allclose(f3(xv, yv), want, rtol=2e-5 if dtype == "float32" else 1e-12)


def test_row_sums_of_squared_difference_is_one_reduce_kernel():
    x, y = G.matrix("x", "float64"), G.matrix("y", "float64")
    out = ((x - y) ** 2).sum(axis=1)
    f = G.function([x, y], out, opt_level="O3")  # C: the fused reduction's kernel
    assert [k.kind for k in kernels(f)] == ["reduce"]
    rng = np.random.RandomState(11)
    xv, yv = rng.randn(6, 5), rng.randn(6, 5)
    np.testing.assert_allclose(f(xv, yv), ((xv - yv) ** 2).sum(1), **F64_TOL)


def test_reduction_input_with_another_reader_is_not_fused():
    x, y = G.matrix("x", "float64"), G.matrix("y", "float64")
    sq = (x - y) ** 2
    outs = [sq.sum(), sq * 3.0]
    f = graph_level([x, y], outs, opt_level="O3")
    assert any("other readers" in n for n in f.fgraph.fusion_notes), f.fgraph.fusion_notes
    rng = np.random.RandomState(12)
    xv, yv = rng.randn(4, 5), rng.randn(4, 5)
    for got, want in zip(f(xv, yv), ref([x, y], outs, xv, yv)):
        np.testing.assert_allclose(got, want, **F64_TOL)


# === memory plan ============================================================================

def test_mlp_plan_is_valid_and_saves_memory(mlp_steps):
    for level, (f, _) in mlp_steps.items():
        program = f.program.program
        assert check_plan(program)
        ws, naive = at(program.workspace_bytes, batch=BATCH), at(program.naive_bytes, batch=BATCH)
        graph = at(program.graph_naive_bytes, batch=BATCH)
        print(f"{level}: workspace {ws} B, naive {naive} B ({ws / naive:.2f}), "
              f"graph as written {graph} B ({ws / graph:.2f})")
        assert 0 < ws < naive <= graph


def test_mlp_workspace_at_most_half_of_naive(mlp_steps):
    """Naive: every intermediate of the graph as written, each in its own buffer (what an
    unoptimized executor holds). Against the already-fused program with no sharing the plan is
    ~0.71 (the 784x512 weight gradient is a temp while the activations live): see the note."""
    program = mlp_steps["O3"][0].program.program
    ws, naive = at(program.workspace_bytes, batch=BATCH), at(program.graph_naive_bytes, batch=BATCH)
    print(f"O3 workspace {ws} B vs naive {naive} B")
    assert ws <= 0.5 * naive


def test_mlp_updates_are_written_in_place(mlp_steps):
    f, params = mlp_steps["O3"]
    program = f.program.program
    assert program.in_place_updates
    in_place = set(map(id, program.in_place_updates.values()))
    assert {b.name for b in program.in_place_updates.values()} == {p.name for p in params}
    for buf in program.in_place_updates.values():
        (writer,) = [k for k in program.kernels if buf in k.outputs]
        # Biases: an elementwise kernel overwrites them; weights: the gemm accumulates into them.
        assert writer.in_place and (
            (writer.kind == "elemwise" and buf in writer.inputs) or
            (writer.kind == "gemm" and writer.params.get("beta") == 1.0))
    assert all(id(b) in in_place or b.role != "shared" for k in program.kernels for b in k.outputs)


@pytest.mark.parametrize("level", ["O0", "O1", "O3"])
def test_swap_updates_read_old_values(level):
    a = G.shared(np.arange(4.0), name="a")
    b = G.shared(np.arange(4.0) + 10, name="b")
    f = G.function([], [], updates={a: b, b: a}, opt_level=level)
    f()
    np.testing.assert_array_equal(a.get_value(), np.arange(4.0) + 10)
    np.testing.assert_array_equal(b.get_value(), np.arange(4.0))
    f()
    np.testing.assert_array_equal(a.get_value(), np.arange(4.0))
    np.testing.assert_array_equal(b.get_value(), np.arange(4.0) + 10)
    assert check_plan(f.program.program)


@pytest.mark.parametrize("level", ["O0", "O1", "O3"])
def test_update_whose_old_value_is_also_returned(level):
    w = G.shared(np.ones(5), name="w")
    x = G.vector("x", "float64")
    g = G.grad(((w * x) ** 2).sum(), w)
    f = G.function([x], [w, w * 2.0, g], updates={w: w - 0.1 * g}, opt_level=level)
    xv = np.arange(5.0)
    old, twice, grad = f(xv)
    want_g = 2 * xv ** 2
    np.testing.assert_array_equal(old, np.ones(5))
    np.testing.assert_array_equal(twice, 2 * np.ones(5))
    np.testing.assert_allclose(grad, want_g, **F64_TOL)
    np.testing.assert_allclose(w.get_value(), 1 - 0.1 * want_g, **F64_TOL)
    old2, _, _ = f(xv)  # the returned array is not the variable's storage
    np.testing.assert_allclose(old2, 1 - 0.1 * want_g, **F64_TOL)
    np.testing.assert_array_equal(old, np.ones(5))


@pytest.mark.parametrize("level", ["O0", "O1", "O3"])
def test_in_place_update_after_the_last_read_of_the_old_value(level):
    """(w * x).sum() reads w before the update kernel overwrites it, and a = a + b reads b
    while b's own update needs the old a: every update still sees the values from before."""
    w = G.shared(np.arange(5.0), name="w")
    a, b = G.shared(np.array([1.0, 2.0]), name="a"), G.shared(np.array([3.0, 5.0]), name="b")
    x = G.vector("x", "float64")
    f = G.function([x], (w * x).sum(), updates={w: w - x, a: a + b, b: a * b}, opt_level=level)
    xv = np.array([1.0, -1.0, 2.0, 0.5, 3.0])
    np.testing.assert_allclose(f(xv), (np.arange(5.0) * xv).sum(), **F64_TOL)
    np.testing.assert_array_equal(w.get_value(), np.arange(5.0) - xv)
    np.testing.assert_array_equal(a.get_value(), [4.0, 7.0])
    np.testing.assert_array_equal(b.get_value(), [3.0, 10.0])
    program = f.program.program
    assert check_plan(program)
    if level == "O3":
        assert "w" in {buf.name for buf in program.in_place_updates.values()}


def test_failed_call_leaves_in_place_updated_variables_unchanged():
    w = G.shared(np.arange(4.0), name="w")
    x = G.vector("x", "float64")
    idx = G.vector("idx", "int64")
    f = G.function([x, idx], x[idx] * 2.0, updates={w: w * 2.0 + 1.0})
    np.testing.assert_array_equal(f(np.arange(3.0), np.array([2, 0])), [4.0, 0.0])
    np.testing.assert_array_equal(w.get_value(), np.arange(4.0) * 2 + 1)
    with pytest.raises(G.GraphcError):
        f(np.arange(3.0), np.array([5, 0]))
    np.testing.assert_array_equal(w.get_value(), np.arange(4.0) * 2 + 1)


def test_weight_update_is_one_gemm_into_the_weight():
    """w - lr * x.T @ g is one gemm accumulating into w: no weight-sized temporary."""
    rng = np.random.RandomState(3)
    x = G.tensor("x", (8, 5), "float64")
    w = G.shared(rng.randn(5, 3), name="w")
    cost = (G.dot(x, w) ** 2).sum()
    g = G.grad(cost, w)
    xv = rng.randn(8, 5)
    w0 = w.get_value()
    f = G.function([x], cost, updates={w: w - 0.1 * g}, opt_level="O3")
    f(xv)
    np.testing.assert_allclose(w.get_value(), w0 - 0.1 * (2 * xv.T @ (xv @ w0)), rtol=1e-12)
    program = f.program.program
    gemms = [k for k in program.kernels if k.kind == "gemm" and k.params.get("beta") == 1.0]
    assert len(gemms) == 1 and gemms[0].in_place
    assert not any(b.role == "temp" and tuple(b.shape) == (5, 3) for k in program.kernels
                   for b in k.outputs)


# --- merge_increments: summed gradients of slices of one tensor -------------------------------

def _sliced_sum_grad(dtype, n_steps=6, width=4):
    """The gradient of a cost reading every row and four column blocks of x (an unrolled RNN's
    pattern): n_steps + 4 slices, each slice gradient a full-size IncSubtensor."""
    x = G.tensor("x", (n_steps, 3, 4 * width), dtype)
    cost = 0
    for t in range(n_steps):
        z = x[t]
        cost = cost + (G.sigmoid(z[:, :width]) * G.tanh(z[:, width:2 * width])
                       + z[:, 2 * width:3 * width] ** 2 - z[:, 3 * width:]).sum()
    return x, G.grad(cost, x)


def test_summed_slice_gradients_become_one_increment_op(dtype):
    x, g = _sliced_sum_grad(dtype)
    f = graph_level([x], g)
    xv = np.random.RandomState(3).randn(6, 3, 16).astype(dtype)
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(f(xv), ref([x], g, xv), rtol=tol, atol=tol)
    assert [n.op.__class__.__name__ for n in f.fgraph.nodes].count("IncSubtensorSum") == 7
    assert not any(n.op.__class__.__name__ == "IncSubtensor" for n in f.fgraph.nodes)
    assert graph_level([x], g, opt_level="O0").fgraph.nodes  # (as written: 30 IncSubtensor)
    assert [n.op.__class__.__name__ for n in graph_level([x], g, opt_level="O0").fgraph.nodes
            ].count("IncSubtensor") == 6 * 4 + 6


def test_summed_slice_gradients_write_one_buffer_without_zero_fills():
    x, g = _sliced_sum_grad("float32", n_steps=2)
    f = G.function([x], g)  # C: what lowering makes of the merged increments
    # the slices tile their tensors: every element is written once, nothing is zero-filled
    assert "fill" not in [k.kind for k in kernels(f)]
    xv = np.random.RandomState(3).randn(2, 3, 16).astype("float32")
    np.testing.assert_allclose(f(xv), ref([x], g, xv), rtol=1e-5, atol=1e-5)


def test_overlapping_or_partial_slices_are_zero_filled_and_added(dtype):
    x = G.tensor("x", (5, 9), dtype)
    cost = (G.exp(x[:, :3]).sum() + x[1:3, 2:5].sum() * x[0, 1:4].sum()
            + (x[1:4, :3] ** 2).sum())
    g = G.grad(cost, x)
    f = G.function([x], g) if dtype == "float32" else graph_level([x], g)  # C: the fill kernel
    xv = np.random.RandomState(4).randn(5, 9).astype(dtype)
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(f(xv), ref([x], g, xv), rtol=tol, atol=tol)
    assert [n.op.__class__.__name__ for n in f.fgraph.nodes].count("IncSubtensorSum") == 1
    if dtype == "float32":
        assert [k.kind for k in kernels(f)].count("fill") == 1


def test_slice_gradients_of_different_tensors_are_not_merged():
    a, b = G.tensor("a", (4, 6)), G.tensor("b", (4, 6))
    y = G.tensor("y", (4, 3))
    # a[:, :3] and b[:, 3:] both meet y, but their gradients belong to different tensors
    ga, gb = G.grad((a[:, :3] * y + b[:, 3:] * y).sum(), [a, b])
    f = graph_level([a, b, y], [ga, gb])
    assert not any(n.op.__class__.__name__ == "IncSubtensorSum" for n in f.fgraph.nodes)
    av, bv, yv = (np.random.RandomState(5).randn(*s).astype("float32") for s in [(4, 6), (4, 6), (4, 3)])
    got = f(av, bv, yv)
    np.testing.assert_allclose(got[0][:, :3], yv)
    np.testing.assert_allclose(got[1][:, 3:], yv)
    assert not got[0][:, 3:].any() and not got[1][:, :3].any()


# --- merge_products: a sum of matrix products is one deeper product ---------------------------

def test_sum_of_products_becomes_one_product_of_concatenations(dtype):
    xs = [G.tensor(f"x{t}", (4, 6), dtype) for t in range(5)]
    gs = [G.tensor(f"g{t}", (4, 3), dtype) for t in range(5)]
    total = G.dot(xs[0].T, gs[0])
    for x, g in zip(xs[1:], gs[1:]):
        total = total + G.dot(x.T, g)  # as back-propagation through unrolled steps sums them
    total = total + G.dot(xs[0][:2].T, gs[0][:2])  # a term of another depth joins too
    f = G.function(xs + gs, total) if dtype == "float32" else graph_level(xs + gs, total)
    rng = np.random.RandomState(6)
    values = [rng.randn(4, 6).astype(dtype) for _ in xs] + [rng.randn(4, 3).astype(dtype) for _ in gs]
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(f(*values), ref(xs + gs, total, *values), rtol=tol, atol=tol)
    names = op_names(f)
    assert names.count("Matmul") == 1 and not any(n.startswith("add") for n in names)
    if dtype == "float32":  # C: the one product is one gemm kernel
        assert [k.kind for k in kernels(f)].count("gemm") == 1


def test_products_with_a_transposed_operand_merge_and_batched_ones_do_not(dtype):
    a, b = G.tensor("a", (4, 6), dtype), G.tensor("b", (6, 3), dtype)
    c, d = G.tensor("c", (5, 4), dtype), G.tensor("d", (5, 3), dtype)
    out = G.dot(a, b) + G.dot(c.T, d)  # a @ b sums over a's columns, c.T @ d over c's rows
    f = graph_level([a, b, c, d], out)
    rng = np.random.RandomState(7)
    values = [rng.randn(*s).astype(dtype) for s in [(4, 6), (6, 3), (5, 4), (5, 3)]]
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(f(*values), ref([a, b, c, d], out, *values), rtol=tol, atol=tol)
    assert op_names(f).count("Matmul") == 1
    p, q = G.tensor3("p", dtype), G.tensor3("q", dtype)
    batched = graph_level([p, q], G.matmul(p, q) + G.matmul(q, p))
    assert "Concatenate" not in op_names(batched)
    pv, qv = rng.randn(2, 3, 3).astype(dtype), rng.randn(2, 3, 3).astype(dtype)
    np.testing.assert_allclose(batched(pv, qv), pv @ qv + qv @ pv, rtol=tol, atol=tol)


def test_products_are_merged_at_O2_and_O3_only():
    xs = [G.tensor(f"x{t}", (4, 6)) for t in range(3)]
    total = G.dot(xs[0].T, xs[0]) + G.dot(xs[1].T, xs[1]) + G.dot(xs[2].T, xs[2])
    assert op_names(graph_level(xs, total, opt_level="O1")).count("Matmul") == 3
    assert op_names(graph_level(xs, total, opt_level="O2")).count("Matmul") == 1


def test_a_fused_recurrence_does_not_recompute_its_history(dtype):
    """c_t = a_t * c_{t-1} + b_t, each c_t read by the next step and by an output term: cheap,
    but recomputing c_{t-1} inside c_t (and so on) would make step t redo all t steps."""
    a = [G.vector(f"a{t}", dtype) for t in range(20)]
    b = [G.vector(f"b{t}", dtype) for t in range(20)]
    c, total = a[0] * 0.5, 0
    for t in range(20):
        c = a[t] * c + b[t]
        total = total + c * c
    f = graph_level(a + b, total)
    rng = np.random.RandomState(8)
    values = [rng.uniform(0.5, 1.0, 7).astype(dtype) for _ in a + b]
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(f(*values), ref(a + b, total, *values), rtol=tol, atol=tol)
    # each step's inputs are read where c_t is computed and where it is squared, not again in
    # every later step (unbounded, a_t was read by 11 kernels)
    readers = {v: sum(v in n.inputs for n in f.fgraph.nodes) for v in a + b}
    assert max(readers.values()) <= 2
    assert any("more than 8 operations" in note for note in f.fgraph.fusion_notes)
