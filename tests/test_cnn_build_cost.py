"""Building a CNN's graph asks sympy for no work it does not need (issue 16: LeNet's warm compile
took ~0.5 s against the MLP's 0.04 s, most of it here): shape messages are printed only when a
check fails, conv and pool output sizes are built without sympy's floor/ceiling evaluation, and
unchanged dims are not rebuilt when the function graph resolves them."""
import itertools
import os
import sys

import numpy as np
import pytest
import sympy
from sympy.printing.str import StrPrinter

import graphc as G
from graphc.errors import GraphcShapeError
from graphc.ir.ops.conv import div_dim


def _lenet_like():
    x = G.tensor4("x")
    w1 = G.shared(np.zeros((4, 1, 5, 5), np.float32), name="w1")
    b1 = G.shared(np.zeros(4, np.float32), name="b1")
    w2 = G.shared(np.zeros((6, 4, 3, 3), np.float32), name="w2")
    h = G.max_pool2d(G.conv2d(x, w1, padding=1) + b1.dimshuffle("x", 0, "x", "x"), 3, 2)
    h = G.avg_pool2d(G.relu(G.conv2d(h, w2, stride=2)), 2)
    cost = (h.flatten(2) ** 2).mean()
    return x, cost, G.grad(cost, [w1, b1, w2])


@pytest.fixture
def counted(monkeypatch):
    calls = {"print": 0, "floor": 0}
    real_print = StrPrinter.doprint
    real_floor, real_ceiling = sympy.floor.eval.__func__, sympy.ceiling.eval.__func__

    def doprint(self, expr):  # str() of a sympy value, called from graphc's code
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_name != "__str__":
            frame = frame.f_back
        caller = frame.f_back if frame is not None else None
        if caller is not None and os.sep + "graphc" + os.sep in caller.f_code.co_filename:
            calls["print"] += 1
        return real_print(self, expr)

    def floor_eval(cls, arg):
        calls["floor"] += 1
        return (real_floor if cls is sympy.floor else real_ceiling)(cls, arg)

    monkeypatch.setattr(StrPrinter, "doprint", doprint)
    monkeypatch.setattr(sympy.floor, "eval", classmethod(floor_eval))
    monkeypatch.setattr(sympy.ceiling, "eval", classmethod(floor_eval))
    return calls


def test_building_a_cnn_graph_prints_nothing_and_evaluates_no_floor(counted):
    _lenet_like()
    assert counted == {"print": 0, "floor": 0}


def test_a_failing_shape_check_still_names_the_shapes():
    x, w = G.tensor("x", (2, 3, 8, 8)), G.tensor("w", (4, 3, 3, 3))
    with pytest.raises(GraphcShapeError, match=r"broadcast axis 1 of shapes \[\('2', '4', '6', '6'\)"):
        G.conv2d(x, w) + G.tensor("b", (1, 5, 1, 1))


def test_div_dim_matches_sympy_evaluation():
    x = G.tensor4("x").type.shape[2]
    sizes = [x, x - 4, sympy.ceiling(x / 2 - sympy.Rational(3, 2)) + 1,
             sympy.floor(x / 4 - sympy.Rational(11, 4)) + 1, 2 * x + 1, 3 * x]
    for size, c, s, up in itertools.product(sizes, range(-7, 4), [1, 2, 3], [False, True]):
        want = (sympy.ceiling if up else sympy.floor)((size + c) / s)
        assert div_dim(size + c, s, up) == want, (size, c, s, up)


def test_cnn_with_symbolic_sizes_still_runs():
    x, cost, grads = _lenet_like()
    f = G.function([x], [cost] + grads)
    ref = G.function([x], [cost] + grads, backend="py", opt_level="O0")
    xv = np.random.RandomState(0).standard_normal((3, 1, 15, 13)).astype(np.float32)
    for got, want in zip(f(xv), ref(xv)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_a_function_with_deferred_messages_pickles():
    """Constraint messages are LazyText; a pickled function carries them as plain text."""
    import pickle
    x, w = G.tensor4("x"), G.tensor("w", (2, 3, 3, 3))
    y = G.conv2d(x, w) * 2.0  # a symbolic channel count: a constraint with a deferred message
    f = G.function([x, w], y.sum(), backend="py")
    f(np.ones((1, 3, 4, 4), np.float32), np.ones((2, 3, 3, 3), np.float32))  # op caches filled
    g = pickle.loads(pickle.dumps(f))
    assert g(np.ones((1, 3, 4, 4), np.float32), np.ones((2, 3, 3, 3), np.float32)) == 432.0  # 2*2*2 outputs of 27, doubled


def _counting(monkeypatch, module, name, counts):
    real = getattr(module, name)

    def counted(*args, **kwargs):
        counts[name] = counts.get(name, 0) + 1
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)


