"""Dense layers with constant weights (graphc/codegen/dense_packed.py): a product whose right
operand is a parameter packs it each call and runs the packed kernel from 32 rows of A
(CCapabilities.packs_dense_product: K >= 256, 64 <= N <= 256), the BLAS below. Which products (program level), both paths
against the py reference and the BLAS-only build (float32/float64, columns off the 32-column
panel, B transposed or not), a training step whose weights change between calls, and an
imported Gemm against onnxruntime."""
import numpy as np
import pytest

import graphc as G
from graphc.ir.ops.blas import Matmul
from graphc.targets.c.capabilities import DENSE_PACK_MIN_ROWS
from program_cases import program_of


def _kinds(program):
    return [k.kind for k in program.kernels]


def _dense(k, n, dtype="float32", trans=True, shared=True):
    x = G.matrix("x", dtype=dtype)
    wv = np.random.default_rng(k + n).standard_normal((n, k) if trans else (k, n)).astype(dtype)
    w = G.shared(wv, name="w") if shared else G.matrix("w", dtype=dtype)
    # (B transposed as an imported Gemm's transB gives it: the product's flag, no copy)
    return x, w, Matmul(False, trans)(x, w)


def test_a_product_with_a_parameter_as_b_packs_it(monkeypatch):
    x, w, y = _dense(400, 120)
    p = program_of([x], [y])
    assert _kinds(p) == ["gemm_dense_packed"]
    k = p.kernels[0]
    assert k.params["min_rows"] == DENSE_PACK_MIN_ROWS == 32
    assert k.scratch[0].shape == (128 * 400,)  # 4 panels of 32 columns
    # B an input, a short K or few columns: the BLAS
    x, w, y = _dense(400, 120, shared=False)
    assert _kinds(program_of([x, w], [y])) == ["gemm"]
    x, w, y = _dense(120, 84)
    assert _kinds(program_of([x], [y])) == ["gemm"]
    x, w, y = _dense(400, 10)
    assert _kinds(program_of([x], [y])) == ["gemm"]
    x, w, y = _dense(784, 512)  # (a wide N: the BLAS is as fast)
    assert _kinds(program_of([x], [y])) == ["gemm"]
    monkeypatch.setenv("GRAPHC_PACKED_GEMM", "0")
    x, w, y = _dense(400, 120)
    assert _kinds(program_of([x], [y])) == ["gemm"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("trans", [True, False])
def test_the_packed_product_equals_the_blas_one(dtype, trans, monkeypatch):
    x, w, y = _dense(300, 70, dtype, trans)  # 70 columns: 2 whole panels and a part
    f = G.function([x], y + 1)
    assert "gemm_dense_packed" in _kinds(f.program.program)
    monkeypatch.setenv("GRAPHC_PACKED_GEMM", "0")
    blas = G.function([x], y + 1)
    assert "gemm_dense_packed" not in _kinds(blas.program.program)
    reference = G.function([x], y + 1, backend="py")
    rng = np.random.default_rng(1)
    tol = 2e-5 if dtype == "float32" else 1e-12
    for rows in (1, 31, 32, 33, 100):  # the BLAS below 32 rows, packed from 32
        xv = rng.standard_normal((rows, 300)).astype(dtype)
        got = f(xv)
        want = reference(xv)
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
        np.testing.assert_allclose(got, blas(xv), rtol=tol, atol=tol * np.abs(want).max())


def test_a_training_step_packs_the_weights_it_just_updated(monkeypatch):
    """Packed each call: the second step's product reads the first step's update."""
    rng = np.random.default_rng(3)
    xv = rng.standard_normal((48, 256)).astype("float32")
    yv = rng.standard_normal((48, 64)).astype("float32")

    def steps(packed):
        monkeypatch.setenv("GRAPHC_PACKED_GEMM", "1" if packed else "0")
        x, t = G.matrix("x"), G.matrix("t")
        w = G.shared(np.random.default_rng(0).standard_normal((64, 256)).astype("float32") * 0.1)
        loss = ((Matmul(False, True)(x, w) - t) ** 2).mean()
        step = G.function([x, t], loss, updates=[(w, w - 0.05 * G.grad(loss, w))])
        assert ("gemm_dense_packed" in _kinds(step.program.program)) == packed
        return [float(step(xv, yv)) for _ in range(3)], w.get_value()

    (losses, w1), (want, w2) = steps(True), steps(False)
    assert losses[2] < losses[0]
    np.testing.assert_allclose(losses, want, rtol=1e-5)
    np.testing.assert_allclose(w1, w2, rtol=1e-5, atol=1e-6)


def test_an_imported_gemm_with_initializer_weights_matches_onnxruntime():
    M = pytest.importorskip("onnx_models")
    GO = pytest.importorskip("graphc.onnx")
    from onnx import TensorProto, helper as oh, numpy_helper as nh
    rng = np.random.default_rng(5)
    inits = [nh.from_array(rng.standard_normal((100, 400)).astype("float32"), "w"),
             nh.from_array(rng.standard_normal(100).astype("float32"), "b")]
    node = oh.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1, alpha=0.5, beta=2.0)
    g = oh.make_graph([node], "g", [oh.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 400])],
                      [oh.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 100])],
                      initializer=inits)
    model = oh.make_model(g, opset_imports=[oh.make_opsetid("", 17)])
    m = GO.load(model)
    f = G.function(m.inputs, m.outputs[0])
    assert "gemm_dense_packed" in _kinds(f.program.program)
    for rows in (3, 64):
        x = rng.standard_normal((rows, 400)).astype("float32")
        want = M.reference_run(model, {"x": x})[0]
        np.testing.assert_allclose(f(x), want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
