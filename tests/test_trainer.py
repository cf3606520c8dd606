"""graphc.train: exact resume from a snapshot, atomic snapshot files, Caffe-style log lines,
the progress bar, the data stream, and fine-tuning by name with frozen layers."""
import io
import os
import re

import numpy as np
import pytest

import graphc as G
from graphc import nn, optim
from graphc.data import load_mnist_subset
from graphc.train import BatchStream, ProgressBar, Trainer, atomic_savez, finetune, load_npz

X, Y = load_mnist_subset("train")
XT, YT = load_mnist_subset("test")
X, Y, XT, YT = X[:256, ::4], Y[:256], XT[:200, ::4], YT[:200]     # 196 features: tiny and fast


def small_net(last="ip2", n_out=10, dropout=True, seed=5, frozen=()):
    b = G.dim("batch")
    net = nn.Net("small", seed=seed)
    net.input("data", (b, 196))
    net.input("label", (b,), "int64")
    lm = lambda layer: [{"lr_mult": 0}, {"lr_mult": 0}] if layer in frozen else None  # noqa: E731
    net.add(nn.InnerProduct("ip1", 32, param=lm("ip1")), bottom="data")
    net.add(nn.BatchNorm("bn1", moving_average_fraction=0.9))
    net.add(nn.ReLU("relu1"))
    if dropout:
        net.add(nn.Dropout("drop1", 0.2))
    net.add(nn.InnerProduct(last, n_out, param=lm(last)))
    net.add(nn.SoftmaxWithLoss("loss", bottom=[last, "label"]))
    net.add(nn.Accuracy("accuracy", bottom=[last, "label"], phase="test"))
    return net


def make_trainer(tmp_path, lines=None, net=None, **kw):
    net = net or small_net()
    solver = optim.SGD(net, lr=optim.Inv(0.05, gamma=1e-2, power=0.75), momentum=0.9,
                       weight_decay=5e-4)
    args = dict(batch_size=24, display=4, test_interval=6, snapshot_prefix=str(tmp_path / "small"),
                log=(lines.append if lines is not None else None), progress=False)
    args.update(kw)
    return Trainer(net, solver, (X, Y), (XT, YT), **args)


def test_resume_reproduces_uninterrupted_run_bit_for_bit(tmp_path):
    """Params, BN buffers, momentum, the dropout RNG counter and the data order all resume: the
    resumed run ends with exactly the parameters of the uninterrupted one (the 256 examples with
    batch 24 also make the snapshot fall in the middle of an epoch)."""
    full = make_trainer(tmp_path / "a")
    full.train(max_iter=17)

    first = make_trainer(tmp_path / "b", snapshot=7)
    first.train(max_iter=7)
    params_path, state_path = first._paths()
    assert first.last_snapshot == state_path and os.path.exists(params_path)

    resumed = make_trainer(tmp_path / "b")
    resumed.restore(state_path)
    assert resumed.solver.iter == 7
    resumed.train(max_iter=17)

    a, b = full.net.state_dict(), resumed.net.state_dict()
    assert list(a) == list(b) and "rng.counter" in a and "bn1.factor" in a
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    sa, sb = full.solver.state_dict(), resumed.solver.state_dict()
    for k in sa:
        assert np.array_equal(sa[k], sb[k]), k
    assert full.history["loss"] == resumed.history["loss"]


def test_snapshot_files_are_atomic_and_complete(tmp_path):
    tr = make_trainer(tmp_path, snapshot=3)
    tr.train(max_iter=6)
    files = sorted(os.listdir(tmp_path))
    assert files == ["small_iter_3.params.npz", "small_iter_3.solverstate.npz",
                     "small_iter_6.params.npz", "small_iter_6.solverstate.npz"]   # no tmp files
    state = load_npz(tmp_path / "small_iter_6.solverstate.npz")
    assert {"param/ip1.W", "param/bn1.mean", "param/rng.counter", "solver/iter",
            "solver/ip1.W.momentum", "data/rng_keys", "data/cursor", "meta/json"} <= set(state)
    assert int(state["solver/iter"]) == 6
    params = load_npz(tmp_path / "small_iter_6.params.npz")
    assert all(k.startswith("param/") for k in params)
    # a failing write leaves neither the target nor a temporary behind
    with pytest.raises(TypeError):
        atomic_savez(tmp_path / "bad.npz", {"x": object()})
    assert not any(f.startswith("bad.npz") for f in os.listdir(tmp_path))
    with pytest.raises(ValueError, match="not a solverstate"):
        tr.restore(tmp_path / "small_iter_6.params.npz")