def test_a_warm_compile_of_a_cnn_does_no_optimizing_lowering_or_rendering(monkeypatch):
    """The artifact cache key is the graph's structure: a second compile of the same CNN (here a
    graph rebuilt from scratch, as a new process does) loads the cached library without running
    the passes, lowering, rendering or gcc."""
    import graphc.compiler as C
    from graphc.targets.c.target import CTarget
    x, cost, grads = _lenet_like()
    xv = np.random.RandomState(1).standard_normal((2, 1, 11, 12)).astype(np.float32)
    want = G.function([x], [cost] + grads)(xv)
    counts = {}
    for name in ("optimize", "build_program"):
        _counting(monkeypatch, C, name, counts)
    for name in ("render", "build"):
        _counting(monkeypatch, CTarget, name, counts)
    x, cost, grads = _lenet_like()  # new variables, the same structure
    f = G.function([x], [cost] + grads)
    assert counts == {} and f.timings.get("artifact_hit")
    for got, w in zip(f(xv), want):
        np.testing.assert_allclose(got, w, rtol=1e-6)


def test_symbolic_workspace_offsets_are_printed_once_each():
    """Each temporary's workspace offset is a named C local, the one below plus one slot's size:
    printed whole, every offset repeated the sizes of all slots below it (ResNet-20's source was
    2.9 MB, two thirds of it offsets, and most of gcc's two minutes)."""
    from graphc.targets.c.render_c import offset_chain
    x, cost, grads = _lenet_like()
    f = G.function([x], [cost] + grads)
    program, source = f.program.program, f.program.source
    slots = program.workspace_slots
    assert len(slots) > 3 and any(isinstance(o, sympy.Basic) for o, _ in slots)
    for (o0, s0), (o1, _) in zip(slots, slots[1:]):  # what the chain relies on
        assert sympy.expand(sympy.sympify(o0) + s0 - o1) == 0
    decls, names = offset_chain(program)
    temps = [b for b in program.buffers if b.role == "temp" and b.first >= 0]
    assert all(b.offset in names for b in temps if isinstance(b.offset, sympy.Basic))
    decl_lines = [line for line in source.splitlines() if "(ctx->ws + " in line]
    assert decl_lines and max(len(line.split("/*")[0]) for line in decl_lines) < 120
    xv = np.random.RandomState(2).standard_normal((3, 1, 15, 13)).astype(np.float32)
    ref = G.function([x], [cost] + grads, backend="py", opt_level="O0")
    for got, want in zip(f(xv), ref(xv)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_symbolic_reductions_share_one_compiled_function_per_kind_and_dtype():
    """Reductions of a plain input whose sizes are symbolic call one function per kind and dtypes
    (gcc compiles its three branches once, not per kernel); fused and static ones stay inline."""
    x = G.tensor4("x")
    xi = G.tensor("xi", (3, None), dtype="int64")
    outs = [x.sum(axis=(2, 3)), x.sum(axis=0), x.sum(axis=1), x.max(axis=0), x.max(axis=(2, 3)),
            xi.sum(axis=0), (x * 2.0).sum(axis=1)]
    f = G.function([x, xi], outs)
    source = f.program.source
    units = source.split("/* Generated by graphc")[1:]  # (translation units built in parallel)
    for name, calls, prebuilt in (("gc_reduce_sum_float32_float64_float32", 3, True),
                                  ("gc_reduce_max_float32_float32_float32", 2, True),
                                  ("gc_reduce_sum_int64_int64_int64", 1, False)):
        assert source.count(f"{name}(A, R, B,") == calls, name
        for unit in units:  # defined once in each unit that calls it, or declared: the runtime
            # library holds the float ones (runtime_build.RUNTIME_REDUCTIONS)
            used = min(1, unit.count(f"{name}(A, R, B,"))
            assert unit.count(f"static __attribute__((noinline, noclone)) void {name}(") == \
                (0 if prebuilt else used), name
            assert unit.count(f"\nvoid {name}(const int64_t A") == (used if prebuilt else 0), name
    a = np.random.RandomState(3).standard_normal((3, 4, 5, 6)).astype(np.float32)
    a[1, 2, 3, 4] = np.nan
    ai = np.arange(12, dtype=np.int64).reshape(3, 4)
    want = [a.sum(axis=(2, 3)), a.sum(axis=0), a.sum(axis=1), a.max(axis=0), a.max(axis=(2, 3)),
            ai.sum(axis=0), (a * 2).sum(axis=1)]
    for got, w in zip(f(a, ai), want):
        np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-5)


