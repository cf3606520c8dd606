"""graphc.nn: fillers, layers vs numpy, the Net container (sharing, features, errors), losses,
PNG writer. Most graphs run on the py backend (numpy references of the same graph) to keep the
suite fast; the C backend runs the CNN layers and the BatchNorm net once."""
import numpy as np
import pytest

import graphc as G
from graphc import nn
from graphc.nn import losses as L

PY = {"backend": "py"}
HAVE_CNN = all(hasattr(G, n) for n in ("conv2d", "max_pool2d", "avg_pool2d"))
needs_cnn = pytest.mark.skipif(not HAVE_CNN, reason="graphc has no conv2d/pooling ops yet")


def mlp_net(seed=0, n_in=6, n_hidden=5, n_out=3):
    b = G.dim("batch")
    net = nn.Net("mlp", seed=seed)
    net.input("data", (b, n_in))
    net.input("label", (b,), "int64")
    net.add(nn.InnerProduct("ip1", n_hidden), bottom="data")
    net.add(nn.ReLU("relu1"))
    net.add(nn.InnerProduct("ip2", n_out))
    net.add(nn.SoftmaxWithLoss("loss", bottom=["ip2", "label"]))
    net.add(nn.Accuracy("accuracy", bottom=["ip2", "label"], phase="test"))
    return net


# ---- fillers -----------------------------------------------------------------------------------
def test_fillers_distributions_match_caffe():
    rng = np.random.RandomState(0)
    shape = (64, 32, 3, 3)          # Caffe blob: fan_in = 32*9, fan_out = 64*9
    fan_in, fan_out = 32 * 9, 64 * 9
    assert np.all(nn.constant(0.25)(shape) == np.float32(0.25))
    g = nn.gaussian(std=0.01)(shape, rng)
    assert g.dtype == np.float32 and abs(g.std() - 0.01) < 5e-4 and abs(g.mean()) < 5e-4
    u = nn.uniform(-2, 3)(shape, rng)
    assert u.min() >= -2 and u.max() < 3 and abs(u.mean() - 0.5) < 0.05
    x = nn.xavier()(shape, rng)
    a = np.sqrt(3.0 / fan_in)
    assert x.max() <= a and x.min() >= -a and x.max() > 0.95 * a
    x_out = nn.xavier("fan_out")(shape, rng)
    assert np.abs(x_out).max() <= np.sqrt(3.0 / fan_out)
    x_avg = nn.xavier("average")(shape, rng)
    assert np.abs(x_avg).max() <= np.sqrt(3.0 / ((fan_in + fan_out) / 2))
    m = nn.msra()(shape, rng)
    assert abs(m.std() - np.sqrt(2.0 / fan_in)) < 0.01 * np.sqrt(2.0 / fan_in) * 5
    # explicit fans override the (num_output, ...) convention
    w = nn.xavier()((100, 10), rng, fan_in=100, fan_out=10)
    assert np.abs(w).max() <= np.sqrt(3.0 / 100)


def test_fillers_seeded_and_by_name():
    assert np.array_equal(nn.gaussian()((4, 4), 7), nn.gaussian()((4, 4), 7))
    assert isinstance(nn.get_filler("xavier"), nn.xavier)
    assert isinstance(nn.get_filler({"type": "gaussian", "std": 0.1}), nn.gaussian)
    assert nn.get_filler(0.5)((2,))[0] == np.float32(0.5)
    with pytest.raises(ValueError, match="unknown filler"):
        nn.get_filler("zeros")
    with pytest.raises(ValueError, match="variance_norm"):
        nn.xavier("fan_sideways")
    # a net's parameter init depends on (seed, parameter name) only, not on the other layers
    a, b = mlp_net(seed=3), mlp_net(seed=3, n_out=4)
    assert np.array_equal(a.params["ip1.W"].get_value(), b.params["ip1.W"].get_value())
    assert not np.array_equal(a.params["ip1.W"].get_value(), mlp_net(seed=4).params["ip1.W"].get_value())


# ---- layers vs numpy ---------------------------------------------------------------------------
def _run(net, outputs, feed, phase="train", **kw):
    f = net.function(outputs, phase, **{**PY, **kw})
    return f(**{k: feed[k] for k in f.input_names})


