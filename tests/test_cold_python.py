"""The shortcuts of a cold compile's Python (issue 16) give what the slow paths gave: the pass
log's texts printed late, c_comment's fast path, the BLAS found without importing its package."""
import random
import subprocess
import sys

import graphc as G
from graphc.ir.fgraph import build_function_graph
from graphc.ir.printing import graph_text
from graphc.passes import manager
from graphc.passes.manager import optimize
from graphc.targets.c import c_escape


def test_each_pass_log_text_is_the_graph_as_it_was_after_its_pass(monkeypatch):
    """Printed when read, after later passes rewired the graph in place: each record's text is
    the one printed right after its pass."""
    printed = []

    def watch(name):
        fn = manager._REGISTRY[name]

        def run(fgraph):
            fgraph, changed = fn(fgraph)
            if changed:
                fgraph.refresh()
            printed.append(graph_text(fgraph))
            return fgraph, changed
        return run

    names = manager.PIPELINES["O3"]
    for name in names:
        monkeypatch.setitem(manager._REGISTRY, name, watch(name))
    x, y = G.matrix("x", "float64"), G.matrix("y", "float64")
    cost = G.sum(G.exp(x * 2 + y) * G.tanh(x) - G.log1p(G.exp(y)) * x)
    outs = [cost, G.grad(cost, [x])[0]]
    _, log = optimize(build_function_graph([x, y], outs, {}), "O3")
    assert [r.name for r in log[1:]] == names
    for record, text in zip(log[1:], printed):
        assert record.text == text == record[2] == tuple(record)[2]


def test_c_comment_fast_path_is_the_bytewise_escape():
    def bytewise(text):
        out = []
        for byte in str(text).encode("utf-8", "backslashreplace"):
            ch = chr(byte)
            if byte not in c_escape._PRINTABLE or ch == "\\":
                out.append(c_escape._hex(byte))
                continue
            prev = out[-1][-1:] if out else ""
            if (prev, ch) in (("*", "/"), ("/", "*"), ("?", "?"), ("/", "/")):
                out.append(" ")
            out.append(ch)
        return "".join(out)

    rng = random.Random(16)
    alphabet = "ab */?\\\t\x7f\xe9\n{}"
    for _ in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 9)))
        assert c_escape.c_comment(text) == bytewise(text), repr(text)


def test_blas_is_found_without_importing_its_package():
    code = ("import sys; from graphc.targets.c.toolchain import blas_info; info = blas_info(); "
            "print('scipy_openblas32' in sys.modules); import scipy_openblas32 as s; "
            "print(info[:3] == (s.get_include_dir(), s.get_lib_dir(), s.get_library()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_kernels_that_read_the_same_render_once_and_the_c_is_unchanged(monkeypatch):
    """outline_kernels renders a kernel once per distinct template input: the same sources as
    rendering every kernel, on a small symbolic CNN step (convs, pools, batch norm, updates)."""
    import numpy as np

    from graphc.codegen.plan import build_program
    from graphc.config import config
    from graphc.runtime.checks import ArgumentChecker
    from graphc.targets import get_target
    from graphc.targets.c import outline

    x = G.tensor4("x")
    ws = [G.shared(np.ones(s, np.float32)) for s in ((4, 3, 3, 3), (4, 4, 3, 3), (4, 4, 3, 3))]
    h = x
    for w in ws:
        h = G.relu(G.batch_norm_train(G.conv2d(h, w, padding=(1, 1)), G.shared(np.ones(4, np.float32)),
                                      G.shared(np.zeros(4, np.float32)))[0])
    cost = G.mean(G.max_pool2d(h, (2, 2), (2, 2)))
    fg = build_function_graph([x], [cost], {w: w - 0.1 * g for w, g in zip(ws, G.grad(cost, ws))})
    opt, _ = optimize(fg, config.opt_level)
    target = get_target("c")
    program = build_program(opt, ArgumentChecker(opt.inputs, opt.dims), target.capabilities)
    calls = []
    real_key = outline._render_key
    monkeypatch.setattr(outline, "_render_key", lambda view: calls.append(1) or real_key(view))
    memo = target.render(program, "f")
    monkeypatch.setattr(outline, "_render_key", lambda view: None)
    assert target.render(program, "f") == memo
    assert len(calls) > 20