def test_an_elementwise_gradient_is_differentiated_once_per_op(monkeypatch):
    """sympy.diff of an elementwise op's expression is remembered: a net's layers repeat the same
    ops, and differentiating each copy again took half of building a ResNet's gradient."""
    calls = []
    real_diff = sympy.diff
    monkeypatch.setattr(sympy, "diff", lambda *a, **k: calls.append(a) or real_diff(*a, **k))
    x = G.matrix("x")
    h = x
    for _ in range(4):  # four copies of one op: x * 0.37 + tanh(x) ** 3
        h = h * 0.37 + G.tanh(h) ** 3
    grad = G.grad(h.sum(), x)
    # once per distinct (op, input): add, mul and pow twice each, tanh once (uncached: 28)
    assert len(calls) == len(set(calls)) <= 7, calls
    f = G.function([x], grad, backend="py", opt_level="O0")
    xv = np.linspace(-1, 1, 6).reshape(2, 3).astype(np.float32)
    y, eps, xv = xv, 1e-6, xv.astype(np.float64)
    num = np.zeros_like(xv)
    for idx in np.ndindex(xv.shape):
        hi, lo = xv.copy(), xv.copy()
        hi[idx] += eps
        lo[idx] -= eps
        num[idx] = (_chain(hi).sum() - _chain(lo).sum()) / (2 * eps)
    np.testing.assert_allclose(f(y), num, rtol=1e-4, atol=1e-5)


def _chain(h):
    for _ in range(4):
        h = h * 0.37 + np.tanh(h) ** 3
    return h


def test_remembered_sizes_are_never_floats():
    """size_of remembers its answers; 8.0 == 8 in python, so a float shape entry (a loop's
    scratch region was workspace / 8) handed a float size to the next (8,) shape, which the C
    printer then refused."""
    from graphc.ir.types import size_of
    assert size_of((8.0,)) == 8.0
    got = size_of((8,))
    assert got == 8 and isinstance(got, int)


def test_a_loop_region_has_an_integer_size():
    x = G.tensor("x", (5, 2, 3), "float64")
    w = G.shared(np.eye(3), name="w")
    hs, _ = G.scan(lambda x_t, h: G.tanh(G.dot(x_t, w) + h), sequences=x,
                   outputs_info=G.zeros((2, 3), "float64"))
    f = G.function([x], hs.sum())
    regions = [k.scratch[0] for k in f.program.program.kernels if k.kind == "loop"]
    assert regions and all(isinstance(d, int) for r in regions for d in r.shape)


def _repeated_blocks(n_blocks=4):
    """A net whose blocks repeat the same kernels (as a ResNet stage does): each block's weights
    have one shape, so its conv, bias, relu and their gradients render alike."""
    x = G.tensor4("x")
    rng = np.random.RandomState(4)
    ws = [G.shared((rng.standard_normal((3, 3, 3, 3)) * 0.3).astype(np.float32), name=f"w{i}")
          for i in range(n_blocks)]
    bs = [G.shared(np.full(3, 0.1 * i, np.float32), name=f"b{i}") for i in range(n_blocks)]
    h = x
    for w, b in zip(ws, bs):
        h = G.relu(G.conv2d(h, w, padding=1) + b.dimshuffle("x", 0, "x", "x"))
    cost = (h ** 2).mean()
    return x, cost, G.grad(cost, ws + bs)


def _kernel_functions(source):
    import re
    defined = re.findall(r"^(?:static |GC_SEGMENT )(?:__attribute__\(\(noinline, noclone\)\) )?"
                         r"int (gc_entry_k\d+)\(.*\) \{$", source, re.M)
    calls = re.findall(r"status = (gc_entry_k\d+)\(ctx, dims", source)
    return defined, calls


