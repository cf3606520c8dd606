"""The build cache: hits across processes, concurrent builders, failed builds, stable keys."""
import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import graphc as G
from graphc.targets.c import cache, toolchain

# The same graph, built here and in child processes. Fresh dims (None) and unnamed variables
# get process-wide counters in their names, which must not change the cache key.
GRAPH = textwrap.dedent("""
    import time
    import numpy as np
    import graphc as G
    x = G.matrix(shape=(None, 12))
    y = G.vector()
    w = G.shared(np.linspace(-1, 1, 12).astype("float32"))
    b = G.shared(np.float32(0.0), name="b")
    p = G.sigmoid(G.dot(x, w) + b)
    cost = ((p - y) ** 2).mean() + {extra}
    gw, gb = G.grad(cost, [w, b])
    cpu0 = time.process_time()
    f = G.function([x, y], [cost, p > 0.5], updates={{w: w - 0.5 * gw, b: b - 0.5 * gb}})
    cpu = time.process_time() - cpu0
""")

RUN = textwrap.dedent("""
    rng = np.random.RandomState(0)
    X = rng.randn(9, 12).astype("float32")
    Y = (rng.rand(9) > 0.5).astype("float32")
    c0 = float(f(X, Y)[0]); c1 = float(f(X, Y)[0])
    print(json.dumps({"hit": f.timings["cache_hit"], "total": f.timings["total"], "cpu": cpu,
                      "timings": {k: float(v) for k, v in f.timings.items()},
                      "lib": f.program.lib_path, "costs": [c0, c1],
                      "w": w.get_value().tolist()}))
""")


def _child_code(extra, wait_for=None):
    code = "import json, os, time\n"
    code += GRAPH.format(extra=extra)
    if wait_for:
        # Start compiling at (nearly) the same moment as the sibling process.
        code = code.replace("cpu0 = time.process_time()",
                            "open(%r + '.ready.' + str(os.getpid()), 'w').close()\n"
                            "while not os.path.exists(%r):\n"
                            "    time.sleep(0.001)\n"
                            "cpu0 = time.process_time()" % (wait_for, wait_for))
    return code + RUN


def _env(cache_dir):
    env = dict(os.environ)
    env["GRAPHC_CACHE_DIR"] = str(cache_dir)
    env.pop("GRAPHC_DUMP", None)
    return env


def _parse(proc):
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _files(root, suffix):
    # Compiled programs only: dispatch/ holds graphc's call-path extension, runtime/ its runtime
    # library.
    return sorted(str(p) for p in root.rglob("*") if p.is_file() and p.name.endswith(suffix)
                  and p.parent.name != "dispatch" and "runtime" not in p.relative_to(root).parts)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setattr(G.config, "cache_dir", str(d))
    return d


def _build_here(extra):
    scope = {}
    exec(GRAPH.format(extra=extra), scope)
    return scope


@pytest.fixture(scope="module")
def fresh_process(tmp_path_factory):
    """Compile here into an empty cache, then build the same graph in a child process."""
    cache_dir = tmp_path_factory.mktemp("cache")
    saved = G.config.cache_dir
    G.config.cache_dir = str(cache_dir)
    try:
        here = _build_here("0.0")
    finally:
        G.config.cache_dir = saved
    children = []
    for _ in range(2):
        # The first child may also build what every process needs once per cache (graphc's
        # call-path extension); the second one sees the cache as any later run would.
        proc = subprocess.run([sys.executable, "-c", _child_code("0.0")], env=_env(cache_dir),
                              capture_output=True, text=True, timeout=120)
        children.append(_parse(proc))
    return cache_dir, here, children


