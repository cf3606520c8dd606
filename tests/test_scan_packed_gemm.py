"""A loop body's product whose right operand the loop reads whole (a recurrent weight) packs it
once before the first iteration and runs templates/c/_gemm_packed.j2's kernel every step:
compiled results equal the py target's (float32 and float64; rows off the kernel's 3-row blocks
and past a row block, columns off its panels, depths past a depth chunk, a transposed left
operand, a product accumulated into its output, a nested loop), gradients equal finite
differences, and GRAPHC_PACKED_GEMM=0 or a target without the capability keeps the BLAS."""
import numpy as np
import pytest

import graphc as G
from graphc.ir.inner_graph import InnerGraph
from graphc.ir.ops.blas import Matmul
from graphc.ir.ops.loop import loop
from graphc.targets.c.capabilities import PACKED_PRODUCT_MIN_WORK
from graphc.testing import verify_grad

from program_cases import program_of

TOL = {"float32": dict(rtol=2e-4, atol=2e-5), "float64": dict(rtol=1e-10, atol=1e-12)}


def _packs(kernels):
    """(loop kernel, pack) for every pack of every loop, nested loops included."""
    found = []
    for k in kernels:
        if k.kind == "loop":
            found += [(k, p) for p in k.params["packs"]]
            found += _packs(k.params["body"].kernels)
    return found


def _packed_products(program):
    """The body gemm kernels that run packed, as (params, trans_b)."""
    return [(k.params["body"].kernels[p[0]].params, p[3]) for k, p in _packs(program.kernels)]


def _same_on_c_and_py(inputs, outputs, values, dtype, name):
    got = G.function(inputs, outputs, backend="c", name=name)(*values)
    want = G.function(inputs, outputs, backend="py", name=name)(*values)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, **TOL[dtype])


def lstm_training(dtype, T=3, B=7, D=5, H=42):
    """An LSTM's loss and its gradients (PyTorch's gate order): the forward loop's h @ U is
    7 x 42 by 42 x 168 (168 columns: 5 whole float32 panels and a partial one), the backward's
    g_z @ U^T is 7 x 168 by 168 x 42."""
    X = G.tensor("X", (T, B, D), dtype)
    h0, c0 = G.tensor("h0", (B, H), dtype), G.tensor("c0", (B, H), dtype)
    W, U, b = G.tensor("W", (D, 4 * H), dtype), G.tensor("U", (H, 4 * H), dtype), G.tensor("b", (4 * H,), dtype)

    def cell(x, h, c):
        z = G.dot(x, W) + G.dot(h, U) + b
        i, f = G.sigmoid(z[:, :H]), G.sigmoid(z[:, H:2 * H])
        g, o = G.tanh(z[:, 2 * H:3 * H]), G.sigmoid(z[:, 3 * H:])
        c_new = f * c + i * g
        return o * G.tanh(c_new), c_new

    (hs, cs), _ = G.scan(cell, sequences=X, outputs_info=[h0, c0], name="lstm")
    loss = (hs * hs).sum() + 0.5 * cs[-1].sum()
    inputs = [X, h0, c0, W, U, b]
    r = np.random.default_rng(3)
    values = [(r.standard_normal(v.type.shape) * 0.4).astype(dtype) for v in inputs]
    return inputs, [loss, hs] + G.grad(loss, [W, U, b, h0]), values


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lstm_training_step_packs_the_recurrent_weight_in_both_loops(dtype):
    inputs, outputs, values = lstm_training(dtype)
    products = _packed_products(program_of(inputs, outputs))
    assert sorted(trans_b for _, trans_b in products) == [False, True]  # forward, then BPTT
    _same_on_c_and_py(inputs, outputs, values, dtype, f"packed_lstm_{dtype}")


def test_packed_lstm_gradients_equal_finite_differences():
    H = 40  # 7 x 40 by 40 x 160: above the packing threshold

    def fn(X, h0, c0, W, U, b):
        def cell(x, h, c):
            z = G.dot(x, W) + G.dot(h, U) + b
            i, f = G.sigmoid(z[:, :H]), G.sigmoid(z[:, H:2 * H])
            g, o = G.tanh(z[:, 2 * H:3 * H]), G.sigmoid(z[:, 3 * H:])
            c_new = f * c + i * g
            return o * G.tanh(c_new), c_new
        (hs, cs), _ = G.scan(cell, sequences=X, outputs_info=[h0, c0])
        return hs + 0.5 * cs
    assert 7 * H * 4 * H >= PACKED_PRODUCT_MIN_WORK
    r = np.random.default_rng(5)
    shapes = [(3, 7, 4), (7, H), (7, H), (4, 4 * H), (H, 4 * H), (4 * H,)]
    assert verify_grad(fn, [r.standard_normal(s) * 0.4 for s in shapes], backend="c")


