"""ONNX models built with onnx.helper for the tests (no exporter needed), and the reference
that runs them: onnxruntime where installed, else onnx's own numpy ReferenceEvaluator."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="graphc.onnx needs the onnx package (pip install 'graphc[onnx]')")
from onnx import TensorProto as T, helper as h, numpy_helper as nh  # noqa: E402

F = T.FLOAT
try:
    import onnxruntime  # noqa: F401
    REFERENCE_RTOL = 1e-5
except ImportError:  # onnx's numpy reference differs from onnxruntime (and graphc) by ~6e-5
    REFERENCE_RTOL = 1e-4  # relative on the small CNN: it computes some ops in another order


def reference_run(model, feeds):
    """The model's outputs from onnxruntime, or from onnx.reference where it is absent."""
    try:
        import onnxruntime as ort
    except ImportError:
        from onnx.reference import ReferenceEvaluator
        return ReferenceEvaluator(model).run(None, feeds)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"]).run(None, feeds)


class Builder:
    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], []

    def w(self, name, shape, scale=0.3, value=None):
        arr = value if value is not None else (self.rng.standard_normal(shape) * scale).astype("float32")
        self.inits.append(nh.from_array(np.asarray(arr), name))
        return name

    def const(self, name, value):
        self.nodes.append(h.make_node("Constant", [], [name], value=nh.from_array(np.asarray(value), name)))
        return name

    def n(self, op, ins, out, **attrs):
        self.nodes.append(h.make_node(op, ins, [out] if isinstance(out, str) else out, **attrs))
        return out

    def model(self, inputs, outputs, opset=17):
        g = h.make_graph(self.nodes, "m", inputs, outputs, self.inits)
        m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
        onnx.checker.check_model(m)
        return m


def mlp():
    b = Builder(0)
    b.n("MatMul", ["x", b.w("W1", (8, 16))], "h")
    b.n("Add", ["h", b.w("b1", (16,))], "h1")
    b.n("Relu", ["h1"], "r")
    b.n("Gemm", ["r", b.w("W2", (4, 16))], "logits", transB=1, alpha=0.5)
    b.n("Softmax", ["logits"], "probs", axis=1)
    return b.model([h.make_tensor_value_info("x", F, ["batch", 8])],
                   [h.make_tensor_value_info("probs", F, ["batch", 4])])


def small_cnn():
    """Conv + batch norm + Relu6 (Clip), depthwise and grouped conv, HardSwish, pools with pads
    and ceil_mode, LRN, a concat of two branches, global pooling, Flatten, Gemm."""
    b = Builder(1)

    def bn(x, c, out):
        b.w(f"{out}_s", None, value=(1 + 0.1 * b.rng.standard_normal(c)).astype("f"))
        b.w(f"{out}_b", None, value=(0.1 * b.rng.standard_normal(c)).astype("f"))
        b.w(f"{out}_m", None, value=(0.1 * b.rng.standard_normal(c)).astype("f"))
        b.w(f"{out}_v", None, value=(0.5 + b.rng.random(c)).astype("f"))
        return b.n("BatchNormalization", [x, f"{out}_s", f"{out}_b", f"{out}_m", f"{out}_v"], out,
                   epsilon=1e-3)

    b.n("Conv", ["x", b.w("c1", (8, 3, 3, 3)), b.w("c1b", (8,))], "a", pads=[1, 1, 1, 1])
    bn("a", 8, "a_bn")
    b.n("Clip", ["a_bn", b.const("lo", np.float32(0)), b.const("hi", np.float32(6))], "a6")
    b.n("Conv", ["a6", b.w("dw", (8, 1, 3, 3))], "d", group=8, strides=[2, 2], pads=[1, 1, 1, 1])
    bn("d", 8, "d_bn")
    b.n("HardSwish", ["d_bn"], "d_hs")
    b.n("Conv", ["d_hs", b.w("g", (16, 2, 3, 3))], "gc", group=4, auto_pad="SAME_UPPER")
    b.n("Relu", ["gc"], "gr")
    b.n("MaxPool", ["gr"], "mp", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)
    b.n("AveragePool", ["gr"], "ap", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
        ceil_mode=1)
    b.n("Concat", ["mp", "ap"], "cat", axis=1)
    b.n("LRN", ["cat"], "lrn", size=3, alpha=1e-3, beta=0.75, bias=1.0)
    b.n("Conv", ["lrn", b.w("pw", (12, 32, 1, 1))], "pw_out")
    b.n("HardSigmoid", ["pw_out"], "hsig", alpha=0.25, beta=0.4)
    b.n("GlobalAveragePool", ["hsig"], "gap")
    b.n("Flatten", ["gap"], "flat")
    b.n("Gemm", ["flat", b.w("fc", (12, 5)), b.w("fcb", (5,))], "logits", beta=0.5)
    return b.model([h.make_tensor_value_info("x", F, ["N", 3, 12, 12])],
                   [h.make_tensor_value_info("logits", F, ["N", 5])])


