"""graphc.aot: export compiled functions as a standalone C library, then use it from C.

One MLP (784-64-10) export serves most tests: the generated main.c is built with its Makefile and
run on MNIST digits; its outputs and the parameters after 20 training steps must match the Python
functions. tests/aot/check_api.c drives the C interface directly (bad arguments, failed calls,
parameter files, two threads with two contexts), and everything runs under valgrind once.
"""
import os
import platform
import re
import shutil
import subprocess

import numpy as np
import pytest

import graphc as G
from graphc.aot import ParamsFileError, load_params, save_params
from graphc.targets.c.params_file import parse_params

from fuzz_util import _mutate, fuzz_parser
from graphc.data import load_mnist_subset

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CC = os.environ.get("CC", "gcc")
RTOL = 1e-5

pytestmark = pytest.mark.skipif(shutil.which(CC) is None, reason="needs a C compiler")


def build_mlp(n_hidden=64, lr=0.1, seed=0):
    rng = np.random.RandomState(seed)
    W1 = G.shared((rng.randn(784, n_hidden) * 0.05).astype("float32"), name="W1")
    b1 = G.shared(np.zeros(n_hidden, "float32"), name="b1")
    W2 = G.shared((rng.randn(n_hidden, 10) * 0.05).astype("float32"), name="W2")
    b2 = G.shared(np.zeros(10, "float32"), name="b2")
    batch = G.dim("batch")
    x = G.tensor("x", (batch, 784))
    y = G.tensor("y", (batch,), "int64")
    probs = G.softmax(G.dot(G.relu(G.dot(x, W1) + b1), W2) + b2)
    loss = G.categorical_crossentropy(probs, y).mean()
    params = [W1, b1, W2, b2]
    updates = {p: p - lr * g for p, g in zip(params, G.grad(loss, params))}
    f_infer = G.function([x], probs, name="aot_mlp_infer")
    f_train = G.function([x, y], loss, updates=updates, name="aot_mlp_train")
    return {"infer": f_infer, "train_step": f_train}, params


def run(cmd, cwd=None, env=None, check=True):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def make_example(directory, name):
    """Build <name>_main with the exported Makefile (or the README's one-line gcc)."""
    if shutil.which("make"):
        run(["make", "-s", f"CC={CC}"], cwd=directory)
    else:
        run([CC, "-O2", "-Wall", "-Wextra", "-o", f"{name}_main", "main.c", "-I.", "-L.",
             f"-l{name}", "-Wl,-rpath,$ORIGIN", "-Wl,-rpath-link,."], cwd=directory)
    return os.path.join(directory, f"{name}_main")


class Model:
    pass


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    m = Model()
    m.functions, m.params = build_mlp()
    m.initial = {p.name: p.get_value() for p in m.params}
    m.dir = str(tmp_path_factory.mktemp("aot") / "mlp")
    m.export = G.aot.export(m.functions, m.dir, name="mlp")
    m.main = make_example(m.dir, "mlp")
    m.work = str(tmp_path_factory.mktemp("aot_work"))
    return m


def reset(m):
    for p in m.params:
        p.set_value(m.initial[p.name])


def test_export_files(mlp):
    for f in ("libmlp.so", "mlp.h", "mlp.params", "main.c", "Makefile", "README.txt",
              "libscipy_openblas.so", "src/mlp.c"):
        assert os.path.exists(os.path.join(mlp.dir, f)), f
    assert mlp.export.param_names == ["W1", "b1", "W2", "b2"]
    # The exported parameter file holds the values at export.
    saved = load_params(mlp.export.params)
    assert list(saved) == ["W1", "b1", "W2", "b2"]
    for k, v in saved.items():
        np.testing.assert_array_equal(v, mlp.initial[k])
    header = open(mlp.export.header).read()
    assert "int mlp_infer(mlp_ctx *ctx, const float *x, int64_t batch, float *out0);" in header
    assert ("int mlp_train_step(mlp_ctx *ctx, const float *x, const int64_t *y, int64_t batch, "
            "float *out0);") in header
    # Each function's kernels are the program graphc.function runs, rendered once each.
    source = open(os.path.join(mlp.dir, "src", "mlp.c")).read()
    assert source.count("#ifndef GC_RUNTIME_H") == 1
    assert "static int gc_fn_infer_run(" in source and "static int gc_fn_train_step_run(" in source
    listing = run([mlp.main]).stdout
    assert "infer: 1 inputs, 1 outputs, dims: batch" in listing
    assert "W1: float32 [784, 64]" in listing


