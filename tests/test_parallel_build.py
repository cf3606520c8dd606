"""The parallel build: a program split into translation units compiled at once, and what setup.py
prepares at install (compiled templates, the cffi module) so a cold compile does not redo it."""
import os
import random

import numpy as np
import pytest

import graphc as G
from graphc.targets.c import jinja_env, render_c
from graphc.codegen.program import Kernel
from graphc.targets.c import ffi_module


class _Program:
    def __init__(self, kinds):
        self.kernels = [Kernel(kind, [], []) for kind in kinds]


KINDS = ["gemm", "elemwise", "reduce", "softmax_xent", "fill", "conv_im2col"]


@pytest.mark.parametrize("seed", range(20))
def test_segments_are_contiguous_cover_every_kernel_and_respect_the_unit_limit(seed):
    rng = random.Random(seed)
    kinds = [rng.choice(KINDS) for _ in range(rng.randint(1, 60))]
    max_units = rng.randint(1, 6)
    segments = render_c.plan_segments(_Program(kinds), max_units)
    assert 1 <= len(segments) <= max_units
    assert [i for seg in segments for i in seg] == list(range(len(kinds)))
    assert all(len(seg) > 0 for seg in segments)


def test_small_programs_stay_one_unit_and_large_ones_are_balanced():
    assert len(render_c.plan_segments(_Program(["elemwise"] * 3), 8)) == 1
    kinds = ["gemm", "elemwise", "reduce", "softmax_xent"] * 10
    segments = render_c.plan_segments(_Program(kinds), 2)
    assert len(segments) == 2
    cost = [sum(render_c.kernel_compile_cost(Kernel(kinds[i], [], [])) for i in seg)
            for seg in segments]
    assert max(cost) <= 1.25 * min(cost), cost


def _mlp_step(seed=0):
    rng = np.random.RandomState(seed)
    sizes = [20, 16, 12, 5]
    params = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        params.append(G.shared((rng.randn(a, b) * 0.3).astype("float32"), name=f"W{i}"))
        params.append(G.shared(np.zeros(b, "float32"), name=f"b{i}"))
    x, y = G.matrix("x"), G.vector("y", "int64")
    h = x
    for i in range(3):
        h = G.dot(h, params[2 * i]) + params[2 * i + 1]
        h = G.relu(h) if i < 2 else h
    loss = -G.log_softmax(h)[G.arange(x.shape[0]), y].mean()
    grads = G.grad(loss, params)
    return [x, y], loss, {p: p - 0.1 * g for p, g in zip(params, grads)}, params


@pytest.fixture
def force_units(monkeypatch):
    def force(n):
        monkeypatch.setattr(render_c, "MIN_UNIT_COST", 1)
        monkeypatch.setattr(G.config, "compile_jobs", n)
    return force


def test_a_split_build_computes_what_the_one_unit_build_and_the_reference_compute(
        force_units, monkeypatch, tmp_path):
    rng = np.random.RandomState(1)
    xv = rng.randn(7, 20).astype("float32")
    yv = rng.randint(0, 5, 7).astype("int64")
    results = {}
    for label, n in [("py", None), ("one", 1), ("three", 3)]:
        ins, loss, updates, params = _mlp_step()
        if label == "py":
            f = G.function(ins, loss, updates=updates, backend="py")
        else:
            force_units(n)
            # Its own cache: the artifact cache would rightly serve the other build's program.
            monkeypatch.setattr(G.config, "cache_dir", str(tmp_path / label))
            f = G.function(ins, loss, updates=updates, name=f"split_{label}")
            assert f.program.source.count("translation unit") == (0 if n == 1 else n)
            if n > 1:
                assert f"translation unit {n - 1} of {n}" in f.program.source
                lib_dir = os.path.dirname(f.program.lib_path)
                key = os.path.basename(f.program.lib_path)[:-3]
                assert sorted(p for p in os.listdir(lib_dir) if p.startswith(key) and p.endswith(".c")) \
                    == [f"{key}.{i}.c" for i in range(n)]
                assert not [p for p in os.listdir(lib_dir) if p.endswith(".o")]
        losses = [float(f(xv, yv)) for _ in range(3)]
        results[label] = (losses, [p.get_value() for p in params])
    for label in ("one", "three"):
        np.testing.assert_allclose(results[label][0], results["py"][0], rtol=1e-5)
        for got, want in zip(results[label][1], results["py"][1]):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    # The same kernels, only spread over files: the same numbers.
    np.testing.assert_array_equal(results["three"][0], results["one"][0])