@pytest.mark.parametrize("units", [1, 2])
def test_kernels_alike_share_one_compiled_function(monkeypatch, units):
    """A kernel body several kernels share is one C function they all call (ResNet-20's 593
    kernels are 118 bodies; gcc compiled each copy inline). Split over two translation units, a
    function is defined once, in the unit of its first caller, and declared in the other."""
    from graphc.config import config
    from graphc.targets.c import render_c
    monkeypatch.setattr(config, "compile_jobs", units)
    monkeypatch.setattr(render_c, "MIN_UNIT_COST", 1)
    x, cost, grads = _repeated_blocks()
    f = G.function([x], [cost] + grads)
    program, source = f.program.program, f.program.source
    defined, calls = _kernel_functions(source)
    assert source.count("/* Generated by graphc") == units
    assert len(defined) == len(set(defined)) == len(set(calls)) >= 6  # conv, bias + relu, grads
    assert all(calls.count(name) >= 2 for name in defined)  # a body of its own stays inline
    assert len(defined) < len(calls)  # fewer bodies to compile than kernels
    assert "__attribute__((noinline, noclone)) int gc_entry_k" in source
    xv = np.random.RandomState(5).standard_normal((2, 3, 7, 6)).astype(np.float32)
    ref = G.function([x], [cost] + grads, backend="py", opt_level="O0")
    for got, want in zip(f(xv), ref(xv)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_a_kernel_used_in_place_passes_its_buffer_once():
    """Outlined, a kernel's buffers are numbered by first use: one written in place is one
    restrict parameter, never two pointers to the same memory."""
    from graphc.targets.c.outline import _Renumbered
    from graphc.codegen.program import Buffer, Kernel
    a, b = Buffer(7, "float32", (4,), "temp"), Buffer(9, "float64", (4,), "temp")
    view = _Renumbered(Kernel("elemwise", [a], [a, b], in_place=True))  # outputs, inputs
    assert [v.id for v in view.inputs + view.outputs] == [0, 1, 0]
    assert [(v.id, v.ctype) for v in view.local_buffers] == [(0, "float"), (1, "double")]


def test_the_graph_as_written_is_measured_only_when_asked(monkeypatch):
    """The naive baseline (every intermediate of the graph as written) is for dumps and tests: a
    compile does not sum it (a ResNet's symbolic sizes took ~8 % of its cold compile)."""
    from graphc.codegen import plan
    calls = []
    real = plan.naive_bytes
    monkeypatch.setattr(plan, "naive_bytes", lambda fg: calls.append(fg) or real(fg))
    x, cost, grads = _lenet_like()
    program = G.function([x], [cost] + grads).program.program
    assert calls == []
    first = program.graph_naive_bytes
    assert isinstance(first, sympy.Basic) and program.graph_naive_bytes == first and len(calls) == 1
    assert str(first) in program.describe()


def test_conv_chunk_counts_are_built_without_sympy_min_max_evaluation():
    """A conv's images per chunk, Min(N, floor(Max(budget, s) / s)), is kept as written (KeptMin,
    KeptMax): sympy's Min/Max compared the terms through the assumptions (~0.1 s per conv, again
    on every expand); the C printed and the values are those of the evaluated form."""
    from graphc.codegen.lower_cnn import _images_in
    from graphc.ir.types import KeptMax, KeptMin, dim, size_of
    from graphc.targets.c.cprinter import int_to_c
    n, h, w = dim("n"), dim("h"), dim("w")
    _images_in.cache_clear()
    for per_image in (  # ResNet's stride-2 stage; AlexNet's conv1 (an image may give no output)
            sympy.expand((sympy.floor((h - 1) / 2) + 1) * (sympy.floor((w - 1) / 2) + 1) * 704),
            sympy.expand((sympy.floor((h - 11) / 4) + 1) * (sympy.floor((w - 11) / 4) + 1) * 1836)):
        got = _images_in(33554432, per_image, n)
        assert isinstance(got, KeptMin) and got.atoms(KeptMax)
        size = sympy.Max(per_image, 1)
        want = sympy.Min(n, sympy.floor(sympy.Max(sympy.Integer(33554432), size) / size))
        assert int_to_c(got) == int_to_c(want)
        for values in ({n: 128, h: 32, w: 32}, {n: 3, h: 11, w: 12}, {n: 1000, h: 227, w: 300}):
            assert got.subs(values) == want.subs(values)
        assert size_of((got, 3)) == 3 * got  # expands without re-evaluating
    assert _images_in(1000, 7, n) == sympy.Min(n, 142)  # one symbol: as sympy folds it
    assert KeptMin(3, 5) == 3 and KeptMax(3, sympy.Integer(5)) == 5


def test_convs_of_one_stencil_share_a_function_whatever_their_channels(monkeypatch):
    """Chunked conv kernels take their sizes (channels, image sizes, images per chunk) as run-time
    arguments, so CIFAR-10 quick's three 5x5 pad-2 convs are one forward body (and one of each
    gradient); the stencil (kernel size, stride, padding) stays a constant."""
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "gemm")  # (no Winograd, no direct conv)
    x = G.tensor4("x")
    rng = np.random.RandomState(6)
    shapes = [(4, 3, 5, 5), (6, 4, 5, 5), (5, 6, 5, 5), (5, 5, 3, 3)]
    ws = [G.shared((rng.standard_normal(s) * 0.2).astype(np.float32), name=f"w{i}")
          for i, s in enumerate(shapes)]
    h = x
    for w in ws[:3]:
        h = G.relu(G.conv2d(h, w, padding=2))
    h = G.conv2d(h, ws[3], stride=2)  # another stencil: its own body
    cost = (h ** 2).mean()
    grads = G.grad(cost, ws)
    f = G.function([x], [cost] + grads)
    assert [k.kind for k in f.program.program.kernels].count("conv_chunked") == 4
    by_kind = {}
    for line in f.program.source.splitlines():
        if line.startswith("/* conv_chunked"):
            by_kind.setdefault(line.split()[1], 0)
            by_kind[line.split()[1]] += 1
    # the last conv's kernels are alone of their stencil: inline, not functions
    assert by_kind == {"conv_chunked": 1, "conv_chunked_grad_input": 1, "conv_chunked_grad_weights": 1}
    xv = rng.standard_normal((3, 3, 9, 8)).astype(np.float32)
    ref = G.function([x], [cost] + grads, backend="py", opt_level="O0")
    for got, want in zip(f(xv), ref(xv)):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-5)