def test_library_dependencies_and_symbols(mlp):
    lib = mlp.export.library
    dyn = run(["readelf", "-d", lib]).stdout
    needed = {line.split("[")[1].rstrip("]") for line in dyn.splitlines() if "(NEEDED)" in line}
    # libmvec: glibc's vector libm, which the kernels may call (part of libc like libm).
    assert needed <= {"libscipy_openblas.so", "libm.so.6", "libmvec.so.1", "libgomp.so.1",
                      "libc.so.6"}, needed
    assert "[$ORIGIN]" in dyn
    syms = run(["nm", "-D", "--defined-only", lib]).stdout.split()
    exported = {s for s in syms if s.startswith(("mlp_", "gc_"))}
    assert "mlp_infer" in exported and "mlp_train_step_output_shape" in exported
    assert not any(s.startswith("gc_") for s in exported)  # helpers stay private


def test_infer_matches_python(mlp):
    reset(mlp)
    X, _ = load_mnist_subset("test")
    x = np.ascontiguousarray(X[:100])
    x.tofile(os.path.join(mlp.work, "x.bin"))
    run([mlp.main, "infer", "100", "x.bin", "probs.bin"], cwd=mlp.work)
    probs_c = np.fromfile(os.path.join(mlp.work, "probs.bin"), "float32").reshape(100, 10)
    probs_py = mlp.functions["infer"](x)
    np.testing.assert_allclose(probs_c, probs_py, rtol=RTOL, atol=1e-7)
    # Several calls from one file: batches of 25, the same numbers.
    run([mlp.main, "infer", "25", "x.bin", "probs25.bin"], cwd=mlp.work)
    probs25 = np.fromfile(os.path.join(mlp.work, "probs25.bin"), "float32").reshape(100, 10)
    np.testing.assert_allclose(probs25, probs_py, rtol=RTOL, atol=1e-7)


def test_train_steps_match_python(mlp):
    steps, batch = 20, 32
    X, y = load_mnist_subset("train")
    xs, ys = np.ascontiguousarray(X[:steps * batch]), y[:steps * batch].astype("int64")
    xs.tofile(os.path.join(mlp.work, "tx.bin"))
    ys.tofile(os.path.join(mlp.work, "ty.bin"))
    run([mlp.main, "-s", "trained.params", "train_step", str(batch), "tx.bin", "ty.bin",
         "loss.bin"], cwd=mlp.work)
    losses_c = np.fromfile(os.path.join(mlp.work, "loss.bin"), "float32")
    reset(mlp)
    train = mlp.functions["train_step"]
    losses_py = np.array([train(xs[k * batch:(k + 1) * batch], ys[k * batch:(k + 1) * batch])
                          for k in range(steps)])
    assert losses_c.shape == (steps,)
    np.testing.assert_allclose(losses_c, losses_py, rtol=RTOL)
    assert losses_py[-1] < losses_py[0]
    trained = load_params(os.path.join(mlp.work, "trained.params"))
    for p in mlp.params:
        np.testing.assert_allclose(trained[p.name], p.get_value(), rtol=RTOL, atol=1e-7,
                                   err_msg=p.name)
    # Continue from the saved parameters in C (-p) and in Python: still the same.
    run([mlp.main, "-p", "trained.params", "infer", "32", "tx.bin", "probs_t.bin"], cwd=mlp.work)
    probs_c = np.fromfile(os.path.join(mlp.work, "probs_t.bin"), "float32").reshape(-1, 10)
    np.testing.assert_allclose(probs_c, mlp.functions["infer"](xs), rtol=RTOL, atol=1e-7)


