"""Gradients of sigmoid, tanh and exp read the op's output (scalar_fns rows' from_output), so a
gradient does no transcendental work, and a scan stacks those activations for BPTT (issue #12):
the LSTM's backward loop body calls no exp/tanh."""
import numpy as np
import pytest
import sympy

import graphc as G
from graphc.testing import verify_grad
from graphc.ir.ops import elemwise as ew
from graphc.ir.ops import scalar_expr as se
from graphc.ir.ops import scalar_fns as sf
from program_cases import program_of
from test_scan_packed_gemm import lstm_training



@pytest.fixture(params=["py", "c"])
def backend(request):
    return request.param


OPS = {"sigmoid": G.sigmoid, "tanh": G.tanh, "exp": G.exp}


def _functions(expr):
    return {type(e).__name__ for e in sympy.preorder_traversal(se.thaw(expr))
            if isinstance(e, sf.ScalarFn)}


@pytest.mark.parametrize("name", sorted(OPS))
def test_the_op_gradient_reads_only_the_output_and_calls_no_function(name):
    op = ew.FUNCTION_OPS[name]
    d = se.thaw(ew._grad_expr(op.expr, 1, 0))
    x, y, g = ew.ARGS[:3]
    assert x not in d.free_symbols and {y, g} <= d.free_symbols, d
    assert not _functions(d), d


def test_only_one_argument_functions_may_have_a_derivative_from_the_output():
    with pytest.raises(ValueError, match="one argument"):
        sf.Row("f2", 2, np.add, sf.libm("f2"), "cheap", from_output=lambda y: (y,))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(OPS))
def test_numeric_gradient(name, dtype, backend):
    rng = np.random.RandomState(1)
    point = (rng.uniform(-3, 3, (4, 5)).astype(dtype),)
    # A composite argument too: the chain factor of the function's argument is kept.
    verify_grad(lambda a: OPS[name](a) * OPS[name](2 * a - 1), point, backend=backend, rng=rng)


# x, then d/dx of sum(f(x)) at the singular points: +-inf, nan, large |x|.
X = np.array([-np.inf, np.inf, np.nan, -100.0, 100.0, -20.0, 20.0, 0.0])
WANT = {
    "sigmoid": np.array([0.0, 0.0, np.nan, None, 0.0, None, None, 0.25], dtype=object),
    "tanh": np.array([0.0, 0.0, np.nan, 0.0, 0.0, 0.0, 0.0, 1.0], dtype=object),
    "exp": np.array([0.0, np.inf, np.nan, None, None, None, None, 1.0], dtype=object),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(OPS))
def test_singular_points(name, dtype, backend):
    x = G.vector("x", dtype)
    f = G.function([x], G.grad(OPS[name](x).sum(), x), backend=backend)
    xv = X.astype(dtype)
    with np.errstate(all="ignore"):
        got = f(xv)
        for k, want in enumerate(WANT[name]):
            if want is None:  # finite and nonzero: the value of f'(x) in float64, rounded
                ref = {"sigmoid": np.exp(xv[k].astype("float64")) / (1 + np.exp(xv[k].astype("float64"))) ** 2,
                       "exp": np.exp(xv[k].astype("float64"))}[name]
                # sigmoid near y = 1: absolutely precise (y (1 - y); 0 once y rounds to 1)
                atol = np.finfo(dtype).eps / 2 if name == "sigmoid" else 0
                np.testing.assert_allclose(got[k], ref.astype(dtype), rtol=1e-5, atol=atol)
            elif np.isnan(want):
                assert np.isnan(got[k]), (k, got[k])
            else:
                assert got[k] == want, (xv[k], got[k], want)


def _loops(kernels):
    for k in kernels:
        if k.kind == "loop":
            yield k
            yield from _loops(k.params["body"].kernels)


def _body_functions(loop):
    found = set()
    for k in loop.params["body"].kernels:
        body = k.params.get("body")
        for e in getattr(body, "exprs", ()):
            found |= _functions(e)
    return found


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lstm_backward_loop_body_calls_no_transcendental(dtype):
    inputs, outputs, values = lstm_training(dtype)
    forward, backward = [k for k in _loops(program_of(inputs, outputs).kernels)]
    assert not forward.params["reverse"] and backward.params["reverse"]
    assert _body_functions(forward) == {"sigmoid", "tanh"}
    assert not _body_functions(backward) & {"sigmoid", "tanh", "exp"}, _body_functions(backward)


def test_lstm_gradients_match_on_c_and_py():
    inputs, outputs, values = lstm_training("float64")
    got = G.function(inputs, outputs, backend="c", name="lstm_c")(*values)
    want = G.function(inputs, outputs, backend="py", name="lstm_py")(*values)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_invariant_activation_is_not_stacked():
    """tanh(W) of a non-sequence is the same every step: the scan stacks only sigmoid's y."""
    X, W = G.tensor("X", (4, 3, 5)), G.tensor("W", (5, 5))
    h0 = G.tensor("h0", (3, 5))

    def step(x, h):
        return G.sigmoid(G.dot(h, G.tanh(W)) + x)

    hs, _ = G.scan(step, sequences=X, outputs_info=h0, name="rnn")
    node = hs.owner
    stacked = node.op.body.outputs[node.op.n_carry:]
    fns = [type(se.thaw(o.owner.op.expr)).__name__ for o in stacked
           if o.owner is not None and hasattr(o.owner.op, "expr")]
    assert "tanh" not in fns and "sigmoid" in fns


def test_lstm_backward_reads_the_activations_not_z():
    """BPTT reads the five stacked activations (i, f, g, o, tanh c), never the step's z (4H
    wide): a gradient op reads g, not z, for its shape, so z is not kept for T steps."""
    from graphc.ir.graph import toposort
    from graphc.ir.ops.loop import Loop
    from graphc.ir.ops.scan import Scan
    inputs, outputs, values = lstm_training("float32", H=6)
    nodes = toposort(outputs)
    [forward] = [n for n in nodes if isinstance(n.op, Scan)]
    [backward] = [n for n in nodes if isinstance(n.op, Loop) and not isinstance(n.op, Scan)]
    read = [i for i in backward.inputs if i.owner is forward and i not in forward.outputs[:2]]
    assert [i.type.shape for i in read] == [(3, 7, 6)] * 5, [str(i) for i in read]
