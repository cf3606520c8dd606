"""The compiler driver: the one owner of "compile a function".

    signature -> optimize -> lower -> plan -> render -> build -> load -> cache -> dump

for whichever target was asked (graphc/targets/). Each stage's seconds go into
Function.timings under the keys tests and benchmarks read: build_graph, optimize, lower,
render, build, cache_hit, load, total (and artifact_hit on a warm compile).
"""
import json
import threading
import time

from .codegen.plan import build_program, note_naive_bytes
from .config import config
from .dump import dump_to_dir
from .errors import GraphcTypeError
from .ir.fgraph import build_function_graph
from .passes import optimize
from .runtime.checks import ArgumentChecker
from .runtime.function import CompiledGraph, Function
from .targets import get_target


def function(inputs, outputs=None, updates=None, name=None, backend=None, opt_level=None,
             target=None):
    """Compile `outputs` (a variable or a list) of `inputs`, applying `updates` after each call.
    target (or its older name backend): "cpu"/"c", "cuda", "py" (default config.backend, from
    GRAPHC_TARGET or GRAPHC_BACKEND)."""
    t0 = time.perf_counter()
    if target is not None and backend is not None and target != backend:
        raise GraphcTypeError(f"function: target={target!r} and backend={backend!r} disagree; "
                              "give one (backend is the older name of target)")
    backend = target if target is not None else backend
    # A variable, or anything that is not a list/tuple (a number, an array), is one output.
    single = outputs is not None and not isinstance(outputs, (list, tuple))
    outs = [] if outputs is None else ([outputs] if single else list(outputs))
    fgraph = build_function_graph(inputs, outs, updates)
    name = name or "graphc_fn"
    target = get_target(backend or config.backend)
    level = opt_level or config.opt_level
    timings = {"build_graph": time.perf_counter() - t0}
    key = None
    if target.capabilities.artifact_cache:
        key = target.cache_key(fgraph, level)
        fn = _load_cached(target, key, fgraph, name, single, timings, t0, level)
        if fn is not None:
            return fn.remember_source(fgraph, target.name, level, function)
    target.prepare(fgraph)
    t = time.perf_counter()
    opt_graph, pass_log = optimize(fgraph, level)
    timings["optimize"] = time.perf_counter() - t
    checker = ArgumentChecker(opt_graph.inputs, opt_graph.dims)
    if target.capabilities.runs_graph:
        executable = target.load_graph(opt_graph, checker)
    else:
        executable = _compile(target, fgraph, opt_graph, checker, name, timings)
    fn = Function(opt_graph, executable, checker, name, single, timings, pass_log)
    if key is not None:
        # Structure only: names (pass log, fusion notes, program, source) are this function's
        # and are rebuilt from the graph of whoever loads the record.
        record = target.artifact_record(executable)
        record.update(arg_layout=_as_data(_layout(checker)),
                      shared_index=[fgraph.shareds.index(s) for s in opt_graph.shareds])
        target.save_artifact(key, record)
    return _finish(fn.remember_source(fgraph, target.name, level, function), t0)


def _compile(target, fgraph, opt_graph, checker, name, timings):
    """lower -> plan -> render -> build -> load, timed stage by stage."""
    t = time.perf_counter()
    program = build_program(opt_graph, checker, target.capabilities)
    timings["lower"] = time.perf_counter() - t
    note_naive_bytes(program, fgraph)  # measured on the graph as the user wrote it
    t = time.perf_counter()
    sources = target.render(program, name)
    timings["render"] = time.perf_counter() - t
    t = time.perf_counter()
    built = target.build(sources, program, name)
    timings["build"] = time.perf_counter() - t
    timings["cache_hit"] = built.cache_hit
    t = time.perf_counter()
    executable = target.load(program, sources, built, opt_graph)
    timings["load"] = time.perf_counter() - t
    return executable


def _layout(checker):
    """How arguments bind dims: equal layouts mean a cached program fits these inputs."""
    return (tuple(checker.binders), tuple(checker.static), tuple(checker.sym_positions),
            tuple(d.name for d in checker.dtypes), len(checker.symbolic_checks),
            len(checker.runtime_checks))


def _as_data(value):
    """`value` as a record holds it (JSON: tuples become lists), to compare with one."""
    return json.loads(json.dumps(value))


def _load_cached(target, key, fgraph, name, single, timings, t0, level):
    """A Function from the artifact cache, or None (miss, the inputs bind dims differently, or the
    library is missing or damaged)."""
    record = target.load_artifact(key)
    if record is None:
        return None
    checker = ArgumentChecker(fgraph.inputs, fgraph.dims)
    if _as_data(_layout(checker)) != record["arg_layout"]:
        return None
    if any(i >= len(fgraph.shareds) for i in record["shared_index"]):
        return None
    graph = CompiledGraph(fgraph.inputs, [fgraph.shareds[i] for i in record["shared_index"]],
                          fgraph.update_targets, fgraph.n_user_outputs)
    graph.fusion_notes = []
    rebuild = _Rebuild(target, fgraph, graph, level, name)
    executable = target.from_artifact(record, graph, rebuild.program_and_source)
    if executable is None:
        return None
    timings.update(cache_hit=True, artifact_hit=True)
    fn = Function(graph, executable, checker, name, single, timings, rebuild.pass_log)
    return _finish(fn, t0)


class _Rebuild:
    """What a warm compile skipped, redone from this function's own graph when a dump, the source
    or an AOT export asks for it: the pass log, fusion notes, kernel Program and C source, with
    this function's names (the cached library serves the structure only). No C compiler runs."""

    def __init__(self, target, fgraph, graph, level, name):
        self.target, self.fgraph, self.graph, self.level, self.name = target, fgraph, graph, level, name
        self._lock = threading.Lock()
        self._result = None

    def _run(self):
        with self._lock:
            if self._result is None:
                opt_graph, pass_log = optimize(self.fgraph, self.level)
                checker = ArgumentChecker(opt_graph.inputs, opt_graph.dims)
                program = build_program(opt_graph, checker, self.target.capabilities)
                note_naive_bytes(program, self.fgraph)
                source = "\n".join(self.target.render(program, self.name))
                self.graph.fusion_notes = getattr(opt_graph, "fusion_notes", [])
                self._result = (pass_log, program, source)
        return self._result

    def pass_log(self):
        return self._run()[0]

    def program_and_source(self):
        return self._run()[1:]


def _finish(fn, t0):
    fn.timings["total"] = time.perf_counter() - t0
    if config.dump_dir:
        dump_to_dir(fn, config.dump_dir)
    return fn