def test_params_file_roundtrip(mlp, tmp_path):
    # C writes the same bytes Python wrote at export; Python reads what C writes.
    run([mlp.main, "-s", str(tmp_path / "copy.params")])
    assert open(tmp_path / "copy.params", "rb").read() == open(mlp.export.params, "rb").read()
    # Loading matches names in any order and skips names the model does not have.
    shuffled = {"extra": np.ones(3, "float32")}
    shuffled.update((k, v * 0) for k, v in reversed(list(load_params(mlp.export.params).items())))
    save_params(tmp_path / "other.params", shuffled)
    run([mlp.main, "-p", str(tmp_path / "other.params"), "-s", str(tmp_path / "back.params")])
    back = load_params(tmp_path / "back.params")
    assert list(back) == ["W1", "b1", "W2", "b2"] and all((v == 0).all() for v in back.values())
    shuffled["W2"] = np.zeros((10, 64), "float32")  # a different shape: refused
    save_params(tmp_path / "bad.params", shuffled)
    proc = run([mlp.main, "-p", str(tmp_path / "bad.params")], check=False)
    assert proc.returncode == 1 and "W2 has a different shape" in proc.stderr

    values = {"a": np.arange(6, dtype="float64").reshape(2, 3), "b": np.array(7, "int64"),
              "c": np.array([True, False])}
    save_params(tmp_path / "x.params", values)
    back = load_params(tmp_path / "x.params")
    for k, v in values.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape
        np.testing.assert_array_equal(back[k], v)


def build_check_api(mlp):
    exe = os.path.join(mlp.work, "check_api")
    if not os.path.exists(exe):
        run([CC, "-O1", "-g", "-Wall", "-Wextra", "-pthread", "-o", exe,
             os.path.join(HERE, "aot", "check_api.c"), f"-I{mlp.dir}", f"-L{mlp.dir}", "-lmlp",
             f"-Wl,-rpath,{mlp.dir}", f"-Wl,-rpath-link,{mlp.dir}", "-lm"])
    return exe


def test_c_api_errors_params_and_threads(mlp, tmp_path):
    exe = build_check_api(mlp)
    proc = run([exe, str(tmp_path)], check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "all passed" in out
    # The messages a C caller sees, e.g.:
    assert 'mlp_infer(ctx, X, 0, out) -> 2 "infer: dim batch = 0 is out of range' in out
    assert 'mlp_infer(ctx, NULL, B, out) -> 1 "infer: input x is NULL"' in out
    assert "train_step: label out of range" in out


def test_relocatable(mlp, tmp_path):
    moved = tmp_path / "elsewhere" / "mlp"
    shutil.copytree(mlp.dir, moved)
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    ldd = run(["ldd", str(moved / "mlp_main")], env=env).stdout
    for lib in ("libmlp.so", "libscipy_openblas.so"):
        line = next(ln for ln in ldd.splitlines() if lib in ln)
        assert str(moved) in line, line
    assert "infer" in run([str(moved / "mlp_main")], cwd=str(tmp_path), env=env).stdout
    x = np.ascontiguousarray(load_mnist_subset("test")[0][:8])
    x.tofile(tmp_path / "x.bin")
    run([str(moved / "mlp_main"), "infer", "8", "x.bin", "p.bin"], cwd=str(tmp_path), env=env)
    reset(mlp)
    np.testing.assert_allclose(np.fromfile(tmp_path / "p.bin", "float32").reshape(8, 10),
                               mlp.functions["infer"](x), rtol=RTOL, atol=1e-7)


VALGRIND = ["valgrind", "--error-exitcode=99", "--leak-check=full", "-q",
            "--errors-for-leak-kinds=definite,possible", "--show-leak-kinds=definite,possible"]


# What valgrind runs is built for a baseline x86-64 (SSE4.2, no AVX): valgrind 3.19 has no
# AVX-512 and dies with SIGILL on a library built with -march=native on such a CPU.
VALGRIND_MARCH = "x86-64-v2" if platform.machine() in ("x86_64", "AMD64") else None


@pytest.fixture(scope="module")
def mlp_for_valgrind(mlp, tmp_path_factory):
    m = Model()
    m.dir = str(tmp_path_factory.mktemp("aot_valgrind") / "mlp")
    G.aot.export(mlp.functions, m.dir, name="mlp", march=VALGRIND_MARCH)
    m.main = make_example(m.dir, "mlp")
    m.work = str(tmp_path_factory.mktemp("aot_valgrind_work"))
    return m


@pytest.mark.skipif(VALGRIND_MARCH is None or shutil.which("objdump") is None,
                    reason="x86-64 with binutils only")
def test_valgrind_library_has_no_vector_extensions(mlp_for_valgrind):
    """The library valgrind runs uses no AVX/AVX-512 registers, whatever CPU built it."""
    lib = os.path.join(mlp_for_valgrind.dir, "libmlp.so")
    code = run(["objdump", "-d", "--no-show-raw-insn", lib]).stdout
    assert "%ymm" not in code and "%zmm" not in code


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="needs valgrind")
def test_valgrind_clean(mlp_for_valgrind):
    vg = mlp_for_valgrind
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    X, y = load_mnist_subset("test")
    X[:24].tofile(os.path.join(vg.work, "vx.bin"))
    y[:24].astype("int64").tofile(os.path.join(vg.work, "vy.bin"))
    exe = build_check_api(vg)
    vdir = os.path.join(vg.work, "valgrind")
    os.makedirs(vdir, exist_ok=True)
    for cmd in ([vg.main, "infer", "8", "vx.bin", "vp.bin"],
                [vg.main, "-s", "v.params", "train_step", "8", "vx.bin", "vy.bin", "vl.bin"],
                [exe, vdir]):
        proc = run(VALGRIND + cmd, cwd=vg.work, env=env, check=False)
        assert proc.returncode == 0, f"{cmd}:\n{proc.stderr[-5000:]}"
        assert "definitely lost" not in proc.stderr and "Invalid" not in proc.stderr, proc.stderr


