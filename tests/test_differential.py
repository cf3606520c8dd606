"""Differential testing: random small graphs, compiled at O0 and O3 with the C backend, against
the numpy reference (backend="py", opt_level="O0"), values and gradients, float32 and float64.

A graph is drawn as plain data (a `Spec`, printed by hypothesis when an example fails) and then
built. The grammar:
  leaves      2-3 inputs whose shapes broadcast to a full shape of rank 1-3 (dims 1-4, some 1,
              some of lower rank)
  chain       1-5 elementwise steps on the running value: tanh, sigmoid, exp(clip(v)), sqr, an
              affine map, or add/sub/mul/maximum/where with a leaf or an earlier value of the
              chain (so values get several readers, which is what fusion has to get right)
  tail        0-2 of: sum/max/mean over random axes (keepdims or not), dot with a 2-D input,
              reshape, transpose, x[idx] with an int64 index vector, x[i]; each may be followed
              by one more elementwise step
  cost        sum(output * random weights), differentiated w.r.t. one leaf the output reads
Values are drawn from a seed, away from ties: max reductions read v + a constant of distinct
values, and comparisons are made against leaves (bit-identical in every backend).

The suite runs 25 derandomized examples; GRAPHC_DIFF_EXAMPLES=500 runs that many fresh random ones.
"""
import os
import traceback
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import graphc as G

SETTINGS = settings(max_examples=int(os.environ.get("GRAPHC_DIFF_EXAMPLES", 25)), deadline=None,
                    derandomize=os.environ.get("GRAPHC_DIFF_EXAMPLES") is None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])

UNARY = ("tanh", "sigmoid", "exp_clip", "sqr", "affine")
BINARY = ("add", "sub", "mul", "maximum", "where")
TOL = {"float32": 2e-5, "float64": 1e-12}  # as test_ops, for values and gradients alike
SINGULAR = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0])


@dataclass
class Spec:
    full: tuple
    leaves: list  # shapes; leaf 0 has the full shape
    chain: list  # (op, operand) with operand ("leaf", j) / ("value", k) / None
    tail: list = field(default_factory=list)  # (op, params, post-op or None)
    seed: int = 0
    wrt: int = 0  # which float input the gradient is taken against
    mode: str = "both"  # both: [output, gradient]; grad: the gradient alone
    singular: bool = False  # some input entries are nan, +-inf, 0 or -0.0


# --- drawing a spec -----------------------------------------------------------------------

def _broadcastable(draw, full):
    """A shape that broadcasts to `full`: some axes 1, maybe fewer leading axes."""
    drop = draw(st.integers(0, len(full) - 1))
    return tuple(d if draw(st.booleans()) else 1 for d in full[drop:])


