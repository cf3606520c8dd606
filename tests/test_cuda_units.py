"""A CUDA program split over several .cu translation units (built in parallel, linked into one
library) runs as the single-unit program does, emulated; nvcc compiles the units."""
import shutil

import numpy as np
import pytest

import graphc as G
import cuda_cases as cases
from graphc.targets.cuda import render_cuda

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")


@pytest.fixture
def emulate(monkeypatch):
    monkeypatch.setenv("GRAPHC_CUDA_EMULATE", "1")


@pytest.fixture
def three_units(monkeypatch):
    """Every function of a few kernels splits into up to three units."""
    monkeypatch.setattr(G.config, "compile_jobs", 3)
    real = render_cuda.render_units
    monkeypatch.setattr(render_cuda, "render_units", lambda program, name, max_units, env=None:
                        real(program, name, max_units, env, min_unit_kernels=2))


def test_an_error_in_an_early_unit_is_read_before_a_later_units_in_place_update(emulate):
    """The probe's check kernel (unit 0) reports a bad label; the update of w (unit 2) must not
    run, and the message comes from unit 0's report."""
    probe = cases.LabelProbe(units=3)
    assert len(probe.sources) == 3
    last = probe.sources[2].split("int gc_seg2(")[1]  # the unit's launches
    assert last.index("if (ctx->h_err[0]) return 1;") < last.index("k2: elemwise")
    probe.check_runs()


def test_a_training_step_in_three_units_matches_the_c_target(emulate, three_units):
    def step(target):
        x = G.matrix("x")
        w = G.shared(np.linspace(-1, 1, 12).reshape(3, 4).astype("float32"), name="w")
        b = G.shared(np.zeros(4, "float32"), name="b")
        h = G.tanh(x @ w + b)
        cost = (h * h).mean() + (G.exp(b) * 0.01).sum()
        gw, gb = G.grad(cost, [w, b])
        f = G.function([x], [cost, h.max(axis=1)], updates=[(w, w - 0.1 * gw), (b, b - 0.1 * gb)],
                       target=target)
        return f, w, b
    fg, wg, bg = step("cuda")
    assert "translation unit 2 of 3" in fg.program.source
    fc, wc, bc = step("c")
    for s in range(3):
        x = np.random.default_rng(s).uniform(-2, 2, (6, 3)).astype("float32")
        for a, c in zip(fg(x), fc(x)):
            np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(wg.get_value(), wc.get_value(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bg.get_value(), bc.get_value(), rtol=1e-5, atol=1e-6)


def test_small_programs_stay_one_unit():
    x = G.vector("x")
    f = G.function([x], G.exp(x) + 1, backend="py")
    from graphc.codegen.plan import build_program
    from graphc.targets.cuda.target import CUDA_CAPABILITIES
    program = build_program(f.fgraph, f.checker, CUDA_CAPABILITIES)
    assert len(render_cuda.render_units(program, "f", 16)) == 1


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (the CUDA toolkit) is not installed")
def test_nvcc_builds_split_units_into_one_library_with_its_entry_points(tmp_path, monkeypatch):
    import ctypes  # noqa: F401  (the library is not loaded: its cudart needs a driver)
    import subprocess
    monkeypatch.delenv("GRAPHC_CUDA_EMULATE", raising=False)
    from graphc.targets.cuda import toolchain
    probe = cases.LabelProbe(units=2)
    srcs = []
    for u, source in enumerate(probe.sources):
        srcs.append(str(tmp_path / f"p.{u}.cu"))
        with open(srcs[-1], "w") as fh:
            fh.write(source)
    toolchain.build_units(srcs, str(tmp_path / "p.so"))
    symbols = subprocess.run(["nm", "-D", "--defined-only", str(tmp_path / "p.so")],
                             capture_output=True, text=True).stdout
    assert all(f" {name}\n" in symbols for name in ("gc_run", "gc_ctx_new", "gc_ctx_free"))
    assert "gc_seg1" not in symbols  # segments are the library's own