def test_cli_exports_a_script(tmp_path, capsys, monkeypatch):
    """`graphc aot examples/aot_mlp.py:build --out DIR` (graphc.cli.main, the console script)."""
    from graphc.cli import main as cli_main
    monkeypatch.chdir(tmp_path)
    script = os.path.join(ROOT, "examples", "aot_mlp.py")
    assert cli_main(["aot", f"{script}:build", "--out", "dist/mlp2"]) == 0
    assert "exported infer, train_step" in capsys.readouterr().out
    main = make_example(str(tmp_path / "dist" / "mlp2"), "mlp2")
    listing = run([main]).stdout
    assert "train_step: 2 inputs, 1 outputs, dims: batch" in listing
    with pytest.raises(SystemExit, match="has no function nope"):
        cli_main(["aot", f"{script}:nope", "--out", "dist/x"])
    assert cli_main([]) == 2  # no command: help


def test_export_rejects_bad_names(mlp, tmp_path):
    with pytest.raises(G.GraphcTypeError):
        G.aot.export(mlp.functions, str(tmp_path / "x"), name="not-a-c-name")
    with pytest.raises(G.GraphcTypeError):
        G.aot.export({"bad name": mlp.functions["infer"]}, str(tmp_path / "x"), name="ok")
    with pytest.raises(G.GraphcTypeError):
        G.aot.export({"infer": lambda x: x}, str(tmp_path / "x"), name="ok")


def test_export_warm_compiled_functions(mlp, tmp_path):
    """Functions loaded from graphc's artifact cache (no graph nodes kept) export the same."""
    functions, params = build_mlp(seed=3)
    export = G.aot.export(functions, str(tmp_path / "warm"), name="warm")
    main = make_example(export.directory, "warm")
    X, _ = load_mnist_subset("test")
    x = np.ascontiguousarray(X[:16])
    x.tofile(tmp_path / "x.bin")
    run([main, "infer", "16", "x.bin", "p.bin"], cwd=str(tmp_path))
    probs = np.fromfile(tmp_path / "p.bin", "float32").reshape(16, 10)
    np.testing.assert_allclose(probs, functions["infer"](x), rtol=RTOL, atol=1e-7)


HAVE_CNN = hasattr(G, "conv2d") and hasattr(G, "max_pool2d")