def test_inner_product_activations_and_features():
    net = mlp_net()
    rng = np.random.RandomState(0)
    x = rng.randn(4, 6).astype("float32")
    W1, b1 = net.params["ip1.W"].get_value(), net.params["ip1.b"].get_value()
    assert W1.shape == (6, 5) and np.all(b1 == 0)
    h = _run(net, "relu1", {"data": x}, "test")          # features of an inner layer, by name
    np.testing.assert_allclose(h, np.maximum(x @ W1 + b1, 0), rtol=1e-5, atol=1e-6)
    assert net.inputs_for(["relu1"]) == ["data"]
    # activations
    b = G.dim("b")
    n2 = nn.Net("act")
    n2.input("x", (b, 3))
    n2.add(nn.Sigmoid("sig"), bottom="x")
    n2.add(nn.TanH("tanh"), bottom="x")
    n2.add(nn.ReLU("leaky", negative_slope=0.1), bottom="x")
    xv = np.array([[-2.0, 0.5, 3.0]], "float32")
    s, t, lk = _run(n2, ["sig", "tanh", "leaky"], {"x": xv})
    np.testing.assert_allclose(s, 1 / (1 + np.exp(-xv)), rtol=1e-6)
    np.testing.assert_allclose(t, np.tanh(xv), rtol=1e-6)
    np.testing.assert_allclose(lk, np.where(xv > 0, xv, 0.1 * xv), rtol=1e-6)


def test_inner_product_flattens_nchw():
    net = nn.Net("flat")
    net.input("x", (G.dim("b"), 2, 3, 4))
    net.add(nn.InnerProduct("fc", 7), bottom="x")
    assert net.params["fc.W"].static_shape == (24, 7)
    x = np.random.RandomState(1).randn(3, 2, 3, 4).astype("float32")
    y = _run(net, "fc", {"x": x})
    np.testing.assert_allclose(y, x.reshape(3, 24) @ net.params["fc.W"].get_value(), rtol=1e-5,
                               atol=1e-6)


def test_losses_match_caffe_formulas():
    rng = np.random.RandomState(2)
    z = rng.randn(5, 4).astype("float32")
    lab = np.array([0, 3, 1, 1, 2])
    t = rng.rand(5, 4).astype("float32")
    b = G.dim("b")
    zv, lv, tv = G.tensor("z", (b, 4)), G.tensor("l", (b,), "int64"), G.tensor("t", (b, 4))
    f = G.function([zv, lv, tv], [L.softmax_cross_entropy(zv, lv), L.sigmoid_cross_entropy(zv, tv),
                                  L.euclidean(zv, tv), L.hinge(zv, lv), L.hinge(zv, lv, norm=2),
                                  L.accuracy(zv, lv), L.accuracy(zv, lv, top_k=2),
                                  L.softmax_cross_entropy(zv, lv, ignore_label=1)], **PY)
    sce, sig, euc, h1, h2, acc, acc2, sce_ign = f(z, lab, t)
    logp = z - z.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    per = -logp[np.arange(5), lab]
    np.testing.assert_allclose(sce, per.mean(), rtol=1e-5)
    np.testing.assert_allclose(sce_ign, per[lab != 1].mean(), rtol=1e-5)
    p = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(sig, -(t * np.log(p) + (1 - t) * np.log(1 - p)).sum() / 5, rtol=1e-5)
    np.testing.assert_allclose(euc, ((z - t) ** 2).sum() / (2 * 5), rtol=1e-5)
    sign = -np.ones_like(z)
    sign[np.arange(5), lab] = 1
    margin = np.maximum(0, 1 - sign * z)
    np.testing.assert_allclose(h1, margin.sum() / 5, rtol=1e-5)
    np.testing.assert_allclose(h2, (margin ** 2).sum() / 5, rtol=1e-5)
    np.testing.assert_allclose(acc, (z.argmax(1) == lab).mean())
    top2 = np.argsort(-z, axis=1)[:, :2]
    np.testing.assert_allclose(acc2, np.mean([lab[i] in top2[i] for i in range(5)]))


def test_concat_eltwise_flatten_softmax():
    b = G.dim("b")
    net = nn.Net("misc")
    net.input("a", (b, 2))
    net.input("c", (b, 2))
    net.add(nn.Concat("cat", bottom=["a", "c"]))
    net.add(nn.Eltwise("sum", bottom=["a", "c"], coeff=[1.0, -2.0]))
    net.add(nn.Eltwise("max", bottom=["a", "c"], operation="max"))
    net.add(nn.Softmax("sm", bottom="cat"))
    a = np.array([[1.0, 2.0]], "float32")
    c = np.array([[3.0, -1.0]], "float32")
    cat, s, mx, sm = _run(net, ["cat", "sum", "max", "sm"], {"a": a, "c": c})
    assert np.array_equal(cat, [[1, 2, 3, -1]])
    np.testing.assert_allclose(s, a - 2 * c)
    np.testing.assert_allclose(mx, np.maximum(a, c))
    np.testing.assert_allclose(sm.sum(), 1.0, rtol=1e-6)