@st.composite
def specs(draw):
    ndim = draw(st.integers(1, 3))
    full = tuple(draw(st.integers(1, 4)) for _ in range(ndim))
    leaves = [full] + [_broadcastable(draw, full) for _ in range(draw(st.integers(1, 2)))]
    chain = []
    # The first step combines leaf 0 with another leaf, so every graph broadcasts.
    chain.append((draw(st.sampled_from(("add", "sub", "mul"))), ("leaf", 1)))
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            chain.append((draw(st.sampled_from(UNARY)), None))
        else:
            op = draw(st.sampled_from(BINARY))
            if op == "where" or draw(st.booleans()):
                operand = ("leaf", draw(st.integers(0, len(leaves) - 1)))
            else:
                operand = ("value", draw(st.integers(0, len(chain) - 1)))
            chain.append((op, operand))
    tail, shape = [], full
    for _ in range(draw(st.integers(1, 2))):
        options = ["reduce", "reshape", "transpose", "index"]
        if len(shape) == 2:
            options.append("dot")
        if len(shape) >= 2:
            options.append("int_index")
        kind = draw(st.sampled_from(options))
        if kind == "transpose" and len(shape) < 2:
            kind = "reshape"
        if kind == "reduce":
            red = draw(st.sampled_from(("sum", "max", "mean")))
            axes = draw(st.one_of(st.none(), st.lists(st.integers(0, len(shape) - 1), min_size=1,
                                                      max_size=len(shape), unique=True)))
            keep = draw(st.booleans())
            params = (red, None if axes is None else tuple(sorted(axes)), keep)
            if axes is None:
                shape = (1,) * len(shape) if keep else ()
            else:
                shape = tuple(1 if a in axes else d for a, d in enumerate(shape)
                              if keep or a not in axes)
        elif kind == "reshape":
            size = int(np.prod(shape))
            target = draw(st.sampled_from([(size,), (1, size), (size, 1), tuple(reversed(shape))]))
            params, shape = target, target
        elif kind == "transpose":
            perm = tuple(draw(st.permutations(range(len(shape)))))
            params, shape = perm, tuple(shape[p] for p in perm)
        elif kind == "index":
            if not shape:
                continue
            n = draw(st.integers(1, 5))
            params = n
            shape = (n,) + shape[1:]
        elif kind == "int_index":
            i = draw(st.integers(-shape[0], shape[0] - 1))
            params, shape = i, shape[1:]
        else:  # dot
            k = draw(st.integers(1, 4))
            side = draw(st.sampled_from(("right", "left")))
            params = (k, side)
            shape = (shape[0], k) if side == "right" else (k, shape[1])
        post = draw(st.one_of(st.none(), st.sampled_from(("tanh", "sqr", "affine"))))
        tail.append((kind, params, post))
        if not shape and kind != "reduce":
            break
        if not shape:
            break
    n_float = len(leaves) + sum(1 for t in tail if t[0] == "dot")
    return Spec(full, leaves, chain, tail, seed=draw(st.integers(0, 2 ** 31 - 1)),
                wrt=draw(st.integers(0, n_float - 1)), mode=draw(st.sampled_from(("both", "grad"))),
                singular=draw(st.integers(0, 3)) == 0)


# --- building the graph and its inputs ----------------------------------------------------

def _unary(op, v):
    if op == "tanh":
        return G.tanh(v)
    if op == "sigmoid":
        return G.sigmoid(v)
    if op == "exp_clip":
        return G.exp(G.clip(v, -3.0, 3.0))
    if op == "sqr":
        return G.sqr(v)
    return v * 0.75 - 0.375  # affine


def _binary(op, v, w):
    if op == "add":
        return v + w
    if op == "sub":
        return v - w
    if op == "mul":
        return v * w
    if op == "maximum":
        return G.maximum(v, w * 0.5 + 0.25)  # never v against itself: no exact ties
    raise AssertionError(op)


def build(spec, dtype):
    """(inputs, indices of the float inputs, indices of the inputs the output reads, output,
    input values, the random state the values came from) for `spec`."""
    rng = np.random.RandomState(spec.seed)
    xs = [G.tensor(f"x{k}", s, dtype) for k, s in enumerate(spec.leaves)]
    values = [rng.uniform(-1.5, 1.5, s).astype(dtype) for s in spec.leaves]
    if spec.singular:  # the optimization level must not change a result at these points either
        for v in values:
            hit = rng.uniform(size=v.shape) < 0.3
            v[hit] = rng.choice(SINGULAR, size=int(hit.sum())).astype(dtype)
    float_inputs = list(range(len(xs)))
    used = {0, 1}
    v, history = None, []
    for op, operand in spec.chain:
        if operand is None:
            v = _unary(op, v)
        else:
            kind, j = operand
            w = xs[j] if kind == "leaf" else history[j]
            if kind == "leaf":
                used.add(j)
            if v is None:
                v = _binary(op, xs[0], w)
            elif op == "where":
                v = G.where(w > 0, v, w)  # the condition reads a leaf: same bits everywhere
            else:
                v = _binary(op, v, w)
        history.append(v)
    for kind, params, post in spec.tail:
        if kind == "reduce":
            red, axes, keep = params
            if red == "max":
                n = int(np.prod(v.type.shape))
                distinct = rng.permutation(n).reshape(v.type.shape) * 0.37 - 0.1 * n
                v = v + G.constant(distinct.astype(dtype))
            v = getattr(v, red)(axis=axes, keepdims=keep)
        elif kind == "reshape":
            v = v.reshape(params)
        elif kind == "transpose":
            v = v.transpose(*params)
        elif kind == "index":
            idx = G.tensor(f"idx{len(xs)}", (params,), "int64")
            xs.append(idx)
            values.append(rng.randint(0, v.type.shape[0], params).astype("int64"))
            v = v[idx]
        elif kind == "int_index":
            v = v[params]
        else:
            k, side = params
            m, n = v.type.shape
            wshape = (n, k) if side == "right" else (k, m)
            w = G.tensor(f"w{len(xs)}", wshape, dtype)
            float_inputs.append(len(xs))
            used.add(len(xs))
            xs.append(w)
            values.append(rng.uniform(-1.5, 1.5, wshape).astype(dtype))
            v = G.dot(v, w) if side == "right" else G.dot(w, v)
        if post is not None:
            v = _unary(post, v)
    return xs, float_inputs, used, v, values, rng


