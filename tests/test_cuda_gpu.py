"""The GPU suite: the CUDA target on a real device (an NVIDIA GPU, its driver, pycuda, nvcc).
Collected everywhere, each test skipped with a reason naming what is missing; on a GPU machine
`cuda` also joins every per-target test (conftest's `target` fixture). bench/gpu_check.sh runs
this file on a lent GPU machine."""
import time

import numpy as np
import pytest

import graphc as G
import cuda_cases as cases


@pytest.fixture(autouse=True)
def real_device(monkeypatch):
    from graphc.targets.cuda import availability
    monkeypatch.delenv("GRAPHC_CUDA_EMULATE", raising=False)
    lacking = availability.missing()
    if lacking:
        pytest.skip("no GPU to run the CUDA target on: missing " + ", ".join(lacking))


def _rand(shape, dtype, seed=0):
    return np.random.default_rng(seed).uniform(-2, 2, shape).astype(dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_elementwise_on_the_device_matches_numpy(dtype):
    f = G.function(*cases.elementwise_graph(dtype), target="cuda")
    for shape in ((5, 7), (1000, 3001)):  # the second: many blocks, the grid-stride loop
        x, y = _rand(shape, dtype), _rand(shape[1:], dtype, 1)
        a, b = f(x, y)
        np.testing.assert_allclose(a, np.exp(x) * 2 + y, rtol=1e-6)
        np.testing.assert_allclose(b, (1 / (1 + np.exp(-x))) // 3 - np.maximum(x, y) % 2.5,
                                   rtol=1e-5, atol=1e-6)


def test_integer_semantics_on_the_device():
    f = G.function(*cases.int_graph(), target="cuda")
    a = np.random.default_rng(1).integers(-50, 50, 10000)
    b = np.random.default_rng(2).integers(-7, 7, 10000)
    b[b == 0] = 3
    p, q = f(a, b)
    np.testing.assert_array_equal(p, a // b + a % b)
    np.testing.assert_array_equal(q, np.maximum(a, b) * 3)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cublas_training_steps_match_the_c_target(dtype):
    def step(target):
        x = G.matrix("x", dtype=dtype)
        w = G.shared(np.linspace(-1, 1, 12 * 40).reshape(12, 40).astype(dtype), name="w")
        b = G.shared(np.zeros(40, dtype), name="b")
        h = G.tanh(x @ w + b)
        gw = G.grad((h * h).sum(), w)
        return G.function([x], h, updates=[(w, w - 0.01 * gw), (b, b * 0.5 + 0.25)],
                          target=target), w
    fc, wc = step("c")
    fg, wg = step("cuda")
    for s in range(5):
        x = _rand((33, 12), dtype, s)
        np.testing.assert_allclose(fg(x), fc(x), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(wg.get_value(), wc.get_value(), rtol=1e-4, atol=1e-5)


def test_one_value_for_cpu_and_gpu_functions():
    w = G.shared(np.arange(6, dtype="float32").reshape(3, 2), name="w")
    x = G.matrix("x")
    gpu = G.function([x], x @ w, updates=[(w, w * 2)], target="cuda")
    cpu = G.function([x], x @ w, updates=[(w, w + 1)], target="cpu")
    w0, xv = w.get_value(), np.ones((1, 3), "float32")
    np.testing.assert_allclose(gpu(xv), xv @ w0)
    assert w.where() == "device"
    np.testing.assert_allclose(cpu(xv), xv @ (w0 * 2))
    np.testing.assert_allclose(gpu(xv), xv @ (w0 * 2 + 1))
    np.testing.assert_allclose(w.get_value(), (w0 * 2 + 1) * 2)


def test_pycuda_arrays_are_inputs_without_a_copy():
    import pycuda.gpuarray as gpuarray
    x = G.matrix("x")
    f = G.function([x], G.exp(x), target="cuda")
    xv = _rand((64, 64), "float32")
    np.testing.assert_allclose(f(gpuarray.to_gpu(xv)), np.exp(xv), rtol=1e-6)
    f.program.host_outputs = False
    out = f(gpuarray.to_gpu(xv))
    np.testing.assert_allclose(out.get(), np.exp(xv), rtol=1e-6)


def test_an_error_inside_a_kernel_is_raised_after_the_call_and_changes_nothing():
    cases.LabelProbe().check_runs()


def test_per_call_overhead_is_reported():
    x, y = G.vector("x"), G.vector("y")
    f = G.function([x, y], x + y, target="cuda")
    xv, yv = np.ones(10, "float32"), np.ones(10, "float32")
    for _ in range(20):
        f(xv, yv)
    n, t0 = 500, time.perf_counter()
    for _ in range(n):
        f(xv, yv)
    per_call = (time.perf_counter() - t0) / n
    print(f"\nper-call overhead of a compiled x + y on the GPU (numpy in and out): "
          f"{per_call * 1e6:.1f} us")
    assert per_call < 5e-3


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_chunked_convolution_on_the_device_matches_the_c_target(dtype, monkeypatch):
    """conv_chunked* with a budget of two images a chunk: 5 images run as chunks of 2, 2, 1."""
    from test_cuda_conv_chunked import _conv_graph, _two_images_per_chunk
    _two_images_per_chunk(monkeypatch, dtype)
    inputs, outputs = _conv_graph(dtype)
    fg = G.function(inputs, outputs, target="cuda")
    fc = G.function(inputs, outputs, target="c")
    assert {k.kind for k in fg.program.program.kernels} >= {
        "conv_chunked", "conv_chunked_grad_input", "conv_chunked_grad_weights"}
    tol = 1e-4 if dtype == "float32" else 1e-10
    for n in (5, 2, 1):
        x, w = _rand((n, 4, 6, 5), dtype, n), _rand((6, 2, 3, 2), dtype, 9)
        for got, want in zip(fg(x, w), fc(x, w)):
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol * (1 + np.abs(want).max()))


def test_profile_times_the_device_kernels_with_events():
    x = G.matrix("x")
    w = G.shared(_rand((256, 128), "float32"), name="w")
    cost = G.sum(G.tanh(x @ w) ** 2)
    f = G.function([x], cost, updates=[(w, w - 1e-4 * G.grad(cost, w))], target="cuda")
    xv = _rand((512, 256), "float32", 3)
    f(xv)
    before = w.get_value()
    r = G.profile(f, xv, repeat=5)
    print("\n" + str(r))
    np.testing.assert_array_equal(w.get_value(), before)
    assert len(r.kernels) == len(f.program.program.kernels)
    assert all(k.seconds > 0 for k in r.kernels)
    # (medians need not add up; the means over the same calls do)
    assert sum(k.mean_seconds for k in r.kernels) <= r.mean_call_seconds * 1.000001
    call = r.trace[-1]
    assert all(call["t0"] <= s <= call["t1"] for s in call["starts"])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_vector_loads_on_the_device_equal_the_scalar_kernel(dtype):
    """Aligned inputs take the float4 / double2 kernel, an input one element off alignment the
    scalar one: bit for bit the same at odd sizes."""
    from graphc.targets.cuda.device import DeviceArray
    x, y = G.vector("x", dtype=dtype), G.vector("y", dtype=dtype)
    f = G.function([x, y], G.exp(x) * 2 + y, target="cuda")
    assert "_v(" in f.program.source
    for n in (1, 7, 4097, 1000003):
        xv, yv = _rand(n, dtype, n), _rand(n, dtype, n + 1)
        base = DeviceArray((n + 1,), dtype)
        off = DeviceArray((n,), dtype, ptr=base.ptr + np.dtype(dtype).itemsize, owner=base)
        off.set(xv)
        np.testing.assert_array_equal(f(xv, yv), f(off, yv))
        np.testing.assert_allclose(f(xv, yv), np.exp(xv) * 2 + yv, rtol=1e-6)