# ---- the Net container ------------------------------------------------------------------------
def test_weight_sharing_accumulates_gradient():
    """Two layers naming the same parameter share one shared variable; its gradient is the sum
    of the gradients through both uses (Caffe's shared param blobs)."""
    b = G.dim("b")
    net = nn.Net("siamese", seed=0)
    net.input("x1", (b, 3))
    net.input("x2", (b, 3))
    shared = [{"name": "w_shared"}, {"name": "b_shared"}]
    net.add(nn.InnerProduct("fc_a", 2, param=shared), bottom="x1")
    net.add(nn.InnerProduct("fc_b", 2, param=shared), bottom="x2")
    assert list(net.params) == ["w_shared", "b_shared"]
    assert net.param_owners["w_shared"] == ["fc_a", "fc_b"]
    assert net["fc_a"] is not net["fc_b"]
    cost = G.sum(net["fc_a"]) + 2.0 * G.sum(net["fc_b"])
    W = net.params["w_shared"]
    gw = G.function([net.inputs["x1"], net.inputs["x2"]], G.grad(cost, W), **PY)
    x1 = np.arange(6, dtype="float32").reshape(2, 3)
    x2 = np.ones((2, 3), "float32")
    expected = np.outer(x1.sum(0), np.ones(2)) + 2.0 * np.outer(x2.sum(0), np.ones(2))
    np.testing.assert_allclose(gw(x1, x2), expected, rtol=1e-6)
    # sharing a name with an incompatible shape fails, naming both layers and both shapes
    with pytest.raises(G.GraphcShapeError, match=r"w_shared.*\(3, 2\).*fc_a.*\(3, 5\)"):
        net.add(nn.InnerProduct("fc_c", 5, param=shared), bottom="x1")
    assert "fc_c" not in net.layers           # a failed add leaves the net as it was


def test_param_specs_multipliers_and_freeze():
    net = nn.Net("m")
    net.input("x", (G.dim("b"), 4))
    net.add(nn.InnerProduct("ip", 3, param=[{"lr_mult": 1, "decay_mult": 1},
                                            {"lr_mult": 2, "decay_mult": 0}]), bottom="x")
    net.add(nn.BatchNorm("bn"))
    assert net.lr_mult == {"ip.W": 1.0, "ip.b": 2.0, "bn.gamma": 1.0, "bn.beta": 1.0}
    assert net.decay_mult["ip.b"] == 0.0 and net.decay_mult["bn.gamma"] == 0.0
    net.freeze("ip")
    assert net.lr_mult["ip.W"] == 0.0 and net.lr_mult["ip.b"] == 0.0
    with pytest.raises(ValueError, match="unknown keys"):
        nn.ParamSpec.make({"lr": 1})


def test_loss_weights_multi_task_dag():
    b = G.dim("b")
    net = nn.Net("multitask", seed=0)
    net.input("data", (b, 4))
    net.input("label", (b,), "int64")
    net.input("target", (b, 2))
    net.add(nn.InnerProduct("trunk", 6), bottom="data")
    net.add(nn.ReLU("relu"))
    net.add(nn.InnerProduct("cls", 3), bottom="relu")
    net.add(nn.InnerProduct("reg", 2), bottom="relu")
    net.add(nn.SoftmaxWithLoss("l1", bottom=["cls", "label"]))
    net.add(nn.EuclideanLoss("l2", bottom=["reg", "target"], loss_weight=100))
    assert [(t, w) for t, w, _ in net.loss_terms()] == [("l1", 1.0), ("l2", 100.0)]
    assert net.output_names("test") == ["l1", "l2"]
    rng = np.random.RandomState(0)
    feed = {"data": rng.randn(5, 4).astype("float32"), "label": rng.randint(0, 3, 5),
            "target": rng.randn(5, 2).astype("float32")}
    f = G.function(list(net.inputs.values()), [net.loss, net["l1"], net["l2"]], **PY)
    total, l1, l2 = f(**feed)
    np.testing.assert_allclose(total, l1 + 100 * l2, rtol=1e-6)