def test_float_reductions_are_compiled_once_into_the_runtime_library():
    """The float reductions of symbolic size live in the runtime library (compiled at install, not
    in each program's units): it defines every one of RUNTIME_REDUCTIONS, exported, and a
    program's unit only declares the ones it calls."""
    from graphc.targets.c import runtime_build, runtime_lib
    from graphc.targets.c.templates_dir import templates_root
    source = runtime_build.render_source(templates_root())
    for r in runtime_build.RUNTIME_REDUCTIONS:
        name = runtime_build.reduce_helper_name(*r)
        assert source.count(f"__attribute__((noinline, noclone)) void {name}(") == 1, name
        assert f"static __attribute__((noinline, noclone)) void {name}(" not in source, name
    import subprocess
    symbols = subprocess.run(["nm", "-D", "--defined-only", runtime_lib.library_path()],
                             capture_output=True, text=True, check=True).stdout.split()
    assert {runtime_build.reduce_helper_name(*r) for r in runtime_build.RUNTIME_REDUCTIONS} <= set(symbols)


def test_an_aot_library_defines_its_reductions_itself(tmp_path):
    """An AOT library stands alone (no runtime library beside it): it carries the reductions the
    in-process programs take from the runtime library."""
    x = G.tensor4("x")
    f = G.function([x], [x.sum(axis=(2, 3)), x.max(axis=0)])
    out = G.aot.export({"red": f}, str(tmp_path), name="red")
    source = open(os.path.join(str(tmp_path), "src", "red.c")).read()
    for name in ("gc_reduce_sum_float32_float64_float32", "gc_reduce_max_float32_float32_float32"):
        assert source.count(f"static __attribute__((noinline, noclone)) void {name}(") == 1, name
    assert "\nvoid gc_reduce_" not in source  # nothing left to find in another library


