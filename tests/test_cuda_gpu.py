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
