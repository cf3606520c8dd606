"""ONNX values known only at run time: a Loop's trip count (and initial condition) from data
(graphc/onnx/convert_control.py: a count dim bound when the call starts, scan's n_steps), and
Slice with run-time bounds outside loop bodies (graphc's symbolic slice) and inside them (a
gather of a length fixed at load: graphc/onnx/slice_dynamic.py), with ONNX's clamping. The
reference is onnxruntime (or onnx's evaluator). Numpy target except where a test says."""
import numpy as np
import pytest

import onnx_models as M
import graphc as G

GO = pytest.importorskip("graphc.onnx")
from onnx import TensorProto, helper as oh, numpy_helper as nh  # noqa: E402

from graphc.errors import GraphcError  # noqa: E402
from graphc.onnx.proto import OnnxUnsupported  # noqa: E402

F, I64, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


def _model(nodes, inputs, outputs, inits=(), opset=17):
    g = oh.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return oh.make_model(g, opset_imports=[oh.make_opsetid("", opset)])


def _vi(name, shape, elem=F):
    return oh.make_tensor_value_info(name, elem, shape)


def _compiled(model, target="py"):
    m = GO.load(model)
    return m, G.function(m.inputs, list(m.outputs), backend=target)


def _check(model, f, m, feeds):
    got = f(*[feeds[n] for n in m.input_names])
    want = M.reference_run(model, feeds)
    for g, w in zip(got, want):
        assert g.shape == w.shape, (g.shape, w.shape)
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def _slice_body_loop(start_off=0, width=1, trip="M", cond="c"):
    """acc += table[i + start_off : i + start_off + width] over the loop; ys stacks acc."""
    body = oh.make_graph(
        [oh.make_node("Identity", ["cond_in"], ["cond_out"]),
         oh.make_node("Constant", [], ["off"], value=nh.from_array(np.int64(start_off))),
         oh.make_node("Constant", [], ["w"], value=nh.from_array(np.int64(width))),
         oh.make_node("Add", ["i", "off"], ["s"]),
         oh.make_node("Add", ["s", "w"], ["e"]),
         oh.make_node("Constant", [], ["ax"], value=nh.from_array(np.array([0], "int64"))),
         oh.make_node("Unsqueeze", ["s", "ax"], ["s1"]),
         oh.make_node("Unsqueeze", ["e", "ax"], ["e1"]),
         oh.make_node("Slice", ["table", "s1", "e1"], ["piece"]),
         oh.make_node("Add", ["acc_in", "piece"], ["acc_out"]),
         oh.make_node("Identity", ["acc_out"], ["y"])],
        "body", [_vi("i", [], I64), _vi("cond_in", [], B), _vi("acc_in", [width])],
        [_vi("cond_out", [], B), _vi("acc_out", [width]), _vi("y", [width])])
    loop = oh.make_node("Loop", [trip, cond, "acc0"], ["acc_T", "ys"], body=body)
    return loop


def test_loop_trip_count_is_a_graph_input():
    """One compiled function serves every trip count; the body slices by the iteration number."""
    model = _model([_slice_body_loop()],
                   [_vi("M", [], I64), _vi("c", [], B), _vi("table", [6]), _vi("acc0", [1])],
                   [_vi("acc_T", [1]), _vi("ys", ["T", 1])])
    m, f = _compiled(model)
    table = np.arange(1, 7, dtype="float32")
    for trip in (1, 3, 6):
        _check(model, f, m, {"M": np.array(trip, "int64"), "c": np.array(True), "table": table,
                             "acc0": np.zeros(1, "float32")})


@pytest.mark.parametrize("target", ["py", "c"])
def test_loop_that_runs_zero_times_gives_its_initial_values(target):
    """A count of 0 or less, or a false condition, at the call: the carried output is the
    initial value and the scan output is empty, as onnxruntime gives; then the same function
    runs steps again."""
    model = _model([_slice_body_loop()],
                   [_vi("M", [], I64), _vi("c", [], B), _vi("table", [6]), _vi("acc0", [1])],
                   [_vi("acc_T", [1]), _vi("ys", ["T", 1])])
    m, f = _compiled(model, target)
    table, acc0 = np.arange(6, dtype="float32"), np.full(1, 7, "float32")
    for trip, cond in ((0, True), (-2, True), (3, False), (2, True), (0, False)):
        feeds = {"M": np.array(trip, "int64"), "c": np.array(cond), "table": table, "acc0": acc0}
        _check(model, f, m, feeds)
        if trip < 1 or not cond:
            acc_T, ys = f(np.int64(trip), np.array(cond), table, acc0)
            np.testing.assert_array_equal(acc_T, acc0)
            assert ys.shape == (0, 1)


