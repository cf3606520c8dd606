"""Regression tests for misuse that once crashed or gave raw errors (issue: hardening)."""
import os
import subprocess
import sys

import numpy as np
import pytest

import graphc as G


def test_invalid_compile_jobs_setting_does_not_break_import():
    env = dict(os.environ, GRAPHC_COMPILE_JOBS="abc")
    proc = subprocess.run([sys.executable, "-c", "import graphc; print(graphc.config.compile_jobs)"],
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0"
    assert "GRAPHC_COMPILE_JOBS='abc'" in proc.stderr


def test_grad_wrt_a_number_is_a_clear_error():
    x = G.vector("x")
    with pytest.raises(G.GradError, match="wrt must be a graph variable"):
        G.grad((x * x).sum(), 3.0)


def _in_place_step(w):
    f = G.function([], [], updates={w: w + 1})
    return f


def test_shared_value_from_read_only_memory_is_copied(tmp_path):
    path = tmp_path / "w.npy"
    np.save(path, np.zeros(8, "float32"))
    ro = np.load(path, mmap_mode="r")
    w = G.shared(np.zeros(8, "float32"), name="w")
    w.set_value(ro, borrow=True)
    frozen = bytes(8 * 4)
    over_bytes = np.frombuffer(frozen, "float32")
    _in_place_step(w)()
    np.testing.assert_array_equal(w.get_value(), np.ones(8, "float32"))
    w.set_value(over_bytes, borrow=True)
    _in_place_step(w)()
    np.testing.assert_array_equal(w.get_value(), np.ones(8, "float32"))
    assert frozen == bytes(8 * 4)  # the immutable bytes were not written through
    np.testing.assert_array_equal(np.load(path), np.zeros(8, "float32"))


def test_big_endian_values_of_shared_variables_are_read_as_numbers():
    value = np.arange(6, dtype=">f4").reshape(2, 3)
    w = G.shared(value, name="w")
    f = G.function([], w * 2.0)
    np.testing.assert_array_equal(f(), np.arange(6, dtype="float32").reshape(2, 3) * 2)
    w.set_value(np.full((2, 3), 1.5, dtype=">f4"), borrow=True)
    np.testing.assert_array_equal(f(), np.full((2, 3), 3.0, "float32"))
    assert w.get_value().dtype.isnative


def test_output_of_rank_above_sixteen_is_served():
    shape = (1,) * 17 + (3,)
    x = G.tensor("x", shape)
    f = G.function([x], x * 2.0)
    value = np.arange(3, dtype="float32").reshape(shape)
    for _ in range(3):  # the fast path serves repeated calls
        np.testing.assert_array_equal(f(value), value * 2)


_FORK_SCRIPT = r"""
import multiprocessing as mp, os, numpy as np, graphc as G
x = G.vector("x")
f = G.function([x], G.tanh(x) * 2.0)
v = np.ones(1 << 20, "float32")          # large enough for the parallel branch
f(v)                                     # the parent's OpenMP pool is now running
pid = os.fork()
if pid == 0:
    os._exit(0 if abs(f(v)[0] - 2 * np.tanh(1)) < 1e-5 else 3)
_, status = os.waitpid(pid, 0)
assert status == 0, status
def work(k):
    return float(f(v * k)[0])
with mp.get_context("fork").Pool(2) as pool:
    got = pool.map(work, [0.5, 1.0])
assert np.allclose(got, 2 * np.tanh([0.5, 1.0]), rtol=1e-5), got
os.register_at_fork(after_in_child=lambda: f)  # keeps f alive into interpreter shutdown
print("ok")
"""


def test_fork_after_a_parallel_call_runs_the_child():
    """fork() after a parallel call: the child computes (on one thread) instead of waiting
    forever for the parent's OpenMP workers; a function that lives into interpreter shutdown is
    freed before its library is unloaded."""
    proc = subprocess.run([sys.executable, "-c", _FORK_SCRIPT], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, OMP_NUM_THREADS="2"))
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]



def test_openmp_pinning_is_retried_until_it_holds(monkeypatch):
    """A program's library is unloaded when its last function goes; libgomp must stay (its worker
    threads outlive the program). Pinning was tried once, at the first load: when that program
    had not brought libgomp in, it was never pinned, and a later parallel program's threads died
    with libgomp when that program was dropped (SIGSEGV in a libgomp worker)."""
    from graphc.targets.c import loader
    calls = []

    def cdll(name, mode=0):
        calls.append(name)
        if len(calls) <= 2:  # the first load: neither library is in the process yet
            raise OSError(f"{name}: not loaded")
        return object()  # (a stand-in: this test must not load anything)

    monkeypatch.setattr(loader, "_pinned", {})
    monkeypatch.setattr(loader.ctypes, "CDLL", cdll)
    loader._pin_threaded_dependencies()
    assert loader._pinned == {}
    loader._pin_threaded_dependencies()  # a later load finds them
    assert "libgomp.so.1" in loader._pinned
