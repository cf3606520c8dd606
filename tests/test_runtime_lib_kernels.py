"""Pooling, LRN and softmax cross-entropy as runtime-library functions (issue 16, cold compile:
templates/c/_pool_lib.j2, _lrn_lib.j2, _softmax_xent_lib.j2). A program's kernel only calls them:
compiled results against the py reference and numeric gradients through that path (float32 and
float64; every compiled-in window shape and the run-time one; ceil-mode windows past the edge,
pads, odd sizes, no interior columns; one program at several run-time sizes; every compiled-in
LRN beta and a run-time one; int32 and int64 labels), the program's C carries no moved body,
and an AOT library still stands alone (defines its own copies)."""
import os
import shutil
import subprocess

import numpy as np
import pytest

import graphc as G
from graphc.errors import GraphcError
from graphc.targets.c.render_c import render_program
from graphc.targets.c.runtime_build import all_library_kernels, library_kernel
from graphc.testing import verify_grad

from program_cases import program_of

TOL = {"float32": dict(rtol=5e-5, atol=5e-5), "float64": dict(rtol=1e-11, atol=1e-11)}

# (kernel, stride, padding, ceil_mode, H, W): each window _pool_lib.j2 compiles in (2x2/2, 3x3/2,
# 3x3/1, unpadded) and others read at run time (padded ones, 2x2/1, 4x4/3, 1x1, a 3x2 window
# with stride 2x3); windows past the edge in ceil mode, pads, odd sizes, an image narrower than
# the window's interior.
POOLS = [
    ((2, 2), (2, 2), (0, 0), True, 7, 9),
    ((3, 3), (2, 2), (0, 0), True, 8, 11),
    ((3, 3), (1, 1), (0, 0), True, 6, 7),
    ((3, 3), (2, 2), (1, 1), True, 9, 7),
    ((3, 3), (1, 1), (1, 1), False, 5, 6),
    ((2, 2), (1, 1), (0, 0), False, 4, 5),
    ((4, 4), (3, 3), (1, 2), True, 10, 13),
    ((1, 1), (1, 1), (0, 0), False, 3, 4),
    ((3, 2), (2, 3), (1, 0), True, 7, 8),
    ((3, 3), (2, 2), (0, 0), True, 3, 2),
]


def _distinct(shape, dtype, seed=0):
    """Values without ties (max pooling's gradient is then smooth at them)."""
    n = int(np.prod(shape))
    return (np.random.RandomState(seed).permutation(n).reshape(shape) / n - 0.5).astype(dtype)


def _pool_graph(kind, geom, dtype):
    k, s, p, ceil, _, _ = geom
    x = G.tensor("x", (G.dim("n"), 3, G.dim("h"), G.dim("w")), dtype)
    pool = G.max_pool2d if kind == "max" else G.avg_pool2d
    y = pool(x, k, s, p, ceil_mode=ceil)
    return x, y


def _reference_and_compiled(inputs, outputs, values):
    ref = G.function(inputs, outputs, backend="py", opt_level="O0")(*values)
    got = G.function(inputs, outputs, backend="c")(*values)
    return ref, got


@pytest.mark.parametrize("geom", POOLS, ids=[f"k{g[0]}s{g[1]}p{g[2]}{'c' if g[3] else 'f'}{g[4]}x{g[5]}" for g in POOLS])
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_and_its_gradient_match_reference(kind, geom, dtype):
    x, y = _pool_graph(kind, geom, dtype)
    outs = [y, G.grad((y * y).sum(), x)]  # (the gradient weighs each output by itself)
    f_ref = G.function([x], outs, backend="py", opt_level="O0")
    f = G.function([x], outs, backend="c")
    kinds = {k.kind for k in f.program.program.kernels}
    assert {"max": {"pool_max", "pool_max_grad"}, "avg": {"pool_avg", "pool_avg_grad"}}[kind] <= kinds
    for n, h, w in [(2, geom[4], geom[5]), (1, geom[4] + 3, geom[5] + 2)]:  # run-time sizes
        xv = _distinct((n, 3, h, w), dtype, seed=h)
        for g_, r_ in zip(f(xv), f_ref(xv)):
            assert g_.shape == r_.shape
            np.testing.assert_allclose(g_, r_, **TOL[dtype])