def test_loop_trip_count_computed_from_data_compiled():
    """M = the number of positive entries of x (ReduceSum of a cast compare), on the C target."""
    nodes = [oh.make_node("Constant", [], ["zero"], value=nh.from_array(np.float32(0))),
             oh.make_node("Greater", ["x", "zero"], ["pos"]),
             oh.make_node("Cast", ["pos"], ["pos_i"], to=I64),
             oh.make_node("ReduceSum", ["pos_i"], ["M"], keepdims=0),
             oh.make_node("Constant", [], ["c"], value=nh.from_array(np.array(True))),
             _slice_body_loop(start_off=1, width=2)]
    model = _model(nodes, [_vi("x", ["n"]), _vi("table", [8]), _vi("acc0", [2])],
                   [_vi("acc_T", [2]), _vi("ys", ["T", 2])])
    m, f = _compiled(model, target="c")
    table, acc0 = np.arange(8, dtype="float32") ** 2, np.ones(2, "float32")
    for x in ([1, -1, 2], [3, 2, 1, 5, -4, 6]):
        _check(model, f, m, {"x": np.array(x, "float32"), "table": table, "acc0": acc0})


def test_slice_in_a_loop_body_clamped_by_onnx_fails_instead_of_returning_a_wrong_value():
    """table[i + 4 : i + 6] on 6 entries: ONNX clamps it to one entry at i = 1 (and the Add then
    broadcasts differently); graphc's gather of fixed length raises instead."""
    model = _model([_slice_body_loop(start_off=4, width=2)],
                   [_vi("M", [], I64), _vi("c", [], B), _vi("table", [6]), _vi("acc0", [2])],
                   [_vi("acc_T", [2]), _vi("ys", ["T", 2])])
    m, f = _compiled(model)
    table, acc0 = np.arange(6, dtype="float32"), np.zeros(2, "float32")
    np.testing.assert_allclose(f(np.int64(1), np.array(True), table, acc0)[0], [4, 5])
    with pytest.raises(Exception, match="index out of range"):
        f(np.int64(2), np.array(True), table, acc0)


def test_gather_by_the_iteration_number_with_negative_indices():
    """acc += table[-1 - i] (Gather with a run-time scalar index inside the body)."""
    body = oh.make_graph(
        [oh.make_node("Identity", ["cond_in"], ["cond_out"]),
         oh.make_node("Neg", ["i"], ["ni"]),
         oh.make_node("Constant", [], ["one"], value=nh.from_array(np.int64(1))),
         oh.make_node("Sub", ["ni", "one"], ["k"]),
         oh.make_node("Gather", ["table", "k"], ["row"], axis=0),
         oh.make_node("Add", ["acc_in", "row"], ["acc_out"])],
        "body", [_vi("i", [], I64), _vi("cond_in", [], B), _vi("acc_in", [2])],
        [_vi("cond_out", [], B), _vi("acc_out", [2])])
    loop = oh.make_node("Loop", ["M", "", "acc0"], ["acc_T"], body=body)
    model = _model([loop], [_vi("M", [], I64), _vi("table", [4, 2]), _vi("acc0", [2])],
                   [_vi("acc_T", [2])])
    m, f = _compiled(model)
    table = np.arange(8, dtype="float32").reshape(4, 2)
    for trip in (1, 4):
        _check(model, f, m, {"M": np.array(trip, "int64"), "table": table, "acc0": np.zeros(2, "float32")})