def build_lenet(lr=0.05, seed=0):
    rng = np.random.RandomState(seed)

    def init(*shape):
        return (rng.randn(*shape) * 0.1).astype("float32")

    c1w = G.shared(init(6, 1, 5, 5), name="conv1_w")
    c2w = G.shared(init(16, 6, 5, 5), name="conv2_w")
    f1w, f2w = G.shared(init(256, 64), name="fc1_w"), G.shared(init(64, 10), name="fc2_w")
    c1b, c2b, f1b, f2b = (G.shared(np.zeros(n, "float32"), name=f"{k}_b")
                          for n, k in ((6, "conv1"), (16, "conv2"), (64, "fc1"), (10, "fc2")))
    batch = G.dim("batch")
    x = G.tensor("x", (batch, 1, 28, 28))
    y = G.tensor("y", (batch,), "int64")
    h = G.max_pool2d(G.relu(G.conv2d(x, c1w) + c1b.dimshuffle("x", 0, "x", "x")), (2, 2))
    h = G.max_pool2d(G.relu(G.conv2d(h, c2w) + c2b.dimshuffle("x", 0, "x", "x")), (2, 2))
    h = G.relu(G.dot(G.flatten(h, 2), f1w) + f1b)
    probs = G.softmax(G.dot(h, f2w) + f2b)
    loss = G.categorical_crossentropy(probs, y).mean()
    params = [c1w, c1b, c2w, c2b, f1w, f1b, f2w, f2b]
    updates = {p: p - lr * g for p, g in zip(params, G.grad(loss, params))}
    return {"infer": G.function([x], probs, name="aot_lenet_infer"),
            "train_step": G.function([x, y], loss, updates=updates, name="aot_lenet_train")}, params


@pytest.mark.skipif(not HAVE_CNN, reason="needs graphc.conv2d and graphc.max_pool2d")
def test_lenet_export_matches_python(tmp_path):
    functions, params = build_lenet()
    export = G.aot.export(functions, str(tmp_path / "lenet"), name="lenet")
    main = make_example(export.directory, "lenet")
    assert "conv1_w: float32 [6, 1, 5, 5]" in run([main]).stdout
    X, y = load_mnist_subset("train", flatten=False)  # (N, 1, 28, 28) float32
    x_inf = np.ascontiguousarray(X[:50])
    x_inf.tofile(tmp_path / "x.bin")
    run([main, "infer", "50", "x.bin", "p.bin"], cwd=str(tmp_path))
    probs = np.fromfile(tmp_path / "p.bin", "float32").reshape(50, 10)
    np.testing.assert_allclose(probs, functions["infer"](x_inf), rtol=RTOL, atol=1e-7)

    steps, batch = 20, 16
    xs, ys = np.ascontiguousarray(X[:steps * batch]), y[:steps * batch].astype("int64")
    xs.tofile(tmp_path / "tx.bin")
    ys.tofile(tmp_path / "ty.bin")
    run([main, "-s", "trained.params", "train_step", str(batch), "tx.bin", "ty.bin", "l.bin"],
        cwd=str(tmp_path))
    train = functions["train_step"]
    losses = [train(xs[k * batch:(k + 1) * batch], ys[k * batch:(k + 1) * batch])
              for k in range(steps)]
    np.testing.assert_allclose(np.fromfile(tmp_path / "l.bin", "float32"), losses, rtol=RTOL)
    trained = load_params(tmp_path / "trained.params")
    for p in params:
        np.testing.assert_allclose(trained[p.name], p.get_value(), rtol=RTOL, atol=1e-7,
                                   err_msg=p.name)


