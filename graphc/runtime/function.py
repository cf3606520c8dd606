"""graphc.function: compile a graph and call it with numpy arrays, Theano semantics."""
import pickle
import time

from ..config import config
from ..errors import GraphcTypeError, InputError
from ..ir.fgraph import build_function_graph
from ..ir.graph import Variable
from .checks import ArgumentChecker


class Function:
    """A compiled graph. Call with numpy arrays (positionally or by input name)."""

    def __init__(self, fgraph, program, checker, name, single_output, timings):
        self.fgraph = fgraph
        self.program = program
        self.checker = checker
        self.name = name
        self.single_output = single_output
        self.timings = timings  # seconds per compile stage, for users and benchmarks
        self._n_out = fgraph.n_user_outputs
        self._targets = fgraph.update_targets
        self._shareds = fgraph.shareds
        self._input_index = {v.name: k for k, v in enumerate(fgraph.inputs) if v.name}
        self._fast = None
        setup = getattr(program, "fast_path", None)
        if setup is not None:
            setup(self)

    def __call__(self, *args, **kwargs):
        fast = self._fast
        if fast is not None and not kwargs:
            with self._lock:
                result = fast(self._spec, self._fn_addr, self._ctx_addr, args, self._shareds,
                              self._consts, "_value")
            if result is not NotImplemented:
                if type(result) is int:
                    self.program.raise_error()
                return result
        return self._call_checked(args, kwargs)

    def _call_checked(self, args, kwargs):
        """The Python path: precise error messages, kwargs, python lists and scalars."""
        if kwargs:
            args = self._merge_kwargs(args, kwargs)
        arrays, dims = self.checker.check(args)
        results = self.program.run(arrays, [s._value for s in self._shareds], dims)
        # Updates land only after the whole program succeeded (every update read the old values).
        n = self._n_out
        for sv, value in zip(self._targets, results[n:]):
            sv._value = value
        if self.single_output:
            return results[0]
        return results[:n]

    def _merge_kwargs(self, args, kwargs):
        given = len(args)
        args = list(args) + [_MISSING] * (len(self.fgraph.inputs) - len(args))
        for key, value in kwargs.items():
            if key not in self._input_index:
                raise InputError(f"{self.name}: no input named {key!r} "
                                 f"(inputs: {', '.join(self._input_index)})")
            k = self._input_index[key]
            if k < given:
                raise InputError(f"{self.name}: input {key} is given twice (position {k} and "
                                 "by name); pass it once")
            args[k] = value
        missing = [self.fgraph.inputs[k].label() for k, a in enumerate(args) if a is _MISSING]
        if missing:
            raise InputError(f"{self.name}: no value was given for input(s) {', '.join(missing)}")
        return args

    @property
    def inputs(self):
        return self.fgraph.inputs


_MISSING = object()


class CompiledGraph:
    """What a Function needs of its graph when it came from the artifact cache (no nodes)."""

    def __init__(self, inputs, shareds, update_targets, n_user_outputs):
        self.inputs, self.shareds, self.update_targets = inputs, shareds, update_targets
        self.n_user_outputs = n_user_outputs


def _layout(checker):
    """How arguments bind dims: equal layouts mean a cached program fits these inputs."""
    return (tuple(checker.binders), tuple(checker.static), tuple(checker.sym_positions),
            tuple(d.name for d in checker.dtypes), len(checker.symbolic_checks),
            len(checker.runtime_checks))


def function(inputs, outputs=None, updates=None, name=None, backend=None, opt_level=None):
    """Compile `outputs` (a variable or a list) of `inputs`, applying `updates` after each call."""
    from ..passes import optimize
    t0 = time.perf_counter()
    # A variable, or anything that is not a list/tuple (a number, an array), is one output.
    single = outputs is not None and not isinstance(outputs, (list, tuple))
    outs = [] if outputs is None else ([outputs] if single else list(outputs))
    fgraph = build_function_graph(inputs, outs, updates)
    name = name or "graphc_fn"
    backend = backend or config.backend
    level = opt_level or config.opt_level
    timings = {"build_graph": time.perf_counter() - t0}
    if backend not in ("c", "py"):
        raise GraphcTypeError(f"function: unknown backend {backend!r} (use 'c' or 'py')")
    key = None
    if backend == "c":
        from ..codegen import artifacts
        key = artifacts.graph_signature(fgraph, backend, level)
        fn = _load_cached(key, fgraph, name, single, timings, t0)
        if fn is not None:
            return fn
        from ..codegen import runtime_lib
        runtime_lib.prepare_for(fgraph)
    t1 = time.perf_counter()
    opt_graph, pass_log = optimize(fgraph, level)
    timings["optimize"] = time.perf_counter() - t1
    checker = ArgumentChecker(opt_graph.inputs, opt_graph.dims)
    if backend == "py":
        from .pybackend import PyProgram
        program = PyProgram(opt_graph, checker)
    else:
        from ..codegen.compile import compile_c
        program = compile_c(opt_graph, checker, name, timings)
    fn = Function(opt_graph, program, checker, name, single, timings)
    fn.pass_log = pass_log
    if backend == "c":
        naive = naive_bytes(fgraph)
        program.program.graph_naive_bytes = naive
        program.program.plan_notes.append(
            f"memory: every intermediate of the graph as written, kept apart: {naive} bytes")
    if key is not None:
        artifacts.save(key, {
            "program_bytes": pickle.dumps(program.program, protocol=pickle.HIGHEST_PROTOCOL),
            "layout": program.layout, "source": program.source, "lib_path": program.lib_path,
            "arg_layout": _layout(checker), "pass_log": pass_log,
            "fusion_notes": getattr(opt_graph, "fusion_notes", []),
            "shared_index": [fgraph.shareds.index(s) for s in opt_graph.shareds]})
    timings["total"] = time.perf_counter() - t0
    if config.dump_dir:
        from ..dump import dump_to_dir
        dump_to_dir(fn, config.dump_dir)
    return fn


def naive_bytes(fgraph):
    """Bytes a naive executor holds: every intermediate value of the graph as the user wrote it
    (before fusion), each in its own buffer. The baseline the memory plan is measured against."""
    from ..codegen.program import DTYPE_BYTES
    from ..ir.types import simplify_dim, size_of
    total = 0
    for node in fgraph.nodes:
        for o in node.outputs:
            total = total + size_of(fgraph.dims.shape(o)) * DTYPE_BYTES[o.dtype]
    return simplify_dim(total)


def _load_cached(key, fgraph, name, single, timings, t0):
    """A Function from the artifact cache, or None (miss, or the inputs bind dims differently)."""
    from ..codegen import artifacts
    from .cbackend import CProgram
    art = artifacts.load(key)
    if art is None:
        return None
    checker = ArgumentChecker(fgraph.inputs, fgraph.dims)
    if _layout(checker) != art["arg_layout"]:
        return None
    graph = CompiledGraph(fgraph.inputs, [fgraph.shareds[i] for i in art["shared_index"]],
                          fgraph.update_targets, fgraph.n_user_outputs)
    graph.fusion_notes = art.get("fusion_notes", [])
    program = CProgram(None, art["source"], art["lib_path"], graph, layout=art["layout"],
                       program_bytes=art["program_bytes"])
    timings.update(cache_hit=True, artifact_hit=True)
    fn = Function(graph, program, checker, name, single, timings)
    fn.pass_log = art["pass_log"]
    timings["total"] = time.perf_counter() - t0
    if config.dump_dir:
        from ..dump import dump_to_dir
        dump_to_dir(fn, config.dump_dir)
    return fn