@pytest.mark.parametrize("geom", [POOLS[1], POOLS[6], POOLS[8]], ids=["k3s2", "k4s3", "k3x2s2x3"])
def test_max_pool_without_argmax_matches_reference(geom, dtype):
    """An inference graph's max pool (pool_max_value: no argmax) through the library."""
    x, y = _pool_graph("max", geom, dtype)
    f = G.function([x], y, backend="c")
    assert [k.kind for k in f.program.program.kernels] == ["pool_max_value"]
    xv = np.random.RandomState(2).randn(2, 3, geom[4], geom[5]).astype(dtype)
    xv[0, 0, 0, :2] = np.nan  # NaN propagates as numpy's max does
    np.testing.assert_allclose(f(xv), G.function([x], y, backend="py")(xv), **TOL[dtype])


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_numeric_gradient_through_the_library(kind, dtype):
    tol = dict(rtol=2e-2, atol=2e-3) if dtype == "float32" else dict(rtol=1e-5, atol=1e-7)
    for k, s, p, ceil, h, w in [POOLS[1], POOLS[3], POOLS[6]]:
        pool = G.max_pool2d if kind == "max" else G.avg_pool2d
        verify_grad(lambda x: pool(x, k, s, p, ceil_mode=ceil) ** 2, [_distinct((2, 2, h, w), dtype)],
                    backend="c", **tol)


def test_max_pool_second_derivative_gathers_through_the_library():
    """d/dx of a function of the pool's gradient: pool_max_gather."""
    def gradnorm(x):
        y = G.max_pool2d(x, 3, 2, 1)
        gx = G.grad((y * y).sum(), x)
        return gx * x
    xv = _distinct((2, 2, 7, 6), "float64")
    x = G.tensor("x", xv.shape, "float64")
    f = G.function([x], G.grad(gradnorm(x).sum(), x), backend="c")
    assert "pool_max_gather" in {k.kind for k in f.program.program.kernels}
    verify_grad(gradnorm, [xv], backend="c")


@pytest.mark.parametrize("beta", [0.75, 0.5, 1.0, 0.6])  # the compiled-in betas, and a run-time one
def test_lrn_and_its_gradient_match_reference(beta, dtype):
    x = G.tensor("x", (G.dim("n"), 7, G.dim("h"), 3), dtype)
    y = G.lrn(x, 5, alpha=0.5, beta=beta, k=2.0)
    r = np.random.RandomState(3).uniform(0.5, 1.5, (2, 7, 5, 3)).astype(dtype)
    outs = [y, G.grad((y * r).sum(), x)]
    xv = np.random.RandomState(4).randn(2, 7, 5, 3).astype(dtype)
    ref, got = _reference_and_compiled([x], outs, [xv])
    for g_, r_ in zip(got, ref):
        np.testing.assert_allclose(g_, r_, **TOL[dtype])
    tol = dict(rtol=2e-2, atol=2e-3) if dtype == "float32" else dict(rtol=1e-5, atol=1e-7)
    verify_grad(lambda x: G.lrn(x, 3, alpha=0.3, beta=beta, k=1.5), [np.ascontiguousarray(xv[:, :4, :2])], backend="c", **tol)


@pytest.mark.parametrize("label_dtype", ["int32", "int64"])
def test_softmax_cross_entropy_matches_reference(label_dtype, dtype):
    x = G.tensor("x", (G.dim("batch"), 7), dtype)
    y = G.tensor("y", (G.dim("batch"),), label_dtype)
    loss = G.softmax_cross_entropy(x * 1.5, y).mean()
    outs = [loss, G.grad(loss, x)]
    rng = np.random.RandomState(5)
    xv, yv = (rng.randn(9, 7) * 4).astype(dtype), rng.randint(0, 7, 9).astype(label_dtype)
    ref, got = _reference_and_compiled([x, y], outs, [xv, yv])
    for g_, r_ in zip(got, ref):
        np.testing.assert_allclose(g_, r_, **TOL[dtype])
    verify_grad(lambda x: G.softmax_cross_entropy(x, yv[:4]), [xv[:4]], backend="c")


def test_softmax_cross_entropy_label_out_of_range_leaves_shared_state():
    w = G.shared(np.ones((3, 4)), name="w")
    x, y = G.tensor("x", (G.dim("b"), 3), "float64"), G.tensor("y", (G.dim("b"),), "int32")
    loss = G.softmax_cross_entropy(G.dot(x, w), y).mean()
    f = G.function([x, y], loss, updates={w: w - 0.1 * G.grad(loss, w)})
    with pytest.raises(GraphcError, match=r"label out of range \[0, 4\) in SoftmaxCrossEntropy"):
        f(np.ones((2, 3)), np.array([1, 4], "int32"))
    np.testing.assert_array_equal(w.get_value(), np.ones((3, 4)))
    f(np.ones((2, 3)), np.array([1, 3], "int32"))
    assert not np.array_equal(w.get_value(), np.ones((3, 4)))