def test_two_dims_many_dtypes_and_swapped_updates(tmp_path):
    """Two symbolic dims, float64/int64/float32, a constant, a function without inputs, and
    updates that are not in place (p and q swap: each must read the other's old value)."""
    import ctypes
    n, m = G.dim("n"), G.dim("m")
    a = G.tensor("a", (n, 3), "float64")
    idx = G.tensor("idx", (m,), "int64")
    acc = G.shared(np.zeros(3), name="acc")
    count = G.shared(np.array(0, "int64"), name="count")
    w = G.shared(np.arange(12, dtype="float32").reshape(4, 3), name="w")
    p = G.shared(np.array([1.0, 2.0], "float32"), name="p")
    q = G.shared(np.array([5.0, 6.0], "float32"), name="q")
    step = G.function([a, idx], [a.sum(axis=0) + np.array([1.0, 2.0, 3.0]), w[idx]],
                      updates={acc: acc + a.sum(axis=0), count: count + 1, w: w * 2, p: q, q: p})
    peek = G.function([], [p - q, count * 2])
    shareds = [acc, count, w, p, q]
    initial = {s.name: s.get_value() for s in shareds}
    export = G.aot.export({"step": step, "peek": peek}, str(tmp_path / "edge"), name="edge")
    header = open(export.header).read()
    assert ("int edge_step(edge_ctx *ctx, const double *a, const int64_t *idx, int64_t n, "
            "int64_t m, double *out0, float *out1);") in header
    assert "int edge_peek(edge_ctx *ctx, float *out0, int64_t *out1);" in header
    main = make_example(export.directory, "edge")

    rng = np.random.RandomState(0)
    As, idxs = rng.randn(3, 5, 3), np.array([[0, 3], [2, 2], [1, 0]], "int64")
    As.tofile(tmp_path / "a.bin")
    idxs.tofile(tmp_path / "idx.bin")
    run([main, "-s", "after.params", "step", "5", "2", "a.bin", "idx.bin", "o1.bin", "o2.bin"],
        cwd=str(tmp_path))
    run([main, "-p", "after.params", "peek", "d.bin", "c.bin"], cwd=str(tmp_path))
    o1 = np.fromfile(tmp_path / "o1.bin", "float64").reshape(3, 3)
    o2 = np.fromfile(tmp_path / "o2.bin", "float32").reshape(3, 2, 3)
    for k in range(3):
        r1, r2 = step(As[k], idxs[k])
        np.testing.assert_allclose(o1[k], r1, rtol=1e-12)
        np.testing.assert_array_equal(o2[k], r2)
    after = load_params(tmp_path / "after.params")
    assert sorted(after) == ["acc", "count", "p", "q", "w"]
    for s in shareds:
        np.testing.assert_allclose(after[s.name], s.get_value(), rtol=1e-12, err_msg=s.name)
    assert after["count"] == 3 and list(after["p"]) == [5.0, 6.0]  # swapped three times
    d, c = peek()
    np.testing.assert_array_equal(np.fromfile(tmp_path / "d.bin", "float32"), d)
    assert np.fromfile(tmp_path / "c.bin", "int64")[0] == c == 6

    # Straight through the C ABI (ctypes): a failing call (index 9 of 4 rows) changes nothing.
    lib = ctypes.CDLL(export.library)
    lib.edge_create.restype = ctypes.c_void_p
    lib.edge_create.argtypes = [ctypes.c_char_p]
    lib.edge_last_error.restype = ctypes.c_char_p
    lib.edge_last_error.argtypes = [ctypes.c_void_p]
    lib.edge_get_param.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p,
                                   ctypes.c_size_t]
    lib.edge_step.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64] * 2 + [ctypes.c_void_p] * 2
    lib.edge_destroy.argtypes = [ctypes.c_void_p]
    ctx = lib.edge_create(None)
    assert ctx

    def value(name):
        out = np.empty_like(initial[name])
        assert lib.edge_get_param(ctx, name.encode(), out.ctypes.data, out.nbytes) == 0
        return out

    a0, out0, out1 = As[0].copy(), np.empty(3), np.empty((2, 3), "float32")
    bad = np.array([1, 9], "int64")
    rc = lib.edge_step(ctx, a0.ctypes.data, bad.ctypes.data, 5, 2, out0.ctypes.data,
                       out1.ctypes.data)
    assert rc == 4 and b"index out of range" in lib.edge_last_error(ctx)
    for name in initial:
        np.testing.assert_array_equal(value(name), initial[name], err_msg=name)
    good = np.array([1, 3], "int64")
    assert lib.edge_step(ctx, a0.ctypes.data, good.ctypes.data, 5, 2, out0.ctypes.data,
                         out1.ctypes.data) == 0
    assert list(value("p")) == [5.0, 6.0] and list(value("q")) == [1.0, 2.0]
    assert value("count") == 1
    lib.edge_destroy(ctx)