def test_a_failed_split_build_raises_and_leaves_no_objects(force_units, monkeypatch, tmp_path):
    from graphc.targets.c import toolchain
    toolchain.compiler_version()  # the cache key needs the real compiler's version
    monkeypatch.setattr(G.config, "cache_dir", str(tmp_path))
    force_units(2)
    monkeypatch.setattr(G.config, "cc", "false")
    ins, loss, updates, _ = _mlp_step()
    with pytest.raises(G.CompileError, match="C compilation failed"):
        G.function(ins, loss, updates=updates)
    left = [p.name for p in tmp_path.rglob("*") if p.suffix in (".o", ".so", ".tmp")]
    assert left == []


# --- prepared at install ---------------------------------------------------------------------

def _template_tree(root, text):
    os.makedirs(root / "c", exist_ok=True)
    (root / "c" / "greet.j2").write_text(text)


def test_templates_compiled_at_install_are_used_and_never_stale(tmp_path):
    root, shipped, user = tmp_path / "templates", tmp_path / "shipped", tmp_path / "user"
    _template_tree(root, "int answer = {{ n }};\n")
    assert jinja_env.precompile_templates(str(root), str(shipped)) == 1
    assert len(os.listdir(shipped)) == 1
    env = jinja_env.make_environment(str(root), str(user), str(shipped))
    assert env.get_template("c/greet.j2").render(n=42) == "int answer = 42;\n"
    assert os.listdir(user) == []  # served from the shipped copy: nothing compiled again
    # An edited template (a source checkout after install) is recompiled, not served stale.
    _template_tree(root, "long answer = {{ n }};\n")
    env = jinja_env.make_environment(str(root), str(user), str(shipped))
    assert env.get_template("c/greet.j2").render(n=7) == "long answer = 7;\n"
    assert len(os.listdir(user)) == 1


def test_the_package_ships_its_compiled_templates_and_ffi_module():
    package = os.path.dirname(G.__file__)
    shipped = os.path.join(package, jinja_env.SHIPPED_DIR_NAME)
    if not os.path.isdir(shipped):
        pytest.skip("graphc is not installed here (a source checkout without `pip install`)")
    assert len(os.listdir(shipped)) >= 30
    assert os.path.exists(os.path.join(package, ffi_module.MODULE_NAME + ".py"))


def test_the_ffi_module_is_generated_into_the_cache_when_not_shipped(tmp_path):
    ffi = ffi_module.load_ffi(str(tmp_path / "no-package"), str(tmp_path / "cache"))
    assert os.path.exists(tmp_path / "cache" / (ffi_module.MODULE_NAME + ".py"))
    assert ffi.sizeof("int64_t") == 8


# --- kernels large enough to run on several threads ------------------------------------------

def test_kernels_above_the_parallel_threshold_agree_with_the_reference(dtype):
    """Every other test uses small arrays, which run on one thread: these sizes take the OpenMP
    branches (elementwise, reductions over rows and over columns, softmax cross-entropy)."""
    from graphc.targets.c.capabilities import PARALLEL_THRESHOLD
    rows, cols = 700, 520
    assert rows * cols > PARALLEL_THRESHOLD
    x, w = G.matrix("x", dtype), G.vector("w", dtype)
    y = G.vector("y", "int64")
    h = G.tanh(x * w + 0.5)
    logits = h[:, :10] * 3.0
    loss = -G.log_softmax(logits)[G.arange(x.shape[0]), y].mean()
    outs = [h, h.sum(axis=0), h.max(axis=1), (h * h).sum(), loss]
    rng = np.random.RandomState(5)
    args = [rng.randn(rows, cols).astype(dtype), rng.randn(cols).astype(dtype),
            rng.randint(0, 10, rows).astype("int64")]
    got = G.function([x, w, y], outs)(*args)
    want = G.function([x, w, y], outs, backend="py", opt_level="O0")(*args)
    tol = 2e-5 if dtype == "float32" else 1e-12
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, rtol=tol, atol=tol * rows)
