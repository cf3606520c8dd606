"""The CUDA kernel templates run on the CPU execution model (GRAPHC_CUDA_EMULATE=1, the very same
.cu that nvcc builds, compiled by g++ with templates/cuda/gc_cuda_emulate.h): the whole kernel
table (cuda_kernel_table.py) as one function per dtype against the py reference (float64 built
with the race checker, GRAPHC_CUDA_RACECHECK=1), its gradients against finite differences, sizes only known at the call, the C target's errors for bad labels
and indices, and Philox numbers bit-identical to the C target's."""
import re
import shutil

import numpy as np
import pytest

import graphc as G
from cuda_kernel_table import all_cases, table_graph
from graphc.errors import RuntimeCheckError

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")


@pytest.fixture(autouse=True)
def emulate(monkeypatch):
    monkeypatch.setenv("GRAPHC_CUDA_EMULATE", "1")


def _directional_derivatives_agree(name, values, grads, dtype, rng):
    """The gradients of sum(out^2) the CUDA function returned, along a random direction per float
    input, against central differences of the case's float64 graph on the py reference."""
    build, _, _ = all_cases()[name]
    xs = [G.tensor(f"x{k}", v.shape, "float64" if v.dtype.kind == "f" else v.dtype.name)
          for k, v in enumerate(values)]
    out = build(*xs)
    cost = G.function(xs, G.sum(out * out), backend="py", no_default_updates=True)
    point = [v.astype("float64") if v.dtype.kind == "f" else v for v in values]
    floats = [k for k, v in enumerate(values) if v.dtype.kind == "f"]
    rtol, atol = (2e-2, 2e-3) if dtype == "float32" else (1e-5, 1e-7)
    eps = 1e-6
    for k, g in zip(floats, grads):
        d = rng.standard_normal(point[k].shape)
        d /= max(np.linalg.norm(d), 1e-12)
        plus, minus = list(point), list(point)
        plus[k], minus[k] = point[k] + eps * d, point[k] - eps * d
        numeric = (float(cost(*plus)) - float(cost(*minus))) / (2 * eps)
        symbolic = float(np.sum(g.astype("float64") * d))
        assert np.isclose(symbolic, numeric, rtol=rtol, atol=atol), \
            f"{name} ({dtype}): gradient of input {k}: {symbolic:.6g} vs numeric {numeric:.6g}"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_kernel_table_matches_reference_and_finite_differences(dtype, monkeypatch):
    if dtype == "float64":  # under the race checker (test_cuda_racecheck.py): a hazard raises
        monkeypatch.setenv("GRAPHC_CUDA_RACECHECK", "1")
    inputs, outputs, values, entries = table_graph(dtype)
    # (no_default_updates: the random case's stream must draw the same numbers for both)
    f = G.function(inputs, outputs, target="cuda", name=f"cuda_table_{dtype}",
                   no_default_updates=True)
    got = f(*values)
    want = G.function(inputs, outputs, backend="py", opt_level="O0",
                      no_default_updates=True)(*values)
    # relative to each output's scale: sum(out^2)'s gradients reach a few hundred, and the
    # kernels add in another order than numpy (block reductions, gathers)
    tol = 5e-5 if dtype == "float32" else 1e-11
    start, first_input, rng = 0, 0, np.random.RandomState(7)
    for name, xs, outs in entries:
        vals = values[first_input:first_input + len(xs)]
        first_input += len(xs)
        for j in range(len(outs)):
            g, w = got[start + j], want[start + j]
            assert g.dtype == w.dtype and g.shape == w.shape, name
            scale = 1.0 + (float(np.max(np.abs(w))) if w.size and w.dtype.kind == "f" else 0.0)
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol * scale, err_msg=f"{name} output {j}")
        if len(outs) > 1:
            _directional_derivatives_agree(name, vals, got[start + 1:start + len(outs)], dtype, rng)
        start += len(outs)