def test_while_loops_and_nested_run_time_trip_counts_are_refused_naming_the_node():
    body = oh.make_graph(
        [oh.make_node("ReduceSum", ["acc_in"], ["s"], keepdims=0),
         oh.make_node("Constant", [], ["lim"], value=nh.from_array(np.float32(10))),
         oh.make_node("Less", ["s", "lim"], ["cond_out"]),
         oh.make_node("Identity", ["acc_in"], ["acc_out"])],
        "body", [_vi("i", [], I64), _vi("cond_in", [], B), _vi("acc_in", [2])],
        [_vi("cond_out", [], B), _vi("acc_out", [2])])
    loop = oh.make_node("Loop", ["M", "", "acc0"], ["acc_T"], body=body, name="the_while")
    model = _model([loop], [_vi("M", [], I64), _vi("acc0", [2])], [_vi("acc_T", [2])])
    with pytest.raises(OnnxUnsupported, match=r"Loop \(opset 17\) node 'the_while'.*condition "
                                              r"output is computed at run time"):
        GO.load(model)
    # a run-time trip count inside another loop's body
    inner = oh.make_node("Loop", ["i", "", "acc_in"], ["acc_out"], name="inner", body=oh.make_graph(
        [oh.make_node("Identity", ["c_in"], ["c_out"]), oh.make_node("Identity", ["a_in"], ["a_out"])],
        "inner_body", [_vi("j", [], I64), _vi("c_in", [], B), _vi("a_in", [2])],
        [_vi("c_out", [], B), _vi("a_out", [2])]))
    outer_body = oh.make_graph([oh.make_node("Identity", ["cond_in"], ["cond_out"]), inner],
                               "outer_body", [_vi("i", [], I64), _vi("cond_in", [], B),
                                              _vi("acc_in", [2])],
                               [_vi("cond_out", [], B), _vi("acc_out", [2])])
    outer = oh.make_node("Loop", ["M", "", "acc0"], ["acc_T"], body=outer_body, name="outer")
    model = _model([outer], [_vi("M", [], I64), _vi("acc0", [2])], [_vi("acc_T", [2])])
    with pytest.raises(OnnxUnsupported, match="inside an enclosing loop's body"):
        GO.load(model)


def _slice_model(with_steps=True, n=7):
    ins = ["x", "starts", "ends", "axes"] + (["steps"] if with_steps else [])
    node = oh.make_node("Slice", ins, ["y"])
    inputs = [_vi("x", [n, 3]), _vi("starts", [1], I64), _vi("ends", [1], I64)]
    inputs += [_vi("steps", [1], I64)] if with_steps else []
    return _model([node], inputs, [_vi("y", ["k", 3])],
                  [nh.from_array(np.array([0], "int64"), "axes")])


BOUNDS = [(1, 5, 1), (-3, 100, 1), (-100, 3, 1), (5, 2, 1), (6, -8, -1), (-1, -100, -2),
          (-100, -100, -1), (100, 0, -3), (2, 2, 1), (0, 7, 3), (9, 10, 1)]


@pytest.mark.parametrize("target", ["py", "c"])
def test_slice_with_run_time_bounds_and_steps_clamps_as_onnx(target):
    """Bounds and step given at the call, every clamping case of ONNX's spec (negative, past
    either end, negative steps, empty); one compiled function."""
    model = _slice_model()
    m, f = _compiled(model, target)
    x = np.arange(21, dtype="float32").reshape(7, 3)
    for s, e, st in BOUNDS:
        feeds = {"x": x, "starts": np.array([s], "int64"), "ends": np.array([e], "int64"),
                 "steps": np.array([st], "int64")}
        _check(model, f, m, feeds)


def test_slice_bounds_computed_from_data():
    """ends = argmax-free data bound: the number of positive entries of v, then x[:ends]."""
    nodes = [oh.make_node("Constant", [], ["zero"], value=nh.from_array(np.float32(0))),
             oh.make_node("Greater", ["v", "zero"], ["pos"]),
             oh.make_node("Cast", ["pos"], ["pos_i"], to=I64),
             oh.make_node("ReduceSum", ["pos_i"], ["ends"], keepdims=1),
             oh.make_node("Constant", [], ["starts"], value=nh.from_array(np.array([0], "int64"))),
             oh.make_node("Slice", ["x", "starts", "ends"], ["y"]),
             oh.make_node("Relu", ["y"], ["r"])]
    model = _model(nodes, [_vi("x", [5]), _vi("v", [4])], [_vi("r", ["k"])])
    m, f = _compiled(model)
    x = np.array([1, -2, 3, -4, 5], "float32")
    for v in ([1, 1, -1, 0], [-1, -1, -1, -1], [2, 2, 2, 2]):
        _check(model, f, m, {"x": x, "v": np.array(v, "float32")})