def test_dims_that_must_agree_and_no_blas(tmp_path):
    """a*b == c*d cannot be solved at compile time: the C entry checks it per call. Without a
    gemm the export neither ships nor links the BLAS."""
    import ctypes
    a, b, c, d = (G.dim(s) for s in "abcd")
    x, y = G.tensor("x", (a, b)), G.tensor("y", (c, d))
    f = G.function([x, y], G.flatten(x, 1) + G.flatten(y, 1))
    export = G.aot.export({"f": f}, str(tmp_path / "agree"), name="agree")
    assert not os.path.exists(os.path.join(export.directory, "libscipy_openblas.so"))
    dyn = run(["readelf", "-d", export.library]).stdout
    assert "openblas" not in dyn
    assert "the dims must satisfy a*b == c*d" in open(export.header).read()
    lib = ctypes.CDLL(export.library)
    lib.agree_create.restype = ctypes.c_void_p
    lib.agree_last_error.restype = ctypes.c_char_p
    lib.agree_last_error.argtypes = [ctypes.c_void_p]
    lib.agree_f.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64] * 4 + [ctypes.c_void_p]
    lib.agree_destroy.argtypes = [ctypes.c_void_p]
    ctx = lib.agree_create(None)
    xs, ys, out = np.arange(6, dtype="float32"), np.ones(6, "float32"), np.zeros(6, "float32")
    args = (xs.ctypes.data, ys.ctypes.data)
    assert lib.agree_f(ctx, *args, 2, 3, 3, 2, out.ctypes.data) == 0
    np.testing.assert_array_equal(out, f(xs.reshape(2, 3), ys.reshape(3, 2)))
    assert lib.agree_f(ctx, *args, 2, 3, 2, 2, out.ctypes.data) == 2
    assert b"a*b must equal c*d (6 vs 4)" in lib.agree_last_error(ctx)
    lib.agree_destroy(ctx)


def _params_seeds(tmp_path):
    seeds = []
    for k, values in enumerate([
            {"a": np.arange(6, dtype="float32").reshape(2, 3), "b": np.array(7, "int64")},
            {"w": np.zeros((0, 4), "float64"), "flag": np.array([True, False]),
             "n\u00e9": np.arange(3, dtype="int32")}]):
        save_params(tmp_path / f"seed{k}.params", values)
        seeds.append((tmp_path / f"seed{k}.params").read_bytes())
    return seeds


@pytest.mark.parametrize("cut", [0, 5, 10, 20, 30, 60, 70, 100, 130])
def test_load_params_truncated_file_says_so(tmp_path, cut):
    data = _params_seeds(tmp_path)[0]
    (tmp_path / "t.params").write_bytes(data[:cut])
    with pytest.raises(ParamsFileError, match="t.params: (the file is truncated|not a graphc)"):
        load_params(tmp_path / "t.params")


def test_load_params_garbage_fields_say_what(tmp_path):
    data = bytearray(_params_seeds(tmp_path)[0])
    bad_name = data[:20] + b"\xff" + data[21:]  # entry 0's name "a" -> an invalid UTF-8 byte
    with pytest.raises(ParamsFileError, match="entry 0: the name is not UTF-8"):
        parse_params(bytes(bad_name), "x.params")
    bad_code = data[:21] + (16777216).to_bytes(4, "little") + data[25:]
    with pytest.raises(ParamsFileError, match="unknown dtype code 16777216"):
        parse_params(bytes(bad_code), "x.params")
    bad_rank = data[:25] + (40).to_bytes(4, "little") + data[29:]
    with pytest.raises(ParamsFileError, match="bad rank 40"):
        parse_params(bytes(bad_rank), "x.params")
    bad_size = data[:29] + (2**62).to_bytes(8, "little") + data[37:]
    with pytest.raises(ParamsFileError, match="does not match its byte count"):
        parse_params(bytes(bad_size), "x.params")
    assert isinstance(ParamsFileError("x"), G.GraphcError)


def test_save_params_rejects_bad_names_and_values(tmp_path):
    with pytest.raises(G.GraphcError, match="parameter name 1 must be a non-empty string"):
        save_params(tmp_path / "p.params", {1: np.zeros(3)})
    with pytest.raises(G.GraphcError, match="parameter name '' must be"):
        save_params(tmp_path / "p.params", {"": np.zeros(3)})
    with pytest.raises(G.GraphcError, match="must be a dict"):
        save_params(tmp_path / "p.params", [np.zeros(3)])
    with pytest.raises(G.GraphcError, match="unsupported dtype complex128"):
        save_params(tmp_path / "p.params", {"z": np.zeros(3, complex)})
    assert not os.path.exists(tmp_path / "p.params")