def test_sizes_known_only_at_the_call():
    """Symbolic sizes: the reduction and argmax templates emit both their row (block) and column
    (thread) kernels and pick one per call; rows past the emulated grid (2 blocks) and rows longer
    than a block (256 threads) take the block- and thread-stride loops. (Kept small: every
    barrier switches all 256 fibers of a block.)"""
    a, r, b = G.dim("a"), G.dim("r"), G.dim("b")
    x = G.tensor("x", (a, r, b), "float64")
    labels = G.tensor("labels", (a,), "int64")
    rows = x.sum(axis=2)
    outs = [x.sum(axis=1), x.max(axis=1), x.argmax(axis=1), G.softmax(rows),
            G.softmax_cross_entropy(rows, labels), G.take(rows, labels, axis=1)]
    outs.append(G.grad(G.sum(outs[4]) + G.sum(outs[5] ** 2), x))
    f = G.function([x, labels], outs, target="cuda")
    ref = G.function([x, labels], outs, backend="py")
    rng = np.random.RandomState(0)
    for shape in [(3, 300, 1), (2, 5, 3), (5, 4, 1), (1, 1, 1)]:
        xv = rng.permutation(int(np.prod(shape))).reshape(shape) * 0.01
        lv = rng.randint(0, shape[1], shape[0]).astype("int64")
        for g, w in zip(f(xv, lv), ref(xv, lv)):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12, err_msg=str(shape))


def _errors_on_both_targets(inputs, output, values):
    messages = []
    for target in ("c", "cuda"):
        f = G.function(inputs, output, target=target)
        with pytest.raises(RuntimeCheckError) as info:
            f(*values)
        # (names the graph made up, such as v154 for an arange, are numbered per function)
        messages.append(re.sub(r"\bv[0-9]+\b", "v", str(info.value)))
    return messages


@pytest.mark.parametrize("bad", [5, -1])
def test_out_of_range_label_is_the_c_targets_error(bad):
    logits, labels = G.matrix("logits"), G.tensor("labels", (None,), "int64")
    loss = G.softmax_cross_entropy(logits, labels)
    values = [np.zeros((4, 5), "float32"), np.array([0, 1, bad, 2], "int64")]
    c_msg, cuda_msg = _errors_on_both_targets([logits, labels], loss, values)
    assert cuda_msg == c_msg and "label out of range [0, 5)" in cuda_msg


@pytest.mark.parametrize("kind", ["rows", "pick", "scatter"])
def test_out_of_range_index_is_the_c_targets_error(kind):
    x, i = G.matrix("x"), G.tensor("i", (None,), "int64")
    out = {"rows": lambda: x[i],
           "pick": lambda: x[G.arange(x.shape[0]), i],
           "scatter": lambda: G.grad(G.sum(x[i] ** 2), x)}[kind]()
    index = {"rows": [0, 4, 9, 1], "pick": [0, 1, 2, 7], "scatter": [3, -6, 0, 1]}[kind]
    values = [np.ones((4, 3), "float32"), np.array(index, "int64")]
    c_msg, cuda_msg = _errors_on_both_targets([x, i], out, values)
    assert cuda_msg == c_msg and "index out of range" in cuda_msg


def test_max_over_an_empty_axis_is_the_c_targets_error():
    x = G.tensor("x", (None, None), "float32")
    c_msg, cuda_msg = _errors_on_both_targets([x], [x.max(axis=1), x.argmax(axis=1)],
                                              [np.ones((3, 0), "float32")])
    assert cuda_msg == c_msg and "over an empty axis" in cuda_msg


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_random_numbers_and_dropout_masks_are_the_c_targets_bits(dtype):
    """Philox on both targets: the same counter gives the same bits (5001 numbers: past one
    emulated grid of Philox blocks, and a cut last block); the shared counter advances on each."""
    x = G.tensor("x", (3, 1667), dtype)
    runs = {}
    for target in ("c", "cuda"):
        rng = G.RandomStreams(seed=5)
        u = rng.uniform(x.shape, dtype=dtype)
        y = G.dropout(x, 0.3, rng)
        f = G.function([x], [u, y], updates=rng.updates(), target=target)
        xv = np.random.RandomState(1).uniform(1, 2, (3, 1667)).astype(dtype)
        runs[target] = [f(xv), f(xv), rng.counter.get_value()]
    c, cuda = runs["c"], runs["cuda"]
    for call in (0, 1):
        for a, b in zip(c[call], cuda[call]):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(c[0][0], c[1][0]) and int(cuda[2]) == int(c[2]) == 2