def _close(got, want, tol, what):
    assert got.shape == want.shape and got.dtype == want.dtype, \
        f"{what}: {got.dtype}{got.shape} vs reference {want.dtype}{want.shape}"
    finite = np.abs(want[np.isfinite(want)])
    scale = max(1.0, float(np.max(finite))) if finite.size else 1.0
    # (nan and +-inf must sit in the same places with the same signs)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale, err_msg=what)


# Known core bugs, each pinned by a strict xfail at the end of this file: an example that hits one
# is discarded (hypothesis.assume), so the property keeps testing everything else. Delete an
# entry once its bug is fixed.
def _raised_in(e, function):
    return traceback.extract_tb(e.__traceback__)[-1].name == function


KNOWN_BUGS = []  # all fixed; add a matcher here for a new bug while it is open


def compile_c(xs, outputs, level, target="c"):
    try:
        return G.function(xs, outputs, backend=target, opt_level=level)
    except Exception as e:  # noqa: BLE001 - re-raised unless it is a known bug
        assume(not any(known(e) for known in KNOWN_BUGS))
        raise


def check(spec, dtype, target="c"):
    xs, float_inputs, used, out, values, rng = build(spec, dtype)
    # The gradient is taken against a float input the output reads.
    candidates = [k for k in float_inputs if k in used]
    wrt = xs[candidates[spec.wrt % len(candidates)]]
    weights = rng.uniform(0.5, 1.5, out.type.shape).astype(dtype)
    cost = (out * G.constant(weights)).sum()
    grad = G.grad(cost, wrt)
    outputs = [out, grad] if spec.mode == "both" else [grad]
    want = G.function(xs, outputs, backend="py", opt_level="O0")(*values)
    for level in ("O0", "O3"):
        got = compile_c(xs, outputs, level, target)(*values)
        assert len(got) == len(want)
        for k, (g, w) in enumerate(zip(got, want)):
            what = "gradient" if k == len(want) - 1 else "output"
            _close(g, w, TOL[dtype], f"{level} {what}")


