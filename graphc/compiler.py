"""The compiler driver: the one owner of "compile a function".

    signature -> optimize -> lower -> plan -> render -> build -> load -> cache -> dump

for whichever target was asked (graphc/targets/). Each stage's seconds go into
Function.timings under the keys tests and benchmarks read: build_graph, optimize, lower, plan,
render, build, cache_hit, load, total (a warm compile: build_graph, cache_key, load, total and
artifact_hit); each stage's CPU seconds of this process under "<stage>_cpu" (a loaded machine
makes wall time noise; gcc's CPU is its children's, not counted there).
"""
import json
import threading
import time

from .codegen.plan import build_program, note_naive_bytes
from .config import config
from .dump import dump_to_dir
from .errors import CompileError, GraphcTypeError
from .ir.fgraph import build_function_graph
from .ir.givens import theano_graph
from .passes import optimize
from .runtime.checks import ArgumentChecker
from .runtime.function import CompiledGraph, Function
from .targets import get_target


def function(inputs, outputs=None, updates=None, name=None, backend=None, opt_level=None,
             target=None, givens=None, no_default_updates=False, allow_input_downcast=None,
             on_unused_input=None, mode=None, profile=None):
    """Compile `outputs` (a variable or a list) of `inputs`, applying `updates` after each call.
    target (or its older name backend): "cpu"/"c", "cuda", "py" (default config.backend, from
    GRAPHC_TARGET or GRAPHC_BACKEND). Theano's keywords: givens ({x: expression}: x read as the
    expression), no_default_updates (True, or the shared variables whose default_update is not
    applied), allow_input_downcast (graphc/runtime/checks.py), on_unused_input ('raise', 'warn',
    'ignore'), mode ('FAST_RUN', 'FAST_COMPILE': opt_level O1), profile (True: every call is
    timed kernel by kernel and the report prints at exit, as graphc.profiler.watch)."""
    t0, c0 = time.perf_counter(), time.process_time()
    _check_profile_keyword(profile)
    if target is not None and backend is not None and target != backend:
        raise GraphcTypeError(f"function: target={target!r} and backend={backend!r} disagree; "
                              "give one (backend is the older name of target)")
    backend = target if target is not None else backend
    # A variable, or anything that is not a list/tuple (a number, an array), is one output.
    single = outputs is not None and not isinstance(outputs, (list, tuple))
    outs = [] if outputs is None else ([outputs] if single else list(outputs))
    outs, updates = theano_graph(inputs, outs, updates, givens, no_default_updates,
                                 on_unused_input, name)
    opt_level = opt_level or _opt_level_of_mode(mode)
    fgraph = build_function_graph(inputs, outs, updates)
    name = name or "graphc_fn"
    target = get_target(backend or config.backend)
    level = opt_level or config.opt_level
    timings = {"build_graph": time.perf_counter() - t0, "build_graph_cpu": time.process_time() - c0}
    key = None
    if target.capabilities.artifact_cache:
        with _Stage(timings, "cache_key"):
            key = target.cache_key(fgraph, level)
        fn = _load_cached(target, key, fgraph, name, single, timings, t0, level)
        if fn is not None:
            fn.checker.allow_downcast = allow_input_downcast
            return _profiled(fn.remember_source(fgraph, target.name, level, function), profile)
    target.prepare(fgraph)
    with _Stage(timings, "optimize"):
        opt_graph, pass_log = optimize(fgraph, level)
    checker = ArgumentChecker(opt_graph.inputs, opt_graph.dims)
    if target.capabilities.runs_graph:
        executable = target.load_graph(opt_graph, checker)
    else:
        executable = _compile(target, fgraph, opt_graph, checker, name, timings)
    fn = Function(opt_graph, executable, checker, name, single, timings, pass_log)
    checker.allow_downcast = allow_input_downcast
    if key is not None:
        # Structure only: names (pass log, fusion notes, program, source) are this function's
        # and are rebuilt from the graph of whoever loads the record.
        record = target.artifact_record(executable)
        record.update(arg_layout=_as_data(_layout(checker)),
                      shared_index=[fgraph.shareds.index(s) for s in opt_graph.shareds])
        target.save_artifact(key, record)
    return _profiled(_finish(fn.remember_source(fgraph, target.name, level, function), t0),
                     profile)


_MODES = {None: None, "FAST_RUN": None, "FAST_COMPILE": "O1"}


def _opt_level_of_mode(mode):
    """Theano's mode names: FAST_RUN (the default level), FAST_COMPILE (O1); others raise."""
    if isinstance(mode, str) and mode in _MODES or mode is None:
        return _MODES[mode]
    raise CompileError(f"function: mode {mode!r} is not one graphc knows; use 'FAST_RUN' (the "
                       "default), 'FAST_COMPILE' (fewer passes), or opt_level= and backend=")


def _compile(target, fgraph, opt_graph, checker, name, timings):
    """lower -> plan -> render -> build -> load, timed stage by stage."""
    program = build_program(opt_graph, checker, target.capabilities,
                            stage=lambda name: _Stage(timings, name))  # lower, plan
    note_naive_bytes(program, fgraph)  # measured on the graph as the user wrote it
    with _Stage(timings, "render"):
        sources = target.render(program, name)
    with _Stage(timings, "build"):
        built = target.build(sources, program, name)
    timings["cache_hit"] = built.cache_hit
    with _Stage(timings, "load"):
        executable = target.load(program, sources, built, opt_graph)
    return executable


class _Stage:
    """Times a stage into `timings`: wall seconds under its name, this process's CPU seconds
    under name + "_cpu"."""

    def __init__(self, timings, name):
        self.timings, self.name = timings, name

    def __enter__(self):
        self.t, self.c = time.perf_counter(), time.process_time()

    def __exit__(self, *exc):
        self.timings[self.name] = time.perf_counter() - self.t
        self.timings[self.name + "_cpu"] = time.process_time() - self.c


def _layout(checker):
    """How arguments bind dims: equal layouts mean a cached program fits these inputs."""
    return (tuple(checker.binders), tuple(checker.static), tuple(checker.sym_positions),
            tuple(d.name for d in checker.dtypes), len(checker.symbolic_checks),
            len(checker.runtime_checks), len(checker.symbols),
            checker.values.layout() if checker.values is not None else ())


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
    with _Stage(timings, "load"):
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


# Called with each compiled Function; each returns the Function to hand out (GRAPHC_PROFILE=1:
# graphc.profiler's, which times every call). A list here keeps the driver's imports downward.
finish_hooks = []


# profile=True's watcher (graphc.profiler.watch, set by graphc/__init__.py and imported when first
# used): a slot here keeps the driver's imports downward.
profile_watcher = None


def _check_profile_keyword(profile):
    # (before compiling: a bad keyword costs no build)
    if profile not in (None, False, True):
        raise CompileError(f"function: profile={profile!r}; graphc takes profile=True (each call "
                           "timed, a report at exit) or False; for one report on given inputs "
                           "use graphc.profile(f, *args)")


def _profiled(fn, profile):
    if not profile:
        return fn
    if profile_watcher is None:
        raise CompileError("function: profile=True needs graphc.profiler, which `import graphc` "
                           "registers; import graphc rather than graphc.compiler alone")
    return profile_watcher(fn)


def _finish(fn, t0):
    fn.timings["total"] = time.perf_counter() - t0
    if config.dump_dir:
        dump_to_dir(fn, config.dump_dir)
    for hook in finish_hooks:
        fn = hook(fn)
    return fn
