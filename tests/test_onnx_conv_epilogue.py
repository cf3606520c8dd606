"""The conv epilogue (graphc/codegen/conv_epilogue.py, templates/c/_conv_epilogue.j2): bias,
residual add and ReLU after a blocked convolution run in its stores. Which graphs fold (program
level), the folded kernel against the unfolded one bit for bit and against the py reference
(float32/float64, rows that end in a part vector, channels off the 4-channel tile, strides, NaN and
infinities, a symbolic batch), a training step whose forward folds, and imported ONNX convs
against onnxruntime."""
import numpy as np
import pytest

import graphc as G
from graphc.errors import CompileError
from program_cases import program_of


def _conv_kernels(program):
    return [k for k in program.kernels if k.kind.startswith("conv")]


def _net(form, dtype="float32", stride=(1, 1), padding=(1, 1), co=6, c=3, k=3):
    """x, the parameters and the output of `form` after conv(x, w); r: a residual input of the
    conv output's shape where the form adds one."""
    x = G.tensor4("x", dtype=dtype)
    rng = np.random.default_rng(1)
    w = G.shared(rng.standard_normal((co, c, k, k)).astype(dtype), name="w")
    b = G.shared(rng.standard_normal(co).astype(dtype), name="b")
    b2 = G.shared(rng.standard_normal(co).astype(dtype), name="b2")
    r = G.tensor4("r", dtype=dtype)
    y = G.conv2d(x, w, stride=stride, padding=padding)
    bias = b.dimshuffle("x", 0, "x", "x")
    out = {"bias_relu": lambda: G.relu(y + bias),
           "bias": lambda: y + bias,
           "relu": lambda: G.relu(y),
           "bias_residual_relu": lambda: G.relu((y + bias) + r),
           "residual_bias_relu": lambda: G.relu((y + r) + bias),
           "residual_first": lambda: G.relu(r + (y + bias)),
           "residual": lambda: y + r,
           # a projection shortcut: its conv's output and batch norm's bias
           "bias_shortcut_relu": lambda: G.relu((y + bias) + (r + b2.dimshuffle("x", 0, "x", "x"))),
           }[form]()
    ins = [x, r] if "residual" in form or "shortcut" in form else [x]
    return ins, out, w, b


FOLDS = {"bias_relu": ["bias", "relu"], "bias": ["bias"], "relu": ["relu"],
         "bias_residual_relu": ["bias", "residual", "relu"],
         "residual_bias_relu": ["residual", "bias", "relu"], "residual": ["residual"],
         "bias_shortcut_relu": ["bias", "residual", "residual_bias", "relu"]}


@pytest.mark.parametrize("form", sorted(FOLDS))
def test_the_elementwise_kernel_after_a_blocked_conv_folds_into_its_stores(form):
    ins, out, _, _ = _net(form)
    p = program_of(ins, [out])
    assert [k.kind for k in p.kernels] == ["conv_blocked"]
    conv = p.kernels[0]
    assert conv.params["epilogue"] == FOLDS[form]
    assert len(conv.inputs) == 2 + sum(s != "relu" for s in FOLDS[form])
    for step, operand in zip([s for s in FOLDS[form] if s != "relu"], conv.inputs[2:]):
        assert len(operand.shape) == (4 if step == "residual" else 1)  # (its shared or input)
    assert conv.outputs == p.output_buffers
    assert "+ relu" in conv.label or "relu" not in FOLDS[form]


def test_what_does_not_fold(monkeypatch):
    x = G.tensor4("x")
    w = G.shared(np.ones((8, 3, 3, 3), "float32"), name="w")
    y = G.conv2d(x, w, padding=(1, 1))
    # the conv's output is read twice, or is itself an output
    assert len(program_of([x], [G.relu(y), y.sum()]).kernels) == 3
    assert len(program_of([x], [G.relu(y), y]).kernels) == 2
    # an operand per pixel, not per channel; a scalar body that is not a sum + relu
    plane = G.shared(np.ones((1, 1, 5, 5), "float32"), name="plane")
    assert len(program_of([x], [G.relu(y + plane)]).kernels) == 2
    assert len(program_of([x], [G.tanh(y)]).kernels) == 2
    assert len(program_of([x], [y * 2.0]).kernels) == 2
    # the one reader is not elementwise (a pool, a reduction)
    assert [k.kind for k in program_of([x], [G.max_pool2d(y, (2, 2))]).kernels] == \
        ["conv_blocked", "pool_max_value"]
    assert len(program_of([x], [y.sum(axis=1)]).kernels) == 2
    # switched off (as bench/onnx_inference.py's "before" measurement does)
    monkeypatch.setenv("GRAPHC_CONV_EPILOGUE", "0")
    assert len(program_of([x], [G.relu(y)]).kernels) == 2
    monkeypatch.setenv("GRAPHC_CONV_EPILOGUE", "yes")
    with pytest.raises(CompileError, match="GRAPHC_CONV_EPILOGUE must be 0 or 1"):
        program_of([x], [G.relu(y)])