def test_caffe_style_log_lines(tmp_path):
    lines = []
    tr = make_trainer(tmp_path, lines, max_iter=8, average_loss=2)
    history = tr.train()
    text = "\n".join(lines)
    assert re.search(r"^Iteration 0, Testing net \(#0\)$", text, re.M)
    assert re.search(r"^    Test net output #0: loss = [\d.e-]+ \(\* 1 = [\d.e-]+ loss\)$", text, re.M)
    assert re.search(r"^    Test net output #1: accuracy = [\d.e-]+$", text, re.M)
    assert re.search(r"^Iteration 4, loss = [\d.e-]+$", text, re.M)
    assert re.search(r"^Iteration 4, lr = 0\.0\d+$", text, re.M)
    assert re.search(r"^Iteration 6, Testing net", text, re.M)
    assert lines[-1] == "Optimization Done."
    assert history["iter"] == list(range(8)) and len(history["loss"]) == 8
    assert history["test_iter"] == [0, 6, 8]          # and a final test (test_at_end)
    acc = tr.test(log=False)["accuracy"]
    assert 0.0 <= acc <= 1.0


def test_progress_bar_only_on_a_terminal():
    quiet = io.StringIO()
    bar = ProgressBar(10, stream=quiet)       # StringIO is not a tty: disabled
    bar.update(3)
    bar.close()
    assert quiet.getvalue() == ""
    shown = io.StringIO()
    bar = ProgressBar(10, enabled=True, stream=shown)
    bar.update(5, text="loss 0.5")
    assert "\r[###############...............] 5/10" in shown.getvalue()
    assert "loss 0.5" in shown.getvalue()


def test_batch_stream_wraps_epochs_and_resumes():
    s = BatchStream(10, 4, seed=1)
    seen = [s.next() for _ in range(5)]                  # 20 indices = exactly 2 epochs
    assert all(len(b) == 4 for b in seen)
    flat = np.concatenate(seen)
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:]) == list(range(10))
    state = s.state_dict()
    ahead = [s.next() for _ in range(3)]
    t = BatchStream(10, 4, seed=99)
    t.load_state_dict(state)
    assert all(np.array_equal(a, b) for a, b in zip(ahead, [t.next() for _ in range(3)]))


def test_finetune_loads_by_name_and_frozen_layers_stay(tmp_path):
    base = make_trainer(tmp_path, snapshot=5)
    base.train(max_iter=5)
    params_path = str(tmp_path / "small_iter_5.params.npz")
    trained = base.net.state_dict()

    # new last layer "ip2_ft" with 5 classes; ip1 frozen with lr_mult 0
    net = small_net(last="ip2_ft", n_out=5, frozen=("ip1",), seed=11)
    fresh_last = net.params["ip2_ft.W"].get_value()
    lines = []
    report = finetune(net, params_path, log=lines.append)
    assert report.loaded == ["ip1.W", "ip1.b", "bn1.gamma", "bn1.beta", "bn1.mean", "bn1.var",
                             "bn1.factor", "rng.counter"]
    assert list(report.skipped) == ["ip2_ft.W", "ip2_ft.b"]
    assert report.unused == ["ip2.W", "ip2.b"]
    assert any("kept fresh initialization of ip2_ft.W" in ln for ln in lines)
    assert np.array_equal(net.params["ip1.W"].get_value(), trained["ip1.W"])
    assert np.array_equal(net.params["ip2_ft.W"].get_value(), fresh_last)

    solver = optim.SGD(net, lr=0.01, momentum=0.9)
    assert solver.frozen == ["ip1.W", "ip1.b"]
    y5 = Y % 5
    tr = Trainer(net, solver, (X, y5), (XT, YT % 5), batch_size=24, display=0, log=None,
                 progress=False)
    tr.train(max_iter=4)
    assert np.array_equal(net.params["ip1.W"].get_value(), trained["ip1.W"])       # frozen
    assert not np.array_equal(net.params["ip2_ft.W"].get_value(), fresh_last)      # trained


def test_trainer_data_errors():
    net = small_net(dropout=False)
    with pytest.raises(ValueError, match="lacks net inputs"):
        Trainer(net, optim.SGD(net, lr=0.1), {"data": X}, batch_size=8)
    with pytest.raises(ValueError, match="differ in length"):
        Trainer(net, optim.SGD(net, lr=0.1), (X, Y[:-1]), batch_size=8)