def _conv_pool_lrn_step(dtype="float32"):
    x = G.tensor("x", (G.dim("batch"), 2, 9, 9), dtype)
    y = G.tensor("y", (G.dim("batch"),), "int64")
    w = G.shared(np.random.RandomState(0).randn(4, 2, 3, 3).astype(dtype) * 0.3, name="w")
    v = G.shared(np.random.RandomState(1).randn(4 * 2 * 2, 5).astype(dtype) * 0.3, name="v")
    h = G.lrn(G.max_pool2d(G.relu(G.conv2d(x, w, padding=1)), 3, 2), 3, alpha=0.3, beta=0.75)
    h = G.avg_pool2d(h, 2, 2)
    loss = G.softmax_cross_entropy(G.dot(h.flatten(2), v), y).mean()
    return [x, y], loss, {p: p - 0.1 * g for p, g in zip([w, v], G.grad(loss, [w, v]))}, [w, v]


def test_program_calls_the_library_and_carries_no_moved_body():
    inputs, loss, updates, _ = _conv_pool_lrn_step()
    program = program_of(inputs, [loss], updates)
    source = render_program(program, "step", "")
    kinds = {k.kind for k in program.kernels}
    assert {"pool_max", "pool_max_grad", "pool_avg", "pool_avg_grad", "lrn", "lrn_grad",
            "softmax_xent"} <= kinds
    for name in ["graphc_rt_spool_max", "graphc_rt_spool_max_grad", "graphc_rt_spool_avg",
                 "graphc_rt_spool_avg_grad", "graphc_rt_slrn", "graphc_rt_slrn_grad",
                 "graphc_rt_ssoftmax_xent_i64", "graphc_rt_ssoftmax_xent_grad_i64"]:
        assert f"\n{'int' if 'softmax' in name else 'void'} {name}(" in source  # declared
        assert f"{name}(" in source.split("gc_entry_run(")[-1]  # and called
    # the bodies stay in the library: no window loops, no LRN window sums, no log-sum-exp
    for body in ["for (int64_t pl = 0;", "for (int64_t ho = 0;", "for (int64_t c2 = lo;",
                 "m = in[j] > m", "graphc_rt_spool_max(const int64_t *g, const float *restrict x, "
                 "float *restrict y, int32_t *restrict arg) {"]:
        assert body not in source


def test_runtime_library_defines_every_library_kernel():
    from graphc.targets.c import runtime_lib
    names = {f["name"] for f in all_library_kernels()}
    assert len(names) == 2 * (6 + 2 + 2 * 2)  # two precisions: pool kinds, LRN, xent x labels
    assert library_kernel("pool_max", "int32") is None  # (pooling is float only)
    assert library_kernel("softmax_xent", "float32", "uint8") is None
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("needs nm (binutils)")
    out = subprocess.run([nm, "-D", "--defined-only", runtime_lib.library_path()],
                         capture_output=True, text=True, check=True).stdout
    defined = {line.split()[-1] for line in out.splitlines() if line.strip()}
    assert names <= defined, sorted(names - defined)


@pytest.mark.skipif(shutil.which(os.environ.get("CC", "gcc")) is None or shutil.which("nm") is None,
                    reason="needs a C compiler and nm")
def test_aot_library_defines_its_own_copies_and_matches(tmp_path):
    from test_aot import make_example, run
    inputs, loss, updates, params = _conv_pool_lrn_step()
    f = G.function(inputs, loss, updates=updates, name="lib_kernels_step")
    initial = [p.get_value() for p in params]
    export = G.aot.export({"step": f}, str(tmp_path / "k"), name="libk")
    undefined = run(["nm", "-D", "--undefined-only", export.library]).stdout
    assert "graphc_rt_" not in undefined  # stands alone: no runtime library to call
    source = open(os.path.join(export.directory, "src", "libk.c")).read()
    for name in ["void graphc_rt_spool_max", "void graphc_rt_slrn_grad", "int graphc_rt_ssoftmax_xent_i64"]:
        assert f"\nstatic {name}(" in source  # a static copy of its own (the ones it calls only)
    assert "graphc_rt_dpool_max" not in source and "graphc_rt_spool_max_value" not in source

    main = make_example(export.directory, "libk")
    rng = np.random.RandomState(7)
    xs, ys = rng.randn(3 * 4, 2, 9, 9).astype("float32"), rng.randint(0, 5, 3 * 4).astype("int64")
    xs.tofile(tmp_path / "x.bin")
    ys.tofile(tmp_path / "y.bin")
    run([main, "-s", "after.params", "step", "4", "x.bin", "y.bin", "l.bin"], cwd=str(tmp_path))
    for p, v in zip(params, initial):
        p.set_value(v)
    losses = [f(xs[k * 4:(k + 1) * 4], ys[k * 4:(k + 1) * 4]) for k in range(3)]
    np.testing.assert_allclose(np.fromfile(tmp_path / "l.bin", "float32"), losses, rtol=1e-5)