def test_bad_layer_configs_name_the_layer_and_shapes():
    net = mlp_net()
    with pytest.raises(G.GraphcShapeError,
                       match=r"layer 'bad_loss' \(EuclideanLoss\).*ip1: \(batch, 5\).*ip2: \(batch, 3\)"):
        net.add(nn.EuclideanLoss("bad_loss", bottom=["ip1", "ip2"]))
    with pytest.raises(G.GraphcShapeError, match=r"layer 'fc_on_label' \(InnerProduct\).*label: \(batch,\) int64"):
        net.add(nn.InnerProduct("fc_on_label", 3), bottom="label")
    with pytest.raises(G.GraphcTypeError, match=r"layer 'sm' \(SoftmaxWithLoss\).*labels must be int"):
        net.add(nn.SoftmaxWithLoss("sm", bottom=["ip2", "ip2"]))
    with pytest.raises(ValueError, match=r"layer 'x' \(ReLU\): bottom 'nope' is not produced"):
        net.add(nn.ReLU("x"), bottom="nope")
    with pytest.raises(ValueError, match=r"layer 'ip9' \(InnerProduct\): num_output"):
        nn.InnerProduct("ip9", 0)
    with pytest.raises(ValueError, match="already exists"):
        net.add(nn.ReLU("relu1"), bottom="ip1")
    with pytest.raises(ValueError, match=r"layer 'drop' \(Dropout\): dropout_ratio"):
        nn.Dropout("drop", 1.5)
    with pytest.raises(ValueError, match=r"layer 'p' \(Pooling\(MAX\)\): pad"):
        nn.MaxPool2D("p", 2, pad=2)
    # the net is still usable after the failures
    assert list(net.layers) == ["ip1", "relu1", "ip2", "loss", "accuracy"]


def test_state_dict_roundtrip_and_load_report(tmp_path):
    net = mlp_net(seed=1)
    path = tmp_path / "w.npz"
    net.save(path)
    other = mlp_net(seed=2, n_out=4)           # ip2 changed shape: it keeps its initialization
    fresh_ip2 = other.params["ip2.W"].get_value()
    report = other.load(path)
    assert report.loaded == ["ip1.W", "ip1.b"]
    assert set(report.skipped) == {"ip2.W", "ip2.b"} and "shape" in report.skipped["ip2.W"]
    assert np.array_equal(other.params["ip1.W"].get_value(), net.params["ip1.W"].get_value())
    assert np.array_equal(other.params["ip2.W"].get_value(), fresh_ip2)
    with pytest.raises(ValueError, match="strict"):
        other.load(path, strict=True)


def test_standalone_layer_call():
    x = G.tensor("x", (G.dim("b"), 3))
    layer = nn.InnerProduct("fc", 2, weight_filler=nn.constant(1.0))
    y = layer(x)
    assert set(layer.params) == {"fc.W", "fc.b"}
    f = G.function([x], y, **PY)
    np.testing.assert_allclose(f(np.ones((1, 3), "float32")), [[3.0, 3.0]])


def test_batchnorm_train_and_inference_forms():
    b = G.dim("b")
    net = nn.Net("bn", seed=0)
    net.input("x", (b, 3))
    net.add(nn.BatchNorm("bn", moving_average_fraction=0.9), bottom="x")
    assert list(net.buffers) == ["bn.mean", "bn.var", "bn.factor"]
    assert net["bn"] is not net.blob("bn", "test")
    train = G.function([net.inputs["x"]], net.blob("bn", "train"), updates=net.updates)
    test = G.function([net.inputs["x"]], net.blob("bn", "test"))
    rng = np.random.RandomState(0)
    batches = [rng.randn(8, 3).astype("float32") * 3 + 1 for _ in range(2)]
    y = train(batches[0])
    m, v = batches[0].mean(0), batches[0].var(0)
    np.testing.assert_allclose(y, (batches[0] - m) / np.sqrt(v + 1e-5), rtol=1e-4, atol=1e-5)
    train(batches[1])
    # Caffe's running sums: s = f*s + 1, mean_sum = f*mean_sum + mean, var_sum with m/(m-1)
    s = 0.9 * 1 + 1
    mean_sum = 0.9 * batches[0].mean(0) + batches[1].mean(0)
    var_sum = 0.9 * batches[0].var(0) * 8 / 7 + batches[1].var(0) * 8 / 7
    np.testing.assert_allclose(net.buffers["bn.factor"].get_value(), s, rtol=1e-6)
    np.testing.assert_allclose(net.buffers["bn.mean"].get_value(), mean_sum, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.buffers["bn.var"].get_value(), var_sum, rtol=1e-5)
    xt = rng.randn(4, 3).astype("float32")
    np.testing.assert_allclose(test(xt), (xt - mean_sum / s) / np.sqrt(var_sum / s + 1e-5),
                               rtol=1e-4, atol=1e-5)