def test_a_small_conv_net_trains_as_on_the_c_target_for_20_steps():
    """conv, max and average pooling, LRN, dense, softmax cross-entropy and their gradients (the
    LeNet step's kernels) under SGD: the parameters after 20 steps on both targets agree."""
    rng = np.random.default_rng(0)
    xs = rng.uniform(0, 1, (20, 4, 1, 10, 10)).astype("float32")
    ys = rng.integers(0, 5, (20, 4))

    def init(shape, seed):
        return np.random.default_rng(seed).normal(0, 0.3, shape).astype("float32")

    def train(target):
        x, y = G.tensor("x", (None, 1, 10, 10), "float32"), G.vector("y", dtype="int64")
        w1, w2 = G.shared(init((4, 1, 3, 3), 1), name="w1"), G.shared(init((36, 5), 2), name="w2")
        b2 = G.shared(np.zeros(5, "float32"), name="b2")
        h = G.max_pool2d(G.relu(G.conv2d(x, w1, padding=1)), 2)  # (n, 4, 5, 5)
        h = G.avg_pool2d(G.lrn(h, 3, alpha=0.1, beta=0.75), 3, 2, 1)  # (n, 4, 3, 3)
        logits = G.dot(h.flatten(2), w2) + b2
        cost = G.mean(G.softmax_cross_entropy(logits, y))
        params = [w1, w2, b2]
        grads = G.grad(cost, params)
        f = G.function([x, y], cost, updates=[(p, p - 0.3 * g) for p, g in zip(params, grads)],
                       target=target)
        return f, params

    (fc, pc), (fg, pg) = train("c"), train("cuda")
    kinds = {k.kind for k in fg.program.program.kernels}
    assert {"pool_max_grad", "pool_avg_grad", "lrn_grad", "softmax_xent", "reduce"} <= kinds
    for x, y in zip(xs, ys):
        np.testing.assert_allclose(fg(x, y), fc(x, y), rtol=1e-5)
    for a, b in zip(pg, pc):
        np.testing.assert_allclose(a.get_value(), b.get_value(), rtol=1e-5, atol=1e-6)


def test_nan_and_integer_reductions_as_numpy():
    """max/min/argmax keep the first NaN (block and column kernels, warp shuffles included);
    integer and bool reductions accumulate in int64; bool max/min/argmax shuffle as int."""
    x = G.tensor("x", (None, None), "float64")
    n = G.tensor("n", (None, None), "int64")
    outs = [x.max(axis=1), x.min(axis=0), x.argmax(axis=1), x.argmax(axis=0), x.sum(axis=1),
            n.max(axis=1), n.min(axis=0), n.sum(axis=1), G.sum(n > 0, axis=0), n.argmax(axis=1),
            (n > 40).max(axis=1), (n > 40).argmax(axis=1), (n > -45).min(axis=0)]
    f = G.function([x, n], outs, target="cuda")
    rng = np.random.RandomState(3)
    xv = rng.standard_normal((4, 300))
    xv[1, 257] = xv[2, 3] = xv[2, 290] = np.nan
    nv = rng.randint(-50, 50, (4, 300)).astype("int64")
    want = [np.max(xv, 1), np.min(xv, 0), np.argmax(xv, 1), np.argmax(xv, 0), np.sum(xv, 1),
            nv.max(1), nv.min(0), nv.sum(1), (nv > 0).sum(0), nv.argmax(1),
            (nv > 40).max(1), (nv > 40).argmax(1), (nv > -45).min(0)]
    for g, w in zip(f(xv, nv), want):
        np.testing.assert_allclose(g, w, rtol=1e-12, equal_nan=True)
