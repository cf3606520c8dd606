"""ONNX control flow import (graphc/onnx/convert_control.py): Scan (axes, directions, outer-scope
reads, graphc's own Scan export read back), Loop with a fixed or shape-given trip count and a
condition that stays true (a trip count from data: test_onnx_dynamic.py), If (known condition inlined; run-time condition as a select of two
cheap branches); every other form refused with its reasons. References: onnx's evaluator, or
graphc's own function for the round trip. Runs on the numpy target (no compiles) but one."""
import numpy as np
import pytest

import onnx_models as M
import graphc as G

GO = pytest.importorskip("graphc.onnx")
from onnx import TensorProto, helper as oh, numpy_helper as nh  # noqa: E402

from graphc.onnx.proto import OnnxUnsupported  # noqa: E402

F = TensorProto.FLOAT


def _model(nodes, inputs, outputs, inits=(), opset=17):
    g = oh.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return oh.make_model(g, opset_imports=[oh.make_opsetid("", opset)])


def _vi(name, shape, elem=F):
    return oh.make_tensor_value_info(name, elem, shape)


def _run(model, feeds, target="py"):
    m = GO.load(model)
    f = G.function(m.inputs, list(m.outputs), backend=target)
    got = f(*[feeds[n] for n in m.input_names])
    want = M.reference_run(model, feeds)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    return m


def _scan_model(in_axis=0, in_dir=0, out_axis=0, out_dir=0):
    """h = tanh(h @ W + x_t) over the steps of x (W read from the outer scope); outputs the final
    h and the stacked h's."""
    body = oh.make_graph(
        [oh.make_node("MatMul", ["h_in", "W"], ["hw"]),
         oh.make_node("Add", ["hw", "x_t"], ["z"]),
         oh.make_node("Tanh", ["z"], ["h_out"]),
         oh.make_node("Identity", ["h_out"], ["y_t"])],
        "body", [_vi("h_in", [2, 3]), _vi("x_t", [2, 3])], [_vi("h_out", [2, 3]), _vi("y_t", [2, 3])])
    x_shape = [2, 3]
    x_shape.insert(in_axis, "T")
    y_shape = [2, 3]
    y_shape.insert(out_axis, "T")
    node = oh.make_node("Scan", ["h0", "x"], ["h_T", "ys"], body=body, num_scan_inputs=1,
                        scan_input_axes=[in_axis], scan_input_directions=[in_dir],
                        scan_output_axes=[out_axis], scan_output_directions=[out_dir])
    W = nh.from_array((np.random.default_rng(0).standard_normal((3, 3)) * 0.5).astype("float32"), "W")
    return _model([node], [_vi("h0", [2, 3]), _vi("x", x_shape)],
                  [_vi("h_T", [2, 3]), _vi("ys", y_shape)], [W])


@pytest.mark.parametrize("in_axis,in_dir,out_axis,out_dir",
                         [(0, 0, 0, 0), (1, 1, 0, 0), (0, 0, 2, 1), (2, 1, 1, 0)])
def test_scan_axes_and_directions(in_axis, in_dir, out_axis, out_dir):
    model = _scan_model(in_axis, in_dir, out_axis, out_dir)
    rng = np.random.default_rng(1)
    shape = [2, 3]
    shape.insert(in_axis, 4)
    m = _run(model, {"h0": rng.standard_normal((2, 3)).astype("float32"),
                     "x": rng.standard_normal(shape).astype("float32")})
    assert list(m.params) == ["W"]   # the body's outer read stays a trainable parameter


def test_graphc_scan_export_reads_back_compiled():
    """graphc -> ONNX Scan -> graphc: the same numbers (compiled C), forwards and backwards."""
    W = G.shared((np.random.default_rng(0).standard_normal((3, 3)) * 0.5).astype("float32"), name="W")
    X = G.matrix("X", shape=("T", 3))
    h0 = G.vector("h0", shape=(3,))
    for backwards in (False, True):
        hs, _ = G.scan(lambda x_t, h: G.tanh(G.dot(h, W) + x_t), sequences=X, outputs_info=h0,
                       go_backwards=backwards, name="rnn")
        model = GO.export([X, h0], [hs, hs[-1]])
        m = GO.load(model)
        f, g = G.function([X, h0], [hs, hs[-1]]), G.function(m.inputs, list(m.outputs))
        x = np.random.default_rng(1).standard_normal((5, 3)).astype("float32")
        h = np.ones(3, "float32")
        for a, b in zip(f(x, h), g(x, h)):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def _loop_body(cond_out="cond_in", n=3):
    """acc += x * i; ys[i] = acc."""
    return oh.make_graph(
        [oh.make_node("Cast", ["i"], ["i_f"], to=F),
         oh.make_node("Mul", ["x", "i_f"], ["xi"]),
         oh.make_node("Add", ["acc_in", "xi"], ["acc_out"]),
         oh.make_node("Identity", ["acc_out"], ["y"]),
         oh.make_node("ReduceSum", ["acc_out"], ["s"], keepdims=0),
         oh.make_node("Less", ["s", "limit"], ["stop_early"]),
         oh.make_node("Identity", [cond_out], ["cond_out"])],
        "body", [_vi("i", [], TensorProto.INT64), _vi("cond_in", [], TensorProto.BOOL),
                 _vi("acc_in", [n])],
        [_vi("cond_out", [], TensorProto.BOOL), _vi("acc_out", [n]), _vi("y", [n])])


def _loop_model(trip_nodes, trip_name="M", cond_out="cond_in", cond_name="c", n=3):
    consts = [nh.from_array(np.array(True), "c"), nh.from_array(np.float32(100.0), "limit")]
    node = oh.make_node("Loop", [trip_name, cond_name, "acc0"], ["acc_T", "ys"],
                        body=_loop_body(cond_out, n))
    return _model(trip_nodes + [node], [_vi("x", [n]), _vi("acc0", [n])],
                  [_vi("acc_T", [n]), _vi("ys", ["M", n])], consts)