# ---- CNN layers (need graphc's conv2d/pooling/lrn ops) ------------------------------------------
def _np_conv(x, w, stride=1, pad=0):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    y = np.zeros((n, o, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            y[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3]))
    return y


@needs_cnn
def test_conv_pool_layers_match_numpy():
    b = G.dim("batch")
    net = nn.Net("cnn", seed=0)
    net.input("data", (b, 2, 7, 7))
    net.add(nn.Conv2D("conv", 3, 3, stride=1, pad=1, bias_filler=nn.constant(0.5),
                      weight_filler=nn.gaussian(0.1)), bottom="data")
    net.add(nn.MaxPool2D("mp", 2, 2))
    net.add(nn.AvgPool2D("ap", 2, 2), bottom="conv")
    assert net.params["conv.W"].static_shape == (3, 2, 3, 3)
    assert net["mp"].static_shape[1:] == (3, 4, 4)     # Caffe's ceil mode: ceil((7-2)/2)+1 = 4
    x = np.random.RandomState(0).randn(2, 2, 7, 7).astype("float32")
    conv, mp, ap = _run(net, ["conv", "mp", "ap"], {"data": x}, backend="c")
    ref = _np_conv(x, net.params["conv.W"].get_value(), pad=1) + 0.5
    np.testing.assert_allclose(conv, ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(mp[:, :, :3, :3],
                               ref[:, :, :6, :6].reshape(2, 3, 3, 2, 3, 2).max((3, 5)), rtol=1e-5)
    np.testing.assert_allclose(ap[:, :, :3, :3],
                               ref[:, :, :6, :6].reshape(2, 3, 3, 2, 3, 2).mean((3, 5)), rtol=1e-5,
                               atol=1e-6)


@needs_cnn
def test_conv_bad_configs_name_the_layer():
    net = nn.Net("cnn")
    net.input("data", (G.dim("batch"), 1, 8, 8))
    net.add(nn.Conv2D("conv1", 4, 5), bottom="data")
    with pytest.raises(G.GraphcShapeError,
                       match=r"layer 'conv2' \(Convolution\).*conv1: \(batch, 4, 4, 4\)"):
        net.add(nn.Conv2D("conv2", 4, 5))
    with pytest.raises(G.GraphcShapeError, match=r"layer 'conv_fc' \(Convolution\).*rank 4"):
        net.input("flat", (G.dim("batch"), 10))
        net.add(nn.Conv2D("conv_fc", 4, 1), bottom="flat")
    with pytest.raises(G.GraphcShapeError, match=r"layer 'grp' \(Convolution\).*group"):
        net.add(nn.Conv2D("grp", 4, 1, group=2), bottom="data")


@pytest.mark.skipif(not hasattr(G, "lrn"), reason="graphc has no lrn op yet")
def test_lrn_layer_matches_caffe_formula():
    net = nn.Net("lrn")
    net.input("x", (G.dim("b"), 4, 2, 2))
    net.add(nn.LRN("norm", local_size=3, alpha=0.5, beta=0.75, k=2.0), bottom="x")
    x = np.random.RandomState(0).randn(2, 4, 2, 2).astype("float32")
    y = _run(net, "norm", {"x": x})
    sq = np.pad(x ** 2, ((0, 0), (1, 1), (0, 0), (0, 0)))
    s = 2.0 + 0.5 / 3 * (sq[:, :-2] + sq[:, 1:-1] + sq[:, 2:])
    np.testing.assert_allclose(y, x * s ** -0.75, rtol=1e-5)


@pytest.mark.skipif(not hasattr(G, "RandomStreams"), reason="graphc has no RandomStreams yet")
def test_dropout_train_scales_and_test_is_identity():
    net = nn.Net("drop", seed=3)
    net.input("x", (G.dim("b"), 1000))
    net.add(nn.Dropout("drop", 0.25), bottom="x")
    assert net.blob("drop", "test") is net.inputs["x"]
    f = G.function([net.inputs["x"]], net["drop"], updates=net.updates)
    x = np.ones((4, 1000), "float32")
    y1, y2 = f(x), f(x)
    kept = y1 != 0
    assert set(np.unique(y1)) <= {0.0, np.float32(1 / 0.75)}
    assert 0.7 < kept.mean() < 0.8
    assert not np.array_equal(y1, y2)               # the stream advances between calls