def _assert_same_values(a, b):
    """Equal bit for bit but for NaN payloads (which of two NaN operands an add keeps is the
    operand order gcc picks, in either kernel); -0.0 is not 0.0."""
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_array_equal(a, b)
    assert np.array_equal(np.signbit(a) | np.isnan(a), np.signbit(b) | np.isnan(b))


def _special(rng, shape, dtype):
    v = rng.standard_normal(shape).astype(dtype)
    flat = v.reshape(-1)
    flat[rng.random(flat.size) < 0.02] = np.nan
    flat[rng.random(flat.size) < 0.02] = np.inf
    flat[rng.random(flat.size) < 0.02] = -np.inf
    flat[rng.random(flat.size) < 0.05] = -0.0
    return v


# (form, stride, padding, input (C, H, W), C_out): rows of 11 = 8 + 3 lanes, 7 channels (a part
# tile), a strided conv, a 5x5 valid conv (LeNet's conv2), a 1-pixel-wide output
CASES = [("bias_relu", (1, 1), (1, 1), (3, 11, 11), 7),
         ("bias_residual_relu", (2, 2), (1, 1), (4, 13, 9), 6),
         ("residual_bias_relu", (1, 1), (0, 0), (6, 14, 14), 16),
         ("residual_first", (1, 1), (1, 1), (2, 5, 1), 5),
         ("relu", (1, 1), (2, 2), (1, 12, 12), 6),
         ("bias_shortcut_relu", (1, 1), (1, 1), (5, 8, 17), 9)]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # (the reference's inf - inf)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] + str(c[3]) for c in CASES])
def test_the_folded_conv_gives_the_unfolded_ones_bits(case, dtype, monkeypatch):
    form, stride, padding, (c, h, wd), co = case
    k = 5 if padding == (0, 0) else 3
    ins, out, w, b = _net(form, dtype, stride, padding, co=co, c=c, k=k)
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "blocked")
    folded = G.function(ins, out)
    assert _conv_kernels(folded.program.program)[0].params["epilogue"]
    monkeypatch.setenv("GRAPHC_CONV_EPILOGUE", "0")
    plain = G.function(ins, out)
    assert not _conv_kernels(plain.program.program)[0].params["epilogue"]
    reference = G.function(ins, out, backend="py")
    rng = np.random.default_rng(c * h)
    b.set_value(_special(rng, (co,), dtype))
    for n in (1, 3):
        xv = _special(rng, (n, c, h, wd), dtype)
        args = [xv]
        if len(ins) == 2:
            ho = (h + 2 * padding[0] - k) // stride[0] + 1
            wo = (wd + 2 * padding[1] - k) // stride[1] + 1
            args.append(_special(rng, (n, co, ho, wo), dtype))
        got = folded(*args)
        assert got.dtype == np.dtype(dtype)
        _assert_same_values(got, plain(*args))
        want = reference(*args)
        tol = 1e-5 if dtype == "float32" else 1e-12
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.nanmax(np.abs(
            np.where(np.isfinite(want), want, 0))))


def test_a_folded_conv_on_threads_and_a_symbolic_batch(monkeypatch):
    """Large enough for the conv's OpenMP region; one function at several batches."""
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    ins, out, w, b = _net("bias_residual_relu", "float32", co=8, c=8)
    f = G.function(ins, out)
    assert _conv_kernels(f.program.program)[0].params["epilogue"] == ["bias", "residual", "relu"]
    reference = G.function(ins, out, backend="py")
    rng = np.random.default_rng(5)
    for n in (64, 1, 5):
        args = [rng.standard_normal((n, 8, 16, 16)).astype("float32") for _ in range(2)]
        np.testing.assert_allclose(f(*args), reference(*args), rtol=1e-5, atol=1e-5)


def test_a_training_step_folds_its_forward_and_keeps_its_gradients(monkeypatch):
    """Two conv layers with bias, ReLU and a residual: the forward convs fold (the backward reads
    the ReLU outputs), and the loss and every gradient are the unfolded step's to the bit and
    agree with finite differences."""
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "blocked")
    rng = np.random.default_rng(7)
    x = G.tensor4("x", dtype="float64")
    w1 = G.shared(rng.standard_normal((4, 2, 3, 3)) * 0.5, name="w1")
    b1 = G.shared(rng.standard_normal(4) * 0.1, name="b1")
    w2 = G.shared(rng.standard_normal((4, 4, 3, 3)) * 0.5, name="w2")
    b2 = G.shared(rng.standard_normal(4) * 0.1, name="b2")
    h = G.relu(G.conv2d(x, w1, padding=(1, 1)) + b1.dimshuffle("x", 0, "x", "x"))
    y = G.relu(G.conv2d(h, w2, padding=(1, 1)) + b2.dimshuffle("x", 0, "x", "x") + h)
    loss = (G.max_pool2d(y, (2, 2)) ** 2).sum()
    params = [w1, b1, w2, b2]
    outs = [loss] + G.grad(loss, params)
    f = G.function([x], outs)
    folded = [k.params["epilogue"] for k in _conv_kernels(f.program.program)
              if k.kind == "conv_blocked" and k.params["epilogue"]]
    assert ["bias", "relu"] in folded and len(folded) == 2
    monkeypatch.setenv("GRAPHC_CONV_EPILOGUE", "0")
    plain = G.function([x], outs)
    xv = rng.standard_normal((2, 2, 7, 9))
    got = f(xv)
    for a, b in zip(got, plain(xv)):
        _assert_same_values(a, b)
    lossf = G.function([x], loss, backend="py")
    eps = 1e-6
    for p, g in zip(params, got[1:]):
        v = p.get_value()
        idx = tuple(rng.integers(0, s) for s in v.shape)
        up, down = v.copy(), v.copy()
        up[idx] += eps
        down[idx] -= eps
        p.set_value(up)
        lp = lossf(xv)
        p.set_value(down)
        lm = lossf(xv)
        p.set_value(v)
        np.testing.assert_allclose(g[idx], (lp - lm) / (2 * eps), rtol=1e-5, atol=1e-7)