def test_loop_with_a_fixed_trip_count():
    trip = oh.make_node("Constant", [], ["M"], value=nh.from_array(np.int64(4)))
    rng = np.random.default_rng(2)
    _run(_loop_model([trip]), {"x": rng.standard_normal(3).astype("float32"),
                               "acc0": np.zeros(3, "float32")})


def test_loop_with_a_trip_count_from_a_shape():
    """M = x.shape[0]: one compiled function for every length."""
    nodes = [oh.make_node("Shape", ["x"], ["sx"]),
             oh.make_node("Gather", ["sx", "zero"], ["M"], axis=0)]
    model = _loop_model(nodes, n="n")
    model.graph.initializer.append(nh.from_array(np.int64(0), "zero"))
    m = GO.load(model)
    f = G.function(m.inputs, list(m.outputs), backend="py")
    for n in (3, 5):  # n steps over x of length n
        x = np.arange(1, n + 1, dtype="float32")
        acc_T, ys = f(x, np.zeros(n, "float32"))
        want = np.cumsum([x * i for i in range(n)], axis=0)
        assert ys.shape == (n, n)
        np.testing.assert_allclose(ys, want, rtol=1e-6)
        np.testing.assert_allclose(acc_T, want[-1], rtol=1e-6)


def test_loop_forms_graphc_cannot_map_are_refused_with_reasons():
    trip = oh.make_node("Constant", [], ["M"], value=nh.from_array(np.int64(4)))
    early_exit = _loop_model([trip], cond_out="stop_early")
    with pytest.raises(OnnxUnsupported, match="condition output is computed at run time"):
        GO.load(early_exit)
    while_loop = _loop_model([], trip_name="")
    with pytest.raises(OnnxUnsupported, match="there is no trip count M"):
        GO.load(while_loop)
    data_trip = _loop_model([])
    data_trip.graph.input.append(_vi("M", [], TensorProto.INT64))
    # a trip count from data runs (tests/test_onnx_dynamic.py); static_inputs still fixes it
    m = GO.load(data_trip, static_inputs={"M": 2})
    f = G.function(m.inputs, list(m.outputs), backend="py")
    acc_T, ys = f(np.ones(3, "float32"), np.zeros(3, "float32"))
    np.testing.assert_allclose(ys, [[0, 0, 0], [1, 1, 1]])


def _if_model(then_nodes, else_nodes, then_out=("t", [2]), else_out=("e", [2]), cond_input=True):
    then_g = oh.make_graph(then_nodes, "then", [], [_vi(*then_out)])
    else_g = oh.make_graph(else_nodes, "else", [], [_vi(*else_out)])
    node = oh.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)
    inputs = [_vi("x", [2])] + ([_vi("c", [], TensorProto.BOOL)] if cond_input else [])
    inits = [] if cond_input else [nh.from_array(np.array(False), "c")]
    return _model([node], inputs, [_vi("y", [2])], inits)


def test_if_on_a_run_time_condition_is_a_select():
    model = _if_model([oh.make_node("Exp", ["x"], ["t"])], [oh.make_node("Neg", ["x"], ["e"])])
    for c in (True, False):
        _run(model, {"x": np.array([0.5, -1.0], "float32"), "c": np.array(c)})


def test_if_on_a_known_condition_takes_one_branch():
    """The branch not taken is never read, even one graphc could not import."""
    model = _if_model([oh.make_node("Unique", ["x"], ["t"])], [oh.make_node("Neg", ["x"], ["e"])],
                      cond_input=False)
    _run(model, {"x": np.array([0.5, -1.0], "float32")})


def test_if_that_cannot_be_a_select_lists_why():
    big = [oh.make_node("Neg", ["x"], ["t0"])] + [oh.make_node("Neg", [f"t{k}"], [f"t{k + 1}"])
                                                 for k in range(20)]
    mismatch = _if_model(big, [oh.make_node("ReduceSum", ["x"], ["e"], keepdims=1)],
                         then_out=("t20", [2]), else_out=("e", [1]))
    with pytest.raises(OnnxUnsupported) as err:
        GO.load(mismatch)
    text = str(err.value)
    assert "then branch has 21 nodes" in text


def test_if_branches_of_different_shapes_are_refused():
    model = _if_model([oh.make_node("Neg", ["x"], ["t"])],
                      [oh.make_node("ReduceSum", ["x"], ["e"], keepdims=1)], else_out=("e", [1]))
    with pytest.raises(OnnxUnsupported, match=r"output 0 is .* in the then branch and .* in the else"):
        GO.load(model)


def test_unsupported_op_inside_a_body_is_reported_with_the_node():
    model = _if_model([oh.make_node("Unique", ["x"], ["t"])], [oh.make_node("Neg", ["x"], ["e"])])
    with pytest.raises(OnnxUnsupported, match="then_branch: Unique .* operator not supported"):
        GO.load(model)


def test_exported_bptt_gradient_reads_back():
    """The gradient of an LSTM scan exports as a reverse Scan over many sequences; read back,
    it computes the same loss and weight gradients."""
    from test_onnx_export_scan import B, I, T, _lstm
    X, params, hs, _ = _lstm(False)
    loss = (hs * hs).sum()
    outs = [loss] + G.grad(loss, params)
    m = GO.load(GO.export([X], outs))
    x = np.random.default_rng(2).standard_normal((T, B, I)).astype("float32")
    want = G.function([X], outs, backend="py")(x)
    got = G.function(m.inputs, list(m.outputs), backend="py")(x)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
