"""What a target is: capabilities, and the render -> build -> load steps the compiler driver
(graphc/compiler.py) runs for it. A target turns the optimized graph (through the kernel Program
for compiling targets) into an executable: an object with

    run(arrays, shared_values, dims) -> list of arrays (outputs, then updates)
    describe() -> text of the kernel program ('' when there is none)
    source     -> the rendered source ('' when there is none)
    fast_path(checker, graph, single_output) -> FastPath or None   (optional)
    raise_error()  (raises the error a failed fast call left behind)

which graphc.runtime.Function runs.
"""
# Plain classes, not dataclasses: each @dataclass costs ~1 ms at import, paid by the first
# G.function of every process (a warm compile of the MLP step takes ~60 ms in all).


class Capabilities:
    """What a target can do, read by the driver. Subclasses add their own keyword fields."""
    __slots__ = ("runs_graph", "artifact_cache")

    def __init__(self, runs_graph=False, artifact_cache=False):
        # Runs the optimized graph itself: no kernel Program, no render or build (the py
        # reference).
        self.runs_graph = runs_graph
        # Compiled results are kept in the artifact cache, so a warm compile only loads a library.
        self.artifact_cache = artifact_cache

    def __repr__(self):
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for c in type(self).__mro__
                           for n in getattr(c, "__slots__", ()))
        return f"{type(self).__name__}({fields})"


class FastPath:
    """A call path that checks arguments, runs and applies updates in one native call.
    `bind(shareds, lock, on_error, fallback)` makes the callable a Function calls with its
    arguments: it takes `lock` (a lock, a context manager, or a tuple of locks taken in order and
    given back in reverse), calls on_error() (which raises) on a failed run, and hands
    keyword arguments or arguments it does not accept to fallback()(*args, **kwargs) (a weak
    reference to the checked path). `lock` is the program's own lock. `prebind(args)`, where
    given, computes and checks the dims first (a list) or returns None (the checked path runs)."""
    def __init__(self, caller_type, spec, fn_addr, ctx_addr, consts, lock, prebind=None):
        self.caller_type, self.spec, self.fn_addr, self.ctx_addr = caller_type, spec, fn_addr, ctx_addr
        self.consts, self.lock, self.prebind = consts, lock, prebind

    def bind(self, shareds, lock, on_error, fallback):
        return self.caller_type(self.spec, self.fn_addr, self.ctx_addr, list(shareds),
                                list(self.consts), lock, on_error, fallback, self.prebind)


class Built:
    """What a target's build step made: the library (or module) and whether the cache had it.
    A target may attach what its load step needs (the C target: the library's digest)."""

    def __init__(self, path, cache_hit):
        self.path, self.cache_hit = path, cache_hit


class RebuildsOnDemand:
    """An executable's `program` and `source`, made again from the function's own graph by
    `self._rebuild()` when first asked for: a warm load from the artifact cache has neither."""

    @property
    def program(self):
        if self._program is None:
            self._program, self._source = self._rebuild()
        return self._program

    @property
    def source(self):
        if self._source is None:
            self._program, self._source = self._rebuild()
        return self._source


class Target:
    name = None
    capabilities = Capabilities()

    def available(self):
        """Whether this machine can run the target (compiler, device): the test fixture asks."""
        return True

    def prepare(self, fgraph):
        """Start slow work that does not depend on optimization (e.g. a support library's
        build), so it runs while the graph is optimized."""

    # -- the artifact cache (targets with capabilities.artifact_cache) --
    def cache_key(self, fgraph, opt_level):
        return None

    def load_artifact(self, key):
        return None

    def save_artifact(self, key, record):
        pass

    def artifact_record(self, executable):
        """The target's part of an artifact: what from_artifact needs to load it again."""
        raise NotImplementedError

    def from_artifact(self, record, graph, rebuild):
        """The executable a record describes, or None (its library is missing or damaged: the
        driver compiles). `rebuild()` gives (program, source) from this function's own graph,
        for what shows names (dumps, AOT export)."""
        raise NotImplementedError

    # -- graph-running targets --
    def load_graph(self, fgraph, checker):
        raise NotImplementedError(f"target {self.name} does not run graphs")

    # -- compiling targets: Program -> sources -> built library -> executable --
    def render(self, program, name):
        raise NotImplementedError

    def build(self, sources, program, name):
        raise NotImplementedError

    def load(self, program, sources, built, fgraph):
        raise NotImplementedError
