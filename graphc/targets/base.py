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
from dataclasses import dataclass


@dataclass(frozen=True)
class Capabilities:
    # Runs the optimized graph itself: no kernel Program, no render or build (the py reference).
    runs_graph: bool = False
    # Compiled results are kept in the artifact cache, so a warm compile only loads a library.
    artifact_cache: bool = False


@dataclass
class FastPath:
    """A call path that checks arguments, runs and applies updates in one native call.
    Function calls `call(spec, fn_addr, ctx_addr, args, shareds, consts, "_value")` under `lock`;
    it returns NotImplemented for any argument it does not accept, an int on a failed run."""
    call: object
    spec: object
    fn_addr: int
    ctx_addr: int
    consts: list
    lock: object


@dataclass
class Built:
    """What a target's build step made: the library (or module) and whether the cache had it."""
    path: str
    cache_hit: bool


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