@pytest.mark.alone  # fresh_process times a warm compile in wall seconds
def test_cache_hit_in_a_fresh_process(fresh_process):
    cache_dir, here, (child, again) = fresh_process
    assert again["hit"] is True and again["lib"] == child["lib"]
    f = here["f"]
    assert f.timings["cache_hit"] is False
    assert f.program.lib_path.startswith(str(cache_dir))
    assert child["hit"] is True
    assert child["lib"] == f.program.lib_path
    assert len(_files(cache_dir, ".so")) == 1
    # The child's numbers are this process's numbers.
    rng = np.random.RandomState(0)
    X = rng.randn(9, 12).astype("float32")
    Y = (rng.rand(9) > 0.5).astype("float32")
    costs = [float(f(X, Y)[0]), float(f(X, Y)[0])]
    np.testing.assert_allclose(child["costs"], costs, rtol=1e-6)
    np.testing.assert_allclose(child["w"], here["w"].get_value(), rtol=1e-6)
    assert costs[1] < costs[0]


@pytest.mark.alone  # fresh_process times a warm compile in wall seconds
def test_warm_compile_in_a_fresh_process_is_fast(fresh_process):
    """A hit skips the C compiler (and, with the artifact cache, lowering and rendering):
    a generous bound, first use in the process included, in wall and in CPU seconds."""
    _, _, (_, child) = fresh_process
    assert child["hit"] is True
    assert child["total"] < 0.5, f"warm compile took {child['total']:.3f} s: {child['timings']}"
    assert child["cpu"] < 0.5, f"warm compile took {child['cpu']:.3f} s of CPU: {child['timings']}"


