"""AOT export of functions that contain scans: an RNN classifier's inference and its training
step (forward loop, backward loop) shipped as a C library and run from C by the generated main,
compared with the Python functions."""
import os
import shutil

import numpy as np
import pytest

import graphc as G

from test_aot import CC, make_example, run

pytestmark = pytest.mark.skipif(shutil.which(CC) is None, reason="needs a C compiler")
STEPS, D, H = 6, 5, 8


def build_rnn(seed=0):
    r = np.random.RandomState(seed)
    W = G.shared((r.randn(D, H) * 0.3).astype("float32"), name="W")
    U = G.shared((r.randn(H, H) * 0.3).astype("float32"), name="U")
    V = G.shared((r.randn(H, 3) * 0.3).astype("float32"), name="V")
    x = G.tensor("x", (G.dim("batch"), STEPS, D))  # batch first: main.c splits files by rows
    y = G.tensor("y", (G.dim("batch"),), "int64")
    h0 = G.zeros_like(G.dot(x[:, 0, :], W))
    hs, _ = G.scan(lambda x_t, h: G.tanh(G.dot(x_t, W) + G.dot(h, U)),
                   sequences=x.dimshuffle(1, 0, 2), outputs_info=h0, name="rnn")
    logits = G.dot(hs[-1], V)
    loss = G.softmax_cross_entropy(logits, y).mean()
    params = [W, U, V]
    updates = {p: p - 0.5 * g for p, g in zip(params, G.grad(loss, params))}
    return {"infer": G.function([x], G.softmax(logits), name="aot_rnn_infer"),
            "train_step": G.function([x, y], loss, updates=updates, name="aot_rnn_train")}, params


def test_scan_model_exported_and_run_from_c(tmp_path):
    functions, params = build_rnn()
    initial = {p.name: p.get_value() for p in params}
    out = str(tmp_path / "rnn")
    G.aot.export(functions, out, name="rnn")
    source = open(os.path.join(out, "src", "rnn.c")).read()
    assert "for (int64_t" in source
    # the recurrent weight is packed once per call (_gemm_packed.j2, static in the library), and
    # the loop runs on a team of threads, each step's product split among them (symbolic batch)
    assert "graphc_rt_spack_b(" in source and "graphc_rt_sgemm_packed_part(0," in source
    assert "#pragma omp barrier" in source
    main = make_example(out, "rnn")
    r = np.random.RandomState(1)
    x = r.randn(40, STEPS, D).astype("float32")
    y = r.randint(0, 3, 40).astype("int64")
    x.tofile(tmp_path / "x.bin")
    y.tofile(tmp_path / "y.bin")
    run([main, "infer", "40", "x.bin", "p.bin"], cwd=tmp_path)
    probs = np.fromfile(tmp_path / "p.bin", "float32").reshape(40, 3)
    np.testing.assert_allclose(probs, functions["infer"](x), rtol=1e-5, atol=1e-7)
    run([main, "-s", "trained.params", "train_step", "8", "x.bin", "y.bin", "loss.bin"],
        cwd=tmp_path)
    losses_c = np.fromfile(tmp_path / "loss.bin", "float32")
    train = functions["train_step"]
    losses_py = [train(x[k:k + 8], y[k:k + 8]) for k in range(0, 40, 8)]
    np.testing.assert_allclose(losses_c, losses_py, rtol=1e-5)
    trained = G.aot.load_params(tmp_path / "trained.params")
    for p in params:
        np.testing.assert_allclose(trained[p.name], p.get_value(), rtol=1e-5, atol=1e-6)
        assert not np.allclose(p.get_value(), initial[p.name])