def test_fuzz_python_params_reader(tmp_path):
    cases, parsed = fuzz_parser(lambda data: parse_params(data, "fuzz.params"),
                                _params_seeds(tmp_path), seconds=1.5, tmp_dir=tmp_path)
    assert cases >= 200 and parsed > 0


def test_fuzz_c_params_loader(mlp, tmp_path):
    """A cheap fuzz of the exported library's loader (the thorough one ran under ASan): 300
    mutated files, one process; each load succeeds or fails cleanly and changes nothing."""
    import random
    rng = random.Random(1)
    seeds = [open(mlp.export.params, "rb").read()]
    paths = []
    for k in range(300):
        path = tmp_path / f"f{k}.params"
        path.write_bytes(_mutate(rng, seeds[0], seeds))
        paths.append(str(path))
    exe = os.path.join(mlp.work, "fuzz_params")
    run([CC, "-O1", "-g", "-o", exe, os.path.join(HERE, "aot", "fuzz_params.c"), f"-I{mlp.dir}",
         f"-L{mlp.dir}", "-lmlp", f"-Wl,-rpath,{mlp.dir}", f"-Wl,-rpath-link,{mlp.dir}", "-lm"])
    proc = run([exe] + paths, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


@pytest.mark.parametrize("name", ["m", "c", "pthread", "gomp", "z", "gcc_s"])
def test_export_refuses_names_of_system_libraries(mlp, tmp_path, name):
    with pytest.raises(G.GraphcTypeError, match=f"lib{re.escape(name)}.so, which shadows"):
        G.aot.export({"infer": mlp.functions["infer"]}, str(tmp_path / "x"), name=name)
    assert not os.path.exists(tmp_path / "x")


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as fh:
            return set(next(line for line in fh if line.startswith("flags")).split(":")[1].split())
    except (OSError, StopIteration):
        return None


# (-march, an extension it enables that /proc/cpuinfo names the same way)
_FOREIGN_MARCH = [("x86-64-v4", "avx512f"), ("knl", "avx512er")]


@pytest.mark.skipif(platform.machine() != "x86_64" or _cpu_flags() is None, reason="x86-64 Linux")
def test_create_refuses_a_cpu_without_the_extensions_it_was_built_for(tmp_path):
    import ctypes
    import sys
    flags = _cpu_flags()
    march, feature = next(((m, f) for m, f in _FOREIGN_MARCH if f not in flags), (None, None))
    if march is None:
        pytest.skip("this CPU has every extension the test knows how to miss")
    w = G.shared(np.ones(3, "float32"), name="w")
    x = G.vector("x")
    fn = G.function([x], x * w + 1, updates={w: w * 2}, name="aot_cpu_check")
    ex = G.aot.export({"step": fn}, str(tmp_path / "foreign"), name="foreign", march=march)
    # In a child: before create checked the CPU, it died of SIGILL.
    probe = ("import ctypes, sys; lib = ctypes.CDLL(sys.argv[1]); "
             "lib.foreign_create_ex.restype = lib.foreign_create.restype = ctypes.c_void_p; "
             "err = ctypes.create_string_buffer(512); "
             "print(lib.foreign_create_ex(None, err, 512), lib.foreign_create(None)); "
             "print(err.value.decode())")
    proc = run([sys.executable, "-c", probe, ex.library], check=False)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    first, msg = proc.stdout.splitlines()[:2]
    assert first == "None None", proc.stdout
    assert "this CPU lacks" in msg and feature in msg and f"-march={march}" in msg, msg
    # A library for this CPU still creates contexts.
    ex = G.aot.export({"step": fn}, str(tmp_path / "native"), name="native")
    lib = ctypes.CDLL(ex.library)
    err = ctypes.create_string_buffer(512)
    lib.native_create_ex.restype = ctypes.c_void_p
    ctx = lib.native_create_ex(None, err, 512)
    assert ctx, err.value
    lib.native_destroy(ctypes.c_void_p(ctx))
