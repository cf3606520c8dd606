"""The CUDA target on the CPU execution model (GRAPHC_CUDA_EMULATE=1): the very same .cu that
nvcc builds, compiled by g++ against templates/cuda/gc_cuda_emulate.h. Small graphs: the
emulator runs every thread as a fiber."""
import os
import pickle
import shutil

import numpy as np
import pytest

import graphc as G
import cuda_cases as cases
from graphc.errors import CompileError, InputError, RuntimeCheckError

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")


@pytest.fixture(autouse=True)
def emulate(monkeypatch):
    monkeypatch.setenv("GRAPHC_CUDA_EMULATE", "1")


def _rand(shape, dtype, seed=0):
    return np.random.default_rng(seed).uniform(-2, 2, shape).astype(dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_elementwise_matches_numpy(dtype):
    inputs, outputs = cases.elementwise_graph(dtype)
    f = G.function(inputs, outputs, target="cuda")
    x, y = _rand((5, 7), dtype), _rand((7,), dtype, 1)
    a, b = f(x, y)
    np.testing.assert_allclose(a, np.exp(x) * 2 + y, rtol=1e-6)
    np.testing.assert_allclose(b, (1 / (1 + np.exp(-x))) // 3 - np.maximum(x, y) % 2.5, rtol=1e-6)
    assert a.dtype == dtype and isinstance(a, np.ndarray)
    assert "__global__" in f.program.source and "GC_LAUNCH(gc_k0" in f.program.source


def test_integer_division_as_numpy_and_sizes_that_change_between_calls():
    f = G.function(*cases.int_graph(), target="cuda")
    for n in (9, 3, 600):  # 600 > one block of 256 threads x GC_MAX_GRID: the grid-stride loop
        a = np.random.default_rng(n).integers(-50, 50, n)
        b = np.random.default_rng(n + 1).integers(-7, 7, n)
        b[b == 0] = 3
        p, q = f(a, b)
        np.testing.assert_array_equal(p, a // b + a % b)
        np.testing.assert_array_equal(q, np.maximum(a, b) * 3)


def test_arange_and_output_copy():
    f = G.function(*cases.arange_graph(), target="cuda")
    v = np.arange(4) * 10
    a, b = f(v)
    np.testing.assert_array_equal(a, v + np.arange(4))
    np.testing.assert_array_equal(b, np.arange(5, dtype="float32"))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_steps_match_the_c_target(dtype):
    """A gemm forward, its gradient as an in-place gemm update and an elementwise update of a
    second variable: three steps on each target from the same start."""
    def step(target):
        x = G.matrix("x", dtype=dtype)
        w = G.shared(np.linspace(-1, 1, 12).reshape(3, 4).astype(dtype), name="w")
        b = G.shared(np.zeros(4, dtype), name="b")
        h = G.tanh(x @ w + b)
        gw = G.grad((h * h).sum(), w)  # (the cost itself is not an output: no reduction kernel)
        f = G.function([x], h, updates=[(w, w - 0.1 * gw), (b, b * 0.5 + 0.25)], target=target)
        return f, w, b
    xs = [_rand((6, 3), dtype, s) for s in range(3)]
    fc, wc, bc = step("c")
    fg, wg, bg = step("cuda")
    for x in xs:
        np.testing.assert_allclose(fg(x), fc(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(wg.get_value(), wc.get_value(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bg.get_value(), bc.get_value(), rtol=1e-6)


def test_a_shared_variable_has_one_value_for_cpu_and_cuda_functions():
    w = G.shared(np.arange(6, dtype="float32").reshape(3, 2), name="w")
    x = G.matrix("x")
    gpu = G.function([x], x @ w, updates=[(w, w * 2)], target="cuda")
    cpu = G.function([x], x @ w, updates=[(w, w + 1)], target="cpu")
    w0, xv = w.get_value(), np.ones((1, 3), "float32")
    assert w.where() == "host"
    np.testing.assert_allclose(gpu(xv), xv @ w0)
    assert w.where() == "device"  # the update stayed on the device
    np.testing.assert_allclose(w.get_value(), w0 * 2)
    assert w.where() == "both"  # get_value copied it back and left the device copy current
    np.testing.assert_allclose(cpu(xv), xv @ (w0 * 2))  # the CPU sees the CUDA update
    assert w.where() == "host"
    np.testing.assert_allclose(gpu(xv), xv @ (w0 * 2 + 1))  # and the CUDA side the CPU's
    w.set_value(np.full((3, 2), 5, "float32"))
    np.testing.assert_allclose(gpu(xv), xv @ np.full((3, 2), 5))
    np.testing.assert_allclose(w.get_value(), 10)


def test_bad_inputs_get_the_c_targets_errors_and_change_nothing():
    def make(target):
        x = G.matrix("x")
        w = G.shared(np.ones((3, 2), "float32"), name="w")
        return G.function([x], x @ w, updates=[(w, w + 1)], target=target), w
    fc, _ = make("c")
    fg, w = make("cuda")
    fg(np.ones((2, 3), "float32"))
    before, where = w.get_value(), w.where()
    for bad in (np.ones((2, 3), "float64"), np.ones((2, 4), "float32"), np.ones(3, "float32"),
                np.ones((3, 2), "float32").T):
        with pytest.raises(InputError) as on_c:
            fc(bad)
        with pytest.raises(InputError) as on_cuda:
            fg(bad)
        assert str(on_cuda.value) == str(on_c.value)
    assert w.where() == where
    np.testing.assert_array_equal(w.get_value(), before)


def test_device_array_inputs_and_device_outputs():
    from graphc.targets.cuda.device import DeviceArray
    x = G.matrix("x")
    f = G.function([x], G.exp(x), target="cuda")
    xv = _rand((4, 5), "float32")
    dev = DeviceArray.from_host(xv)
    np.testing.assert_allclose(f(dev), np.exp(xv), rtol=1e-6)
    with pytest.raises(InputError, match="expected dtype float32, got float64"):
        f(DeviceArray.from_host(xv.astype("float64")))
    out = f.program.run_shared(f.checker, [dev], [], [], 1, host_outputs=False)[0]
    assert isinstance(out, DeviceArray) and out.shape == (4, 5)
    np.testing.assert_allclose(out.get(), np.exp(xv), rtol=1e-6)


def test_a_resident_shared_variable_pickles_as_a_plain_one():
    w = G.shared(np.ones(3, "float32"), name="w")
    G.function([], [], updates=[(w, w * 3)], target="cuda")()
    assert w.where() == "device"
    back = pickle.loads(pickle.dumps(w))
    assert type(back) is G.SharedVariable if hasattr(G, "SharedVariable") else True
    np.testing.assert_array_equal(back.get_value(), [3, 3, 3])


def test_a_kind_without_a_template_is_named_at_function(monkeypatch):
    from graphc.targets.cuda import render_cuda
    every = render_cuda.template_kinds
    monkeypatch.setattr(render_cuda, "template_kinds", lambda env=None: every(env) - {"reduce"})  # (it has one)
    x = G.matrix("x")
    with pytest.raises(CompileError, match=r"target cuda cannot compile reduce \(op Reduce"):
        G.function([x], x.sum(), target="cuda")


def test_target_and_backend_are_one_switch(monkeypatch):
    x = G.vector("x")
    assert G.function([x], x + 1, backend="cuda").program.source.count("__global__") == 1
    with pytest.raises(G.GraphcTypeError, match="disagree"):
        G.function([x], x + 1, target="cuda", backend="c")
    assert "__global__" not in G.function([x], x + 1, target="cpu").program.source


def test_without_gpu_or_emulation_the_error_names_what_is_missing(monkeypatch):
    from graphc.targets.cuda import availability
    monkeypatch.delenv("GRAPHC_CUDA_EMULATE")
    if not availability.missing():
        pytest.skip("this machine has a GPU, its driver, pycuda and nvcc")
    x = G.vector("x")
    with pytest.raises(G.GraphcError, match=r"target cuda cannot run on this machine: missing .*"
                                            r"GRAPHC_CUDA_EMULATE=1"):
        G.function([x], x + 1, target="cuda")


def test_an_error_found_inside_a_kernel_is_raised_after_the_call_and_changes_nothing():
    """A fallible kernel (a test-only kind that checks labels, tests/templates/cuda/) before an
    in-place update of a shared variable: the launcher reads the device error word before that
    update runs, so a bad label leaves the variable as it was."""
    import jinja2
    from graphc.codegen.program import Kernel
    from graphc.targets.c.cache_trust import check_file, private_dir
    from graphc.targets.c.jinja_env import make_environment
    from graphc.targets.c.templates_dir import templates_root
    from graphc.targets.cuda import render_cuda, toolchain
    from graphc.targets.cuda.executable import CudaProgram
    from program_cases import program_of
    labels = G.vector("labels", dtype="int64")
    w = G.shared(np.ones(4, "float32"), name="w")
    fn = G.function([labels], labels * 2, updates=[(w, w + 1)], backend="py")
    from graphc.codegen.plan import build_program
    from graphc.targets.cuda.target import CUDA_CAPABILITIES
    program = build_program(fn.fgraph, fn.checker, CUDA_CAPABILITIES)
    label_buf = next(b for b in program.externals if b.role == "input")
    program.kernels.insert(0, Kernel("probe_check", [], [label_buf],
                                     {"n": label_buf.shape[0], "limit": 3}, label="check labels"))
    env = make_environment(templates_root(), private_dir("jinja-cuda-test"), None,
                           filters=render_cuda.CUDA_FILTERS, check_file=check_file)
    env.loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(os.path.dirname(__file__) + "/templates"),
                                      env.loader])
    source = render_cuda.render_program(program, "probe", env=env)
    launcher = source.split("int gc_run(")[1]
    assert launcher.index("goto gc_report") < launcher.index("k2: elemwise")  # before the update
    path = os.path.join(private_dir("cuda-test"), "probe.so")
    src = path[:-3] + ".cu"
    with open(src, "w") as fh:
        fh.write(source)
    toolchain.build(src, path)
    prog = CudaProgram(program, source, path, fn.fgraph)
    run = lambda v: prog.run_shared(fn.checker, [np.array(v)], fn.fgraph.shareds,
                                    fn.fgraph.update_targets, 1)
    np.testing.assert_array_equal(run([0, 2, 1])[0], [0, 4, 2])
    np.testing.assert_array_equal(w.get_value(), 2)
    with pytest.raises(RuntimeCheckError, match=r"label out of range: 7 at position 1, for 3 "
                                                r"classes in check labels"):
        run([0, 7, 1])
    np.testing.assert_array_equal(w.get_value(), 2)  # the failed call changed nothing
    np.testing.assert_array_equal(run([1, 1, 1])[0], [2, 2, 2])  # the error word was reset
    np.testing.assert_array_equal(w.get_value(), 3)
