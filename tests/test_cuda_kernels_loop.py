"""The loop kernel on the CUDA target (templates/cuda/loop.cu.j2, a host loop of launches):
test_loop.py's recurrences emulated (GRAPHC_CUDA_EMULATE=1) against numpy, with static and
symbolic trip counts (0 included), a bad index inside the body reported with the C target's
message, and the loop compiled by nvcc for sm_90 where nvcc is installed."""
import re
import shutil
import subprocess

import numpy as np
import pytest

import graphc as G
from graphc.errors import RuntimeCheckError
from graphc.ir.inner_graph import InnerGraph
from graphc.ir.ops.loop import loop
from graphc.targets.cuda import toolchain
from graphc.targets.cuda.render_cuda import render_program

from program_cases import program_of
from test_loop import CASES

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")


@pytest.fixture
def emulate(monkeypatch):
    monkeypatch.setenv("GRAPHC_CUDA_EMULATE", "1")


@pytest.mark.parametrize("steps", ["symbolic", "static"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_loop_matches_numpy(case, steps, dtype, emulate):
    build, oracle, draw = CASES[case]
    inputs, outputs = build(dtype, G.dim("T") if steps == "symbolic" else 6)
    f = G.function(inputs, outputs, target="cuda", name=f"loop_{case}_{steps}")
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    for n in ([6, 1, 0] if steps == "symbolic" else [6]):
        args = [a.astype(dtype) for a in draw(np.random.default_rng(n), n, dtype)]
        for got, want in zip(f(*args), oracle(*args)):
            assert got.dtype == dtype and got.shape == want.shape
            np.testing.assert_allclose(got, want, **tol)


def _gathering_loop():
    """acc_t = acc_{t-1} + table[idx_t]: a body kernel that can report a bad index."""
    table, idx = G.matrix("table"), G.tensor("idx", (None, 2), "int64")
    acc0 = G.vector("acc0")
    it, acc, tab = G.tensor("it", (2,), "int64"), G.vector("acc"), G.matrix("tab")
    new = acc + tab[it].sum(axis=0)
    return [table, idx, acc0], loop(InnerGraph([it, acc, tab], [new, new]), [idx], [acc0], [table])


def test_a_bad_index_inside_the_body_is_the_c_targets_error(emulate):
    inputs, outputs = _gathering_loop()
    table = np.arange(12, dtype="float32").reshape(4, 3)
    good = [table, np.array([[0, 1], [3, 2], [1, 1]], "int64"), np.zeros(3, "float32")]
    bad = [table, np.array([[0, 1], [3, 9], [1, 1]], "int64"), np.zeros(3, "float32")]
    messages = []
    for target in ("c", "cuda"):
        f = G.function(inputs, outputs, target=target)
        np.testing.assert_allclose(f(*good)[0], table[[0, 1, 3, 2, 1, 1]].sum(axis=0))
        with pytest.raises(RuntimeCheckError) as info:
            f(*bad)
        messages.append(re.sub(r"\bv[0-9]+\b", "v", str(info.value)))
    assert messages[0] == messages[1] and "index out of range: 9" in messages[1]


@pytest.mark.skipif(toolchain.nvcc_path() is None, reason="nvcc (the CUDA toolkit) is not installed")
def test_nvcc_compiles_loops_for_sm_90(tmp_path):
    from graphc.targets.cuda.profiling import render_profiled
    procs = []
    for name, (inputs, outputs) in {"rnn": CASES["rnn"][0]("float32", G.dim("T")),
                                    "gather": _gathering_loop()}.items():
        src = tmp_path / f"{name}.cu"
        # the rnn as the profiling build: event pairs around the loop's body kernels too
        render = render_profiled if name == "rnn" else render_program
        src.write_text(render(program_of(inputs, outputs), name))
        cmd = toolchain.nvcc_compile_command(str(src), str(tmp_path / f"{name}.o"), arch="sm_90")
        procs.append((name, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                             text=True)))
    results = [(name, p.communicate()[0], p.returncode) for name, p in procs]
    failed = [f"{name}:\n{out[-4000:]}" for name, out, rc in results if rc != 0]
    assert not failed, "\n".join(failed)


def test_a_backwards_scan_and_its_gradient_agree_with_the_c_target(dtype, emulate):
    # go_backwards and the BPTT gradient are loops that take their slices at trip-1-it
    # (the loop kernel's `reverse`): the CUDA loop must read the same positions as the C one.
    X, h0, W = G.tensor("X", (5, 3), dtype), G.tensor("h0", (3,), dtype), G.tensor("W", (3, 3), dtype)
    hs, _ = G.scan(lambda x_t, h, W: G.tanh(x_t + G.dot(h, W)), sequences=X, outputs_info=h0,
                   non_sequences=W, go_backwards=True)
    loss = (hs * hs).sum()
    outs = [hs, G.grad(loss, W), G.grad(loss, X)]
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(s).astype(dtype) for s in [(5, 3), (3,), (3, 3)]]
    want = G.function([X, h0, W], outs, target="c")(*args)
    got = G.function([X, h0, W], outs, target="cuda")(*args)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, **tol)