def recurrence(dtype, rows, width, steps=2, accumulate=False):
    """h <- tanh(h @ U) (or h - 0.5 * h @ U: the gemm then accumulates into a copy of h, alpha
    -0.5, beta 1) `steps` times: a bare loop, no sequence."""
    h, u = G.tensor("h", (rows, width), dtype), G.tensor("u", (width, width), dtype)
    new = h - 0.5 * G.dot(h, u) if accumulate else G.tanh(G.dot(h, u))
    h0, U = G.tensor("h0", (rows, width), dtype), G.tensor("U", (width, width), dtype)
    (final,) = loop(InnerGraph([h, u], [new]), [], [h0], [U], n_steps=steps)
    r = np.random.default_rng(7)
    values = [r.standard_normal((rows, width)).astype(dtype),
              (r.standard_normal((width, width)) / np.sqrt(width)).astype(dtype)]
    return [h0, U], [final], values


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rows_past_a_row_block_and_depth_past_a_chunk(dtype):
    """100 rows (one block of 96 and 4 more: a 3-row tail of 1), 300 columns (not whole panels
    in either precision) and a depth of 300 (a chunk of 256 and 44 more)."""
    inputs, outputs, values = recurrence(dtype, 100, 300)
    [(params, _)] = _packed_products(program_of(inputs, outputs))
    assert (params["M"], params["N"], params["K"]) == (100, 300, 300)
    _same_on_c_and_py(inputs, outputs, values, dtype, f"packed_big_{dtype}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_product_accumulated_into_its_output(dtype):
    inputs, outputs, values = recurrence(dtype, 11, 64, steps=3, accumulate=True)
    [(params, _)] = _packed_products(program_of(inputs, outputs))
    assert (params["alpha"], params["beta"]) == (-0.5, 1.0)
    _same_on_c_and_py(inputs, outputs, values, dtype, f"packed_acc_{dtype}")


def test_transposed_left_operand():
    """s <- tanh(s^T @ U), the body's product reading its left operand transposed (a Matmul
    op built so: the graph passes do not fold a transpose into a body's product)."""
    dt, K = "float64", 40
    s, u = G.tensor("s", (K, K), dt), G.tensor("u", (K, K), dt)
    s0, U = G.tensor("s0", (K, K), dt), G.tensor("U", (K, K), dt)
    (final,) = loop(InnerGraph([s, u], [G.tanh(Matmul(True, False)(s, u))]), [], [s0], [U],
                    n_steps=3)
    [(params, _)] = _packed_products(program_of([s0, U], [final]))
    assert params["trans_a"]
    r = np.random.default_rng(8)
    values = [r.standard_normal((K, K)), r.standard_normal((K, K)) / 6]
    _same_on_c_and_py([s0, U], [final], values, dt, "packed_trans_a")


def test_nested_scan_packs_inside_the_outer_body():
    """The inner scan's recurrent weight is packed once per outer step, into the outer body's
    workspace."""
    dt, B, H = "float32", 8, 64
    X = G.tensor("X", (3, 2, B, H), dt)
    U = G.tensor("U", (H, H), dt)
    h0 = G.tensor("h0", (B, H), dt)

    def outer_step(block, h):
        hs, _ = G.scan(lambda x, g: G.tanh(x + G.dot(g, U)), sequences=block, outputs_info=h)
        return hs[-1]

    hs, _ = G.scan(outer_step, sequences=X, outputs_info=h0, name="outer")
    program = program_of([X, U, h0], [hs])
    outer = [k for k in program.kernels if k.kind == "loop"]
    assert outer and not outer[0].params["packs"] and len(_packs(program.kernels)) == 1
    r = np.random.default_rng(9)
    values = [r.standard_normal((3, 2, B, H)).astype(dt), (r.standard_normal((H, H)) / 8).astype(dt),
              r.standard_normal((B, H)).astype(dt)]
    _same_on_c_and_py([X, U, h0], [hs], values, dt, "packed_nested")


def test_switched_off_and_other_targets_keep_the_blas(monkeypatch):
    from graphc.targets.cuda.target import CUDA_CAPABILITIES
    inputs, outputs, _ = lstm_training("float32")
    assert not _packs(program_of(inputs, outputs, capabilities=CUDA_CAPABILITIES).kernels)
    small = recurrence("float32", 4, 16)  # 1024 multiply-adds a step: not worth a buffer
    assert not _packs(program_of(small[0], small[1]).kernels)
    monkeypatch.setenv("GRAPHC_PACKED_GEMM", "0")
    assert not _packs(program_of(inputs, outputs).kernels)


def test_lstm_backward_loop_stacks_the_gate_gradient_once():
    """g_z is both the gradient of the input projection's slice z_t and the per-step factor of
    U's gradient (h_{t-1}^T g_z, one product after the loop): the reverse loop stacks it once,
    and both read that one history."""
    from graphc.ir.graph import toposort
    from graphc.ir.ops.loop import Loop
    inputs, outputs, values = lstm_training("float64", H=4)
    [back] = [n for n in toposort(outputs) if isinstance(n.op, Loop) and n.op.reverse]
    stacked = back.outputs[back.op.n_carry:]
    assert [o.type.shape[-1] for o in stacked] == [16]  # one [T, B, 4H] history
    _same_on_c_and_py(inputs, outputs, values, "float64", "lstm_gz_once")