# Hand-written graphs that always run first (hypothesis @example), so every part of the grammar
# is exercised whatever the random draw: dot on both sides, max with keepdims, reductions over
# several axes, repeated gather indices, negative int index, multi-reader chains, where/maximum.
EXAMPLES = [
    Spec(full=(3, 4), leaves=[(3, 4), (4,)], chain=[("mul", ("leaf", 1)), ("tanh", None)],
         tail=[("reduce", ("max", (1,), True), "sqr"), ("dot", (2, "left"), None)], seed=1),
    Spec(full=(2, 3, 2), leaves=[(2, 3, 2), (3, 1), (1, 1, 2)],
         chain=[("add", ("leaf", 1)), ("mul", ("value", 0)), ("where", ("leaf", 2)),
                ("exp_clip", None)],
         tail=[("transpose", (2, 0, 1), "affine"), ("index", 5, None)], seed=2, wrt=1),
    Spec(full=(4, 3), leaves=[(4, 3), (4, 1)],
         chain=[("add", ("leaf", 1)), ("exp_clip", None), ("maximum", ("value", 0)), ("sqr", None)],
         tail=[("dot", (4, "right"), "tanh"), ("reduce", ("mean", (0,), False), None)], seed=3,
         wrt=2, mode="grad"),
    Spec(full=(3, 4, 2), leaves=[(3, 4, 2), (4, 1), (1, 1, 2)],
         chain=[("sub", ("leaf", 1)), ("sigmoid", None), ("mul", ("leaf", 2)), ("where", ("leaf", 1))],
         tail=[("reduce", ("sum", (0, 2), False), "tanh")], seed=4, wrt=2),
    Spec(full=(4, 3), leaves=[(4, 3), (3,), (4, 3)],
         chain=[("mul", ("leaf", 1)), ("affine", None), ("mul", ("value", 0)), ("sub", ("leaf", 2))],
         tail=[("int_index", -1, "sqr"), ("index", 4, None)], seed=5, wrt=1),
    Spec(full=(2, 3, 4), leaves=[(2, 3, 4), (2, 1, 4)],
         chain=[("mul", ("leaf", 1)), ("tanh", None), ("add", ("value", 0))],
         tail=[("reshape", (4, 3, 2), None), ("transpose", (1, 0, 2), "sqr")], seed=6, mode="grad"),
    Spec(full=(4, 4), leaves=[(4, 4), (1, 4), (4, 1)],
         chain=[("add", ("leaf", 1)), ("mul", ("leaf", 2)), ("maximum", ("leaf", 0))],
         tail=[("reduce", ("max", None, False), "affine")], seed=7, wrt=0),
    # Found by a 200-example run: a where(...) substituted into maximum's derivative, whose
    # comparison sympy refused ("Invalid comparison of non-real") until where was declared real.
    Spec(full=(1,), leaves=[(1,), (1,)],
         chain=[("add", ("leaf", 1)), ("where", ("leaf", 0)), ("maximum", ("value", 1))],
         tail=[("reshape", (1,), None)], seed=0, wrt=0, mode="both"),
]


def with_examples(test):
    for spec in reversed(EXAMPLES):
        test = example(spec=spec)(test)
    return test


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@SETTINGS
@with_examples
@given(spec=specs())
def test_random_graph_matches_reference(dtype, spec, target):
    check(spec, dtype, target)


# --- bugs found by the differential tests, kept as regression tests ----------------------------------------------------------------------

@pytest.mark.parametrize("case", ["v[0]", "v[:1]", "transpose_1x1", "grad_m0"])
def test_single_element_strided_copy_compiles(case):
    v = G.vector("v", "float64", shape=(3,))
    m = G.matrix("m", "float64", shape=(1, 1))
    xs, out, values = {
        "v[0]": ([v], v[0], [np.arange(3.0)]),
        "v[:1]": ([v], v[:1] * 2.0, [np.arange(3.0)]),
        "transpose_1x1": ([m], m.T * 2.0, [np.ones((1, 1))]),
        "grad_m0": ([m], G.grad(m[0].sum(), m), [np.ones((1, 1))]),
    }[case]
    want = G.function(xs, out, backend="py", opt_level="O0")(*values)
    np.testing.assert_array_equal(G.function(xs, out, backend="c")(*values), want)


def test_reduction_of_an_input_free_fused_value_compiles():
    x, b = G.vector("x", "float64", shape=(2,)), G.vector("b", "float64", shape=(1,))
    v = x + b
    g = G.grad((v - v).sum(), b)  # the gradient sums a zero (2,) array down to b's (1,)
    np.testing.assert_array_equal(G.function([x, b], g, opt_level="O3")(np.arange(2.0), np.ones(1)),
                                  [0.0])


@pytest.mark.parametrize("case", ["x_plus_b_minus_itself", "ones_like_times_2", "grad_v_minus_v"])
def test_py_backend_reduces_fused_values_of_size_one_inputs(case):
    x, b = G.vector("x", "float64", shape=(2,)), G.vector("b", "float64", shape=(1,))
    v = x + b
    out, want = {
        "x_plus_b_minus_itself": (((x + b) - (x + b)).sum(), 0.0),
        "ones_like_times_2": ((G.ones_like(x) * 2.0).sum() + b.sum(), 5.0),
        "grad_v_minus_v": (G.grad((v - v).sum(), b), [0.0]),
    }[case]
    got = G.function([x, b], out, backend="py", opt_level="O3")(np.arange(2.0), np.ones(1))
    np.testing.assert_array_equal(got, want)
