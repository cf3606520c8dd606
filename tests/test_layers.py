"""graphc's import graph, read from the sources with `ast`: no import cycles between modules, and
no import (at module level or inside a function) that points up the layer order

    config/errors <- ir core <- tensor API <- grad <- passes <- codegen <- runtime <- targets
    <- compiler driver <- public API <- nn/optim/train/data

A cycle or an upward import means a module is in the wrong place (DESIGN.md, "Where things
live"). Function-level imports inside one layer are not cycles: they run after every module has
loaded."""
import ast
import os

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "graphc")

# (layer, module name prefixes), lowest first; a module belongs to the longest prefix it matches.
LAYERS = [
    ("base", ["graphc.config", "graphc.errors"]),
    ("ir core", ["graphc.ir.types", "graphc.ir.shapes", "graphc.ir.graph", "graphc.ir.size_rounding"]),
    ("tensor API", ["graphc.ir", "graphc.math", "graphc.nnet"]),
    ("grad", ["graphc.grad", "graphc.scan", "graphc.scan_grad"]),
    ("passes", ["graphc.passes"]),
    ("codegen", ["graphc.codegen"]),
    ("runtime", ["graphc.runtime"]),
    ("targets", ["graphc.targets", "graphc.gc_dispatch"]),
    ("compiler driver", ["graphc.compiler", "graphc.dump", "graphc.pictures"]),
    ("public API", ["graphc", "graphc.aot", "graphc.testing", "graphc.cli"]),
    ("libraries", ["graphc.nn", "graphc.optim", "graphc.train", "graphc.data", "graphc.onnx"]),
]

# Known upward imports and cycles in modules other branches own, each with its reason; the test
# fails on any other, and on an entry here that no longer exists (then delete it).
KNOWN_UPWARD = {
    ("graphc.grad", "graphc.passes.stabilize"): "the stabilized cost is differentiated",
}
KNOWN_CYCLES = {}


def _module_name(path):
    rel = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].replace(os.sep, ".")
    return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def _modules():
    found = {"graphc.gc_dispatch": None}  # the C target's call path, a compiled extension
    for dirpath, _, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                found[_module_name(path)] = path
    return found


def _imports(name, path, modules):
    """(imported module, at module level?) for every import of a graphc module in `path`."""
    with open(path) as fh:
        tree = ast.parse(fh.read(), path)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    function_level = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    function_level.add(id(inner))
    out = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            # `from pkg import mod` imports the module pkg.mod; `from mod import name`, mod
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                       for a in node.names]
        for t in targets:
            if t in modules and t != name:
                out.append((t, id(node) not in function_level))
    return out


def _layer(name):
    best, best_len = None, -1
    for k, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (name == p or name.startswith(p + ".")) and len(p) > best_len:
                best, best_len = k, len(p)
    return best


@pytest.fixture(scope="module")
def graph():
    modules = _modules()
    return {name: _imports(name, path, modules) if path else [] for name, path in modules.items()}


def test_every_module_has_a_layer(graph):
    assert [m for m in graph if _layer(m) is None] == []


def test_no_import_points_up_the_layers(graph):
    upward = {(m, t) for m, deps in graph.items() for t, _ in deps if _layer(t) > _layer(m)}
    new = [f"{m} ({LAYERS[_layer(m)][0]}) imports {t} ({LAYERS[_layer(t)][0]})"
           for m, t in sorted(upward - set(KNOWN_UPWARD))]
    assert new == [], "imports that point up the layer order:\n" + "\n".join(new)
    assert set(KNOWN_UPWARD) - upward == set(), "fixed: delete these from KNOWN_UPWARD"


def _cycles(graph):
    """The strongly connected components (more than one module) of the module-level imports."""
    edges = {m: sorted({t for t, top in deps if top}) for m, deps in graph.items()}
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(frozenset(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return set(out)


def test_no_import_cycles(graph):
    cycles = _cycles(graph)
    new = [" <-> ".join(sorted(c)) for c in cycles - set(KNOWN_CYCLES)]
    assert new == [], "import cycles:\n" + "\n".join(new)
    assert set(KNOWN_CYCLES) - cycles == set(), "fixed: delete these from KNOWN_CYCLES"


def test_the_checker_sees_a_cycle_and_an_upward_import():
    fake = {"graphc.ir.types": [("graphc.compiler", True)],
            "graphc.compiler": [("graphc.ir.types", True)]}
    assert _cycles(fake) == {frozenset(fake)}
    assert _layer("graphc.compiler") > _layer("graphc.ir.types")