def transformer_block(seq=6, d=16, heads=2, ff=32):
    """A pre-norm transformer encoder block, batch symbolic, with the shape subgraphs an
    exporter writes (Shape -> Gather -> Concat -> Reshape), positions from Range, a causal mask
    through Where, Gelu, and a ReduceMean (axes as an input) over the sequence."""
    b = Builder(2)
    dh = d // heads
    i64 = lambda v: np.array(v, dtype="int64")  # noqa: E731
    b.n("Shape", ["x"], "xs")
    b.n("Gather", ["xs", b.const("i0", i64(0))], "bsz")
    b.n("Gather", ["xs", b.const("i1", i64(1))], "sq")
    b.n("Range", [b.const("zero", i64(0)), "sq", b.const("one", i64(1))], "pos")
    b.n("Gather", [b.w("pos_emb", (seq, d), 0.1), "pos"], "pe")
    b.n("Add", ["x", "pe"], "x0")
    b.n("LayerNormalization", ["x0", b.w("ln1_s", (d,)), b.w("ln1_b", (d,))], "xn", epsilon=1e-5)
    b.n("Unsqueeze", ["bsz", b.const("ax0", i64([0]))], "bsz1")
    b.n("Unsqueeze", ["sq", b.const("ax0b", i64([0]))], "sq1")
    b.n("Concat", ["bsz1", "sq1", b.const("hd", i64([heads, dh]))], "split_shape", axis=0)
    for name in ("q", "k", "v"):
        b.n("MatMul", ["xn", b.w(f"W{name}", (d, d))], f"{name}0")
        b.n("Add", [f"{name}0", b.w(f"b{name}", (d,), 0.1)], f"{name}1")
        b.n("Reshape", [f"{name}1", "split_shape"], f"{name}2")
    b.n("Transpose", ["q2"], "qh", perm=[0, 2, 1, 3])
    b.n("Transpose", ["k2"], "kT", perm=[0, 2, 3, 1])
    b.n("Transpose", ["v2"], "vh", perm=[0, 2, 1, 3])
    b.n("MatMul", ["qh", "kT"], "s0")
    b.n("Div", ["s0", b.const("scale", np.float32(np.sqrt(dh)))], "s1")
    b.n("Where", [b.const("causal", np.tril(np.ones((seq, seq), bool))), "s1",
                  b.const("neg", np.float32(-1e9))], "s2")
    b.n("Softmax", ["s2"], "att", axis=-1)
    b.n("MatMul", ["att", "vh"], "ctx")
    b.n("Transpose", ["ctx"], "ctx_t", perm=[0, 2, 1, 3])
    b.n("Concat", ["bsz1", "sq1", b.const("dd", i64([-1]))], "merge_shape", axis=0)
    b.n("Reshape", ["ctx_t", "merge_shape"], "ctx_m")
    b.n("MatMul", ["ctx_m", b.w("Wo", (d, d))], "o")
    b.n("Add", ["x0", "o"], "x1")
    b.n("LayerNormalization", ["x1", b.w("ln2_s", (d,)), b.w("ln2_b", (d,))], "x1n")
    b.n("MatMul", ["x1n", b.w("W1", (d, ff))], "f0")
    b.n("Gelu", ["f0"], "f1")
    b.n("MatMul", ["f1", b.w("W2", (ff, d))], "f2")
    b.n("Add", ["x1", "f2"], "y")
    b.n("ReduceMean", ["y", b.const("axes1", i64([1]))], "pooled", keepdims=0)
    return b.model([h.make_tensor_value_info("x", F, ["batch", seq, d])],
                   [h.make_tensor_value_info("y", F, ["batch", seq, d]),
                    h.make_tensor_value_info("pooled", F, ["batch", d])], opset=20)