def test_translation_units_are_balanced_on_the_bytes_of_c_each_kernel_renders():
    """The kind table counts a Winograd conv (~10 KB of C) as a loop nest: VGG's two units took 6.1
    and 3.2 s of gcc. Balanced on rendered bytes, a few big kernels no longer pile into one unit;
    the kind costs still decide how many units pay."""
    from graphc.codegen.program import Kernel
    from graphc.targets.c import render_c

    class _Program:
        kernels = [Kernel("reduce", [], []) for _ in range(12)]

    big = [10000] * 4 + [500] * 8  # four big bodies first, then small ones
    kind_costs = [render_c.kernel_compile_cost(k) for k in _Program.kernels]
    by_kind = render_c.plan_segments(_Program(), 2, costs=kind_costs)
    by_bytes = render_c.plan_segments(_Program(), 2, costs=kind_costs, balance=big)
    assert len(by_kind) == len(by_bytes) == 2
    load = [sum(big[i] for i in seg) for seg in by_bytes]
    assert max(load) <= 1.25 * min(load), load
    assert max(sum(big[i] for i in seg) for seg in by_kind) > 1.5 * min(sum(big[i] for i in seg)
                                                                       for seg in by_kind)


def test_a_compile_reports_each_stage_in_wall_and_cpu_seconds():
    """Function.timings: the cold stages (lower and plan apart) and the warm ones, each with its
    CPU seconds (issue 16's bench reads them: wall time on a shared machine is noise)."""
    x = G.vector("x")
    w = G.shared(np.ones(3, np.float32), name="w_timings")
    cold = G.function([x], (x * w + 1.5).sum(), updates={w: w * 0.5})
    stages = ("build_graph", "cache_key", "optimize", "lower", "plan", "render", "build", "load")
    for s in stages:
        assert isinstance(cold.timings[s], float) and isinstance(cold.timings[s + "_cpu"], float), s
    warm = G.function([x], (x * w + 1.5).sum(), updates={w: w * 0.5})
    if warm.timings.get("artifact_hit"):
        for s in ("build_graph", "cache_key", "load"):
            assert isinstance(warm.timings[s + "_cpu"], float), s


def _three_alike_layers(scale):
    x = G.matrix("x")
    ws = [G.shared(np.full((1, 5), 0.1 * i, np.float32), name=f"w_alike{i}") for i in range(3)]
    h = x
    for w in ws:
        h = G.relu(h * np.float32(scale) + w)
    return x, (h ** 2).sum(), ws


def test_each_distinct_scalar_body_is_printed_once(monkeypatch):
    """sympy.cse and the C printer run once per distinct elementwise body, not per kernel (and not
    again when a kernel that stays inline is rendered after its outline key)."""
    from graphc.targets.c import render_c
    calls = []
    real = render_c.scalars_to_c
    monkeypatch.setattr(render_c, "scalars_to_c", lambda exprs, dt: calls.append(exprs) or real(exprs, dt))
    x, cost, ws = _three_alike_layers(1.2345678)  # a constant no other test uses: bodies not seen yet
    f = G.function([x], cost, updates={w: w - 0.1 * g for w, g in zip(ws, G.grad(cost, ws))})
    kernels = [k for k in f.program.program.kernels if "body" in k.params]  # elemwise, reduce
    bodies = {k.params["body"] for k in kernels}
    assert len(kernels) > len(bodies)  # the layers repeat their bodies
    printed = [tuple(c) for c in calls]
    assert len(printed) == len(set(printed)), printed  # none printed twice
    assert len(printed) <= len(bodies), (len(printed), len(bodies))  # (a body seen before: none)
    assert sum("1.2345677" in str(c) for c in printed) >= 2  # this graph's bodies were printed
    xv = np.ones((2, 5), np.float32)
    assert np.isfinite(f(xv))


def test_in_place_merges_keep_liveness_as_a_full_recount_gives(monkeypatch):
    """plan_in_place updates the live ranges of the buffers it merges instead of recounting the
    whole program after each merge; what it leaves must be what a recount gives."""
    from graphc.codegen import memplan
    from graphc.codegen.memplan_live import liveness
    seen = []
    real = memplan.plan_slots

    def check(program):
        kept = {b.id: (b.first, b.last) for b in program.buffers}
        liveness(program)
        seen.append(kept == {b.id: (b.first, b.last) for b in program.buffers})
        return real(program)

    monkeypatch.setattr(memplan, "plan_slots", check)
    x, cost, ws = _three_alike_layers(0.8765432)
    f = G.function([x], cost, updates={w: w - 0.1 * g for w, g in zip(ws, G.grad(cost, ws))})
    assert seen == [True]
    assert any(k.in_place for k in f.program.program.kernels)  # merges happened