def test_training_through_a_loop_with_a_run_time_trip_count():
    """G.grad back-propagates through the scan of a Loop whose trip count is an input: the
    gradient of the weight equals finite differences, for two trip counts of one function."""
    body = oh.make_graph(
        [oh.make_node("Identity", ["cond_in"], ["cond_out"]),
         oh.make_node("MatMul", ["h_in", "W"], ["hw"]),
         oh.make_node("Tanh", ["hw"], ["h_out"])],
        "body", [_vi("i", [], I64), _vi("cond_in", [], B), _vi("h_in", [3], TensorProto.DOUBLE)],
        [_vi("cond_out", [], B), _vi("h_out", [3], TensorProto.DOUBLE)])
    loop = oh.make_node("Loop", ["M", "", "h0"], ["h_T"], body=body)
    w = np.random.default_rng(4).standard_normal((3, 3)) * 0.6
    model = _model([loop], [_vi("M", [], I64), _vi("h0", [3], TensorProto.DOUBLE)],
                   [_vi("h_T", [3], TensorProto.DOUBLE)], [nh.from_array(w, "W")])
    m = GO.load(model)
    W = m.params["W"]
    loss = m.outputs[0].sum()
    f = G.function(m.inputs, [loss] + G.grad(loss, [W]), backend="py")
    h0 = np.array([0.5, -0.3, 0.8])
    for trip in (1, 4):
        _, gw = f(np.array(trip, "int64"), h0)
        num = np.zeros_like(w)
        for idx in np.ndindex(*w.shape):
            vals = []
            for eps in (1e-6, -1e-6):
                wp = w.copy()
                wp[idx] += eps
                W.set_value(wp)
                vals.append(f(np.array(trip, "int64"), h0)[0])
            num[idx] = (vals[0] - vals[1]) / 2e-6
        W.set_value(w)
        np.testing.assert_allclose(gw, num, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("op,dtype,want", [("ReduceMax", "float32", -np.inf), ("ReduceMin", "float64", np.inf),
                                           ("ReduceMax", "int64", np.iinfo("int64").min),
                                           ("ReduceMin", "int32", np.iinfo("int32").max)])
def test_max_and_min_over_an_empty_axis_are_the_dtypes_extremes(op, dtype, want):
    """ONNX's rule (graphc's own max refuses an empty axis, as numpy's does): the reduced axis is
    empty, the others keep their extent, with keepdims and without; compiled as the reference."""
    from onnx import TensorProto, helper
    elem = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE,
            "int64": TensorProto.INT64, "int32": TensorProto.INT32}[dtype]
    for keep, out_shape in ((1, [3, 1, 4]), (0, [3, 4])):
        graph = helper.make_graph(
            [helper.make_node(op, ["x", "axes"], ["y"], keepdims=keep)], "g",
            [helper.make_tensor_value_info("x", elem, [3, 0, 4])],
            [helper.make_tensor_value_info("y", elem, out_shape)],
            [helper.make_tensor("axes", TensorProto.INT64, [1], [1])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
        m = GO.load(model)
        x = np.zeros((3, 0, 4), dtype)
        for backend in ("c", "py"):
            got = G.function(m.inputs, m.outputs[0], backend=backend)(x)
            assert got.shape == tuple(out_shape) and got.dtype == np.dtype(dtype)
            assert np.all(got == want), (backend, got)


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
def test_select_last_index_takes_the_last_of_tied_extremes(op):
    """Ties in every row (the first and last extreme differ), keepdims both ways, every axis, an
    axis of symbolic length; compiled and the reference."""
    x = np.array([[[3, 1, 3, 0], [0, 0, 2, 2], [5, 5, 5, 5]],
                  [[1, 4, 4, 1], [7, 0, 7, 0], [2, 9, 9, 2]]], "float32")
    pick = np.argmax if op == "ArgMax" else np.argmin
    for axis in range(3):
        for keep in (0, 1):
            node = oh.make_node(op, ["x"], ["y"], axis=axis, keepdims=keep, select_last_index=1)
            out = list(x.shape) if keep else [d for i, d in enumerate(x.shape) if i != axis]
            if keep:
                out[axis] = 1
            graph = oh.make_graph([node], "g", [oh.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                                  [oh.make_tensor_value_info("y", TensorProto.INT64, out)])
            m = GO.load(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)]))
            flipped = np.flip(x, axis)
            want = x.shape[axis] - 1 - pick(flipped, axis=axis)
            want = np.expand_dims(want, axis) if keep else want
            for backend in ("c", "py"):
                got = G.function(m.inputs, m.outputs[0], backend=backend)(x)
                np.testing.assert_array_equal(got, want)
    # an axis of symbolic length: the index counted back from its length at the call
    node = oh.make_node(op, ["x"], ["y"], axis=1, select_last_index=1)
    graph = oh.make_graph([node], "g", [oh.make_tensor_value_info("x", TensorProto.FLOAT, [2, "n"])],
                          [oh.make_tensor_value_info("y", TensorProto.INT64, [2, 1])])
    m = GO.load(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)]))
    rows = x[0, :2]
    for backend in ("c", "py"):
        f = G.function(m.inputs, m.outputs[0], backend=backend)
        for n in (4, 3, 1):
            xx = np.ascontiguousarray(rows[:, :n])
            want = (n - 1 - pick(xx[:, ::-1], axis=1))[:, None]
            np.testing.assert_array_equal(f(xx), want)