def test_concurrent_builders_share_one_library(cache_dir, tmp_path):
    go = tmp_path / "go"
    code = _child_code("0.001 * (w ** 2).sum()", wait_for=str(go))
    procs = [subprocess.Popen([sys.executable, "-c", code], env=_env(cache_dir),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    # Both children import graphc and build the graph, say they are ready, then wait for "go".
    deadline = time.time() + 60
    while time.time() < deadline and len(list(tmp_path.glob("go.ready.*"))) < 2:
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.005)
    go.write_text("go")
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(r["hit"] for r in results) == [False, True]  # one built, one waited and reused
    assert results[0]["lib"] == results[1]["lib"]
    assert _files(cache_dir, ".so") == [results[0]["lib"]]
    assert _files(cache_dir, ".tmp") == []
    assert [p for p in cache_dir.rglob("*") if "tmp" in p.name] == []
    assert results[0]["costs"] == results[1]["costs"]
    assert results[0]["w"] == results[1]["w"]


def test_same_graph_twice_in_process_is_a_hit(cache_dir):
    first = _build_here("0.0")["f"]
    second = _build_here("0.0")["f"]
    assert first.timings["cache_hit"] is False
    assert second.timings["cache_hit"] is True
    assert second.program.lib_path == first.program.lib_path
    # A different function name does not change the machine code either.
    x = G.vector("x")
    g1 = G.function([x], G.exp(x) * 3, name="one")
    g2 = G.function([x], G.exp(x) * 3, name="two")
    assert g2.timings["cache_hit"] is True and g1.program.lib_path == g2.program.lib_path
    # A different graph is a different library.
    g3 = G.function([x], G.exp(x) * 4, name="one")
    assert g3.timings["cache_hit"] is False and g3.program.lib_path != g1.program.lib_path
    np.testing.assert_allclose(g3(np.ones(2, "float32")), 4 * np.e, rtol=1e-6)
    assert len(_files(cache_dir, ".so")) == 3


def test_canonical_source():
    a = "/* fn a, v12 */\nint f(int64_t d__d3, int64_t d_batch) { return d__d3 + d__d17 + d__d3; }"
    b = "/* fn b, v40 */\nint f(int64_t d__d9, int64_t d_batch) { return d__d9 + d__d2 + d__d9; }"
    c = "/* fn b, v40 */\nint f(int64_t d__d9, int64_t d_batch) { return d__d2 + d__d9 + d__d9; }"
    d = "/* fn b, v40 */\nint f(int64_t d__d9, int64_t d_other) { return d__d9 + d__d2 + d__d9; }"
    assert cache.canonical_source(a) == cache.canonical_source(b)
    assert cache.canonical_source(b) != cache.canonical_source(c)
    assert cache.canonical_source(b) != cache.canonical_source(d)  # named dims are kept
    assert cache.source_key([a]) == cache.source_key([b]) != cache.source_key([c])
    assert cache.source_key([a, b]) != cache.source_key([a + b])  # unit boundaries count
    assert "v12" not in cache.canonical_source(a)


def test_failed_build_leaves_nothing_behind(cache_dir, monkeypatch):
    toolchain.compiler_version()  # the key needs the real compiler's version
    x = G.vector("x")
    monkeypatch.setattr(G.config, "cc", "false")  # a "compiler" that always fails
    with pytest.raises(G.CompileError):
        G.function([x], G.sin(x) + 11.5)
    assert _files(cache_dir, ".so") == []
    assert [p for p in cache_dir.rglob("*") if "tmp" in p.name] == []
    monkeypatch.undo()
    G.config.cache_dir = str(cache_dir)
    f = G.function([x], G.sin(x) + 11.5)
    assert f.timings["cache_hit"] is False
    np.testing.assert_allclose(f(np.zeros(3, "float32")), 11.5)


def test_library_is_readable_like_its_directory(cache_dir):
    x = G.vector("x")
    f = G.function([x], G.cos(x) * 7.25)
    lib = f.program.lib_path
    dir_mode = os.stat(os.path.dirname(lib)).st_mode & 0o777
    lib_mode = os.stat(lib).st_mode & 0o777
    assert lib_mode & 0o444 == dir_mode & 0o444, (oct(lib_mode), oct(dir_mode))
    assert lib_mode & 0o400


def test_a_warm_function_uses_its_own_shared_variables(cache_dir):
    """The same graph over other shared variables reuses the compiled program, never the
    first function's state; updates (here a swap through expressions) land on its own shareds."""
    def build(av, bv):
        x = G.vector("x")
        a = G.shared(np.array(av, "float32"), name="a")
        b = G.shared(np.array(bv, "float32"), name="b")
        f = G.function([x], [a - 2 * b + x, b * x], updates={a: b + 1, b: a * 3})
        return f, a, b

    f1, a1, b1 = build([1, 1], [10, 10])
    f2, a2, b2 = build([5, 5], [100, 100])
    assert f2.timings["cache_hit"] is True and f2.program.lib_path == f1.program.lib_path
    x = np.array([0.5, 0.5], "float32")
    r, s = f2(x)
    np.testing.assert_array_equal(r, 5 - 200 + 0.5)
    np.testing.assert_array_equal(s, 50.0)
    np.testing.assert_array_equal(a2.get_value(), 101.0)
    np.testing.assert_array_equal(b2.get_value(), 15.0)
    np.testing.assert_array_equal(a1.get_value(), 1.0)  # untouched
    np.testing.assert_array_equal(b1.get_value(), 10.0)
    r, _ = f1(x)
    np.testing.assert_array_equal(r, 1 - 20 + 0.5)
    np.testing.assert_array_equal(a1.get_value(), 11.0)
    np.testing.assert_array_equal(b1.get_value(), 3.0)
    # A different constant is a different program.
    g1 = G.function([G.vector("x")], a1 * 2.0)
    g2 = G.function([G.vector("x")], a1 * 3.0)
    assert g2.program.lib_path != g1.program.lib_path
    np.testing.assert_array_equal(g2(x), a1.get_value() * 3.0)


def test_a_warm_function_gets_the_fast_call_path(cache_dir):
    def build():
        x = G.matrix("x", shape=(None, 3))
        return G.function([x], G.exp(x).sum(axis=1))
    cold = build()
    warm = build()
    assert cold._fast is not None
    assert warm.timings["cache_hit"] is True
    assert warm._fast is not None