# -- imported models ------------------------------------------------------------------------------

def _conv_model(dtype, residual):
    """Conv (with B) -> [Add residual] -> Relu, as PyTorch exports a conv + batch norm + ReLU
    (float32 checked against onnxruntime, float64 against onnx's reference evaluator)."""
    from onnx import TensorProto, helper as oh, numpy_helper as nh
    elem = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE}[dtype]
    rng = np.random.default_rng(2)
    inits = [nh.from_array(rng.standard_normal((6, 3, 3, 3)).astype(dtype), "w"),
             nh.from_array(rng.standard_normal(6).astype(dtype), "b")]
    nodes = [oh.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1])]
    ins = [oh.make_tensor_value_info("x", elem, ["n", 3, 10, 13])]
    if residual:
        nodes.append(oh.make_node("Add", ["c", "r"], ["s"]))
        ins.append(oh.make_tensor_value_info("r", elem, ["n", 6, 10, 13]))
    nodes.append(oh.make_node("Relu", ["s" if residual else "c"], ["y"]))
    g = oh.make_graph(nodes, "g", ins, [oh.make_tensor_value_info("y", elem, ["n", 6, 10, 13])],
                      initializer=inits)
    return oh.make_model(g, opset_imports=[oh.make_opsetid("", 17)])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("residual", [False, True])
def test_an_imported_conv_bias_residual_relu_folds_and_matches_onnxruntime(dtype, residual,
                                                                           monkeypatch):
    M = pytest.importorskip("onnx_models")
    GO = pytest.importorskip("graphc.onnx")
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "blocked")
    model = _conv_model(dtype, residual)
    m = GO.load(model)
    f = G.function(m.inputs, m.outputs[0])
    conv, = _conv_kernels(f.program.program)
    assert conv.params["epilogue"] == (["bias", "residual", "relu"] if residual
                                       else ["bias", "relu"])
    rng = np.random.default_rng(4)
    feeds = {"x": rng.standard_normal((3, 3, 10, 13)).astype(dtype)}
    if residual:
        feeds["r"] = rng.standard_normal((3, 6, 10, 13)).astype(dtype)
    if dtype == "float32":
        want = M.reference_run(model, feeds)[0]
    else:  # (onnxruntime has no double Conv)
        from onnx.reference import ReferenceEvaluator
        want = ReferenceEvaluator(model).run(None, feeds)[0]
    np.testing.assert_allclose(f(*feeds.values()), want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_the_imported_resnet_style_net_folds_its_epilogues_and_matches_onnxruntime():
    """The model bench/onnx_inference.py times, its batch norms given statistics (so the folded
    conv biases are not zero): every blocked conv stores through its epilogue, the projection
    shortcuts' outputs and biases included."""
    torch = pytest.importorskip("torch", reason="PyTorch exports the model (pip install 'graphc[bench]')")
    M = pytest.importorskip("onnx_models")
    import onnx
    import torch_models as TM
    GO = pytest.importorskip("graphc.onnx")
    torch.manual_seed(0)
    net = TM.ResNetish()
    for mod in net.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.5, 0.5)
    model = onnx.load_from_string(TM.export(net, (2, 3, 32, 32)))
    m = GO.load(model)
    f = G.function(m.inputs, m.outputs[0])
    blocked = [k for k in f.program.program.kernels if k.kind == "conv_blocked"]
    # the seven 3x3 convs carry their epilogues; the two strided 1x1 shortcuts (blocked too) none:
    # their batch norm's shift is the residual_bias of the conv that adds them
    square = [k for k in blocked if k.params["KH"] == 3]
    shortcuts = [k for k in blocked if k.params["KH"] == 1]
    assert len(square) == 7 and all(k.params["epilogue"] for k in square)
    assert len(shortcuts) == 2 and not any(k.params["epilogue"] for k in shortcuts)
    steps = [k.params["epilogue"] for k in square]
    assert ["bias", "residual", "relu"] in steps
    assert steps.count(["bias", "residual", "residual_bias", "relu"]) == 2
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype("float32")
    want = M.reference_run(model, {"x": x})[0]
    np.testing.assert_allclose(f(x), want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))
