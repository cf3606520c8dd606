"""The CUDA kernel tests' table: every op case of op_cases.py and test_cnn_ops.py (forward and
gradient), plus the graphs that reach the kinds those leave out (the max-pool gradient's adjoint,
random numbers), built as ONE function per dtype so that a whole table is one .cu (one nvcc or
g++ call). Inputs are the cases' own makers, so the py reference sees the same values."""
import numpy as np

import graphc as G

import test_cnn_ops
from op_cases import CASES, any_, distinct


def _pool_double_grad(x, w):
    """d/dw of |d sum(maxpool(x) * w) / dx|^2: the gradient of the max-pool gradient with
    respect to its incoming gradient is pool_max_gather."""
    gx = G.grad(G.sum(G.max_pool2d(x, 2) * w), x)
    return G.sum(gx * gx) + G.sum(G.grad(G.sum(gx * gx), w))


def _uniform(x):
    """Philox numbers (random_uniform) of an odd count, so the tail of the last block is cut."""
    return G.RandomStreams(seed=11).uniform((3, 7), dtype=x.dtype) + x


def _set_repeated_rows(a):
    """set_subtensor with a repeated (and a negative) row index: scatter_set, the last wins."""
    return G.set_subtensor(a[G.constant(np.array([3, 0, 3, -1]))], a[1:] * 2)


# name -> (builder, input makers, differentiable)
EXTRA = {
    "scatter_set": (_set_repeated_rows, [any_(5, 3)], True),
    "pool_max_gather": (_pool_double_grad, [distinct(2, 2, 4, 4), any_(2, 2, 2, 2)], False),
    "random_uniform": (_uniform, [any_(3, 7)], False),
}


def all_cases():
    cases = dict(CASES)
    cases.update((f"cnn_{name}", (build, makers, True))
                 for name, (build, makers) in test_cnn_ops.CASES.items())
    cases.update(EXTRA)
    return cases


def table_graph(dtype, names=None):
    """The chosen cases (all by default) side by side in one graph: (inputs, outputs, values,
    entries), each entry (name, its inputs, its outputs): the case's output and, where it is
    differentiable, the gradients of sum(out^2) to its float inputs (in input order)."""
    cases = all_cases()
    rng = np.random.RandomState(0)
    inputs, outputs, values, entries = [], [], [], []
    for name in sorted(names or cases):
        build, makers, differentiable = cases[name]
        vals = [m(rng, dtype) for m in makers]
        xs = [G.tensor(f"{name}_{k}", v.shape, v.dtype.name) for k, v in enumerate(vals)]
        out = build(*xs)
        outs = [out]
        floats = [x for x in xs if x.dtype.startswith("float")]
        if differentiable and floats and out.dtype.startswith("float"):
            outs += G.grad(G.sum(out * out), floats, disconnected_inputs="ignore")
        entries.append((name, xs, outs))
        inputs += xs
        outputs += outs
        values += vals
    return inputs, outputs, values, entries
