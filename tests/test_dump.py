"""G.dump and GRAPHC_DUMP: the graph after every pass, the kernel program and the generated C."""
import contextlib
import io
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import graphc as G


def _build(name, backend="c"):
    x = G.matrix("x", shape=("batch", 3))
    w = G.shared(np.array([0.5, -1.0, 2.0], "float32"), name="w")
    cost = G.tanh(G.dot(x, w)).sum()
    return G.function([x], cost, updates={w: w - 0.1 * G.grad(cost, w)}, name=name,
                      backend=backend)


@pytest.fixture(scope="module")
def fn(tmp_path_factory):
    # A cache of its own: compiled here, not loaded from an artifact of an earlier run.
    saved = G.config.cache_dir
    G.config.cache_dir = str(tmp_path_factory.mktemp("dump-cache"))
    try:
        f = _build("dump_fn")
    finally:
        G.config.cache_dir = saved
    assert f.timings["cache_hit"] is False
    return f


def _sections(text):
    """{title: body} of the '==== title ====' sections."""
    parts = re.split(r"^==== (.*?) ====$", text, flags=re.M)
    return {parts[k].strip(): parts[k + 1] for k in range(1, len(parts), 2)}


def test_dump_returns_and_prints_the_text(fn):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        text = G.dump(fn)
    assert isinstance(text, str) and text
    assert out.getvalue().rstrip("\n") == text.rstrip("\n")


def test_dump_has_the_graph_one_line_per_node(fn):
    sections = _sections(G.dump(fn, file=os.devnull))
    graphs = [t for t in sections if t.startswith("graph after pass")]
    assert graphs and graphs[0].startswith("graph after pass 00 input")
    final = sections[graphs[-1]]
    node_lines = [ln for ln in final.splitlines() if re.match(r"\s*%\d+ = ", ln)]
    assert len(node_lines) == len(fn.fgraph.nodes)
    for node, line in zip(fn.fgraph.nodes, node_lines):
        assert str(node.op) in line
    assert re.search(r"^input\s+x : float32\[batch, 3\]", final, re.M)
    assert re.search(r"^shared w : float32\[3\]", final, re.M)
    assert re.search(r"^output 0: ", final, re.M)
    assert re.search(r"^update w <- %\d+", final, re.M)
    # One section per pass that ran, in order.
    assert [g.split()[4] for g in graphs] == [record.name for record in fn.pass_log]
    # Each says whether its pass changed the graph.
    assert [g.rstrip(")").split(", ")[-1] for g in graphs] == \
        ["changed" if record.changed else "unchanged" for record in fn.pass_log]
    assert any(record.changed for record in fn.pass_log)


def test_dump_has_the_kernel_program(fn):
    sections = _sections(G.dump(fn, file=os.devnull))
    prog = sections["kernel program"]
    assert "buffers:" in prog and "kernels:" in prog
    assert re.search(r"^\s+b\d+\s+input\s+float32\[batch, 3\].*\bx\b", prog, re.M)
    assert re.search(r"^\s+b\d+\s+shared\s+float32\[3\].*\bw\b", prog, re.M)
    kernels = fn.program.program.kernels
    kernel_lines = [ln for ln in prog.splitlines() if re.match(r"\s+k\d+\s", ln)]
    assert len(kernel_lines) == len(kernels) > 0
    assert any("gemm" in ln for ln in kernel_lines)
    assert prog.strip() == fn.program.describe().strip()


def test_dump_has_the_generated_c(fn):
    sections = _sections(G.dump(fn, file=os.devnull))
    src = sections["generated C"]
    assert "gc_run" in src
    assert src.strip() == fn.program.source.strip()
    assert '"dump_fn"' in src


def test_dump_of_a_warm_function_matches(fn, tmp_path, monkeypatch):
    """A function loaded from the cache dumps the same graphs, program and C (with its own
    variables' ids: the dump is rebuilt from its own graph)."""
    monkeypatch.setattr(G.config, "cache_dir", str(tmp_path))
    cold = _build("dump_fn")
    warm = _build("dump_fn")
    assert warm.timings["cache_hit"] is True
    strip = lambda t: re.sub(r"\d+\.\d+ ms|\bv\d+\b", "", t)  # noqa: E731  (timings, ids differ)
    assert strip(G.dump(warm, file=os.devnull)) == strip(G.dump(cold, file=os.devnull))


def test_dump_to_file(fn, tmp_path):
    path = tmp_path / "f.txt"
    text = G.dump(fn, file=str(path))
    assert path.read_text() == text


def test_dump_of_a_py_function_has_the_graph():
    f = _build("dump_py", backend="py")
    text = G.dump(f, file=os.devnull)
    assert "graph after pass" in text and "tanh" in text
    assert "gc_run" not in text


def test_dump_dir_writes_files_for_each_function(tmp_path, monkeypatch):
    d = tmp_path / "dumps"
    monkeypatch.setattr(G.config, "dump_dir", str(d))
    f = _build("dumped_fn")
    monkeypatch.undo()
    files = sorted(os.listdir(d))
    assert "dumped_fn.c" in files and "dumped_fn.program.txt" in files
    passes = [p for p in files if re.match(r"dumped_fn\.\d\d\.\w+\.txt$", p)]
    assert len(passes) == len(f.pass_log)
    assert (d / "dumped_fn.c").read_text() == f.program.source
    assert "kernels:" in (d / "dumped_fn.program.txt").read_text()
    last = sorted(passes)[-1]
    assert "tanh" in (d / last).read_text()
    # Restored: the next function writes nothing.
    assert G.config.dump_dir != str(d)
    _build("not_dumped", backend="py")
    assert not any(p.startswith("not_dumped") for p in os.listdir(d))


def test_graphc_dump_environment_variable(tmp_path):
    d = tmp_path / "envdump"
    code = textwrap.dedent("""
        import numpy as np, graphc as G
        x = G.vector("x")
        G.function([x], G.exp(x).sum(), name="from_env", backend="py")
    """)
    env = dict(os.environ, GRAPHC_DUMP=str(d))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    files = os.listdir(d)
    assert any(p.startswith("from_env.00.input") for p in files), files
