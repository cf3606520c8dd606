"""The pass manager: named passes, a pipeline per optimization level, timing and a log."""
import time

PIPELINES = {"O0": []}
_REGISTRY = {}


def register(name, levels=("O1", "O2", "O3")):
    """Decorator: add a pass (FunctionGraph -> FunctionGraph) to the pipelines of `levels`."""
    def deco(fn):
        _REGISTRY[name] = fn
        for lvl in levels:
            PIPELINES.setdefault(lvl, []).append(name)
        return fn
    return deco


def optimize(fgraph, level="O3", enabled=True):
    """Run the pipeline for `level`; returns the new graph and [(pass, seconds, graph_text)]."""
    from ..config import config
    from ..ir.printing import graph_dot, graph_text
    dots = [] if config.dump_dir else None  # DOT only when dumping: it costs compile time
    log = [("input", 0.0, graph_text(fgraph))]
    if dots is not None:
        dots.append(graph_dot(fgraph))
    if not enabled:
        return fgraph, log
    if level not in PIPELINES and level not in ("O1", "O2", "O3"):
        raise ValueError(f"unknown optimization level {level!r} (O0..O3)")
    fgraph = fgraph.clone()  # passes may edit nodes in place; the user's graph stays as built
    for name in PIPELINES.get(level, []):
        t = time.perf_counter()
        fgraph = _REGISTRY[name](fgraph)
        fgraph.refresh()
        log.append((name, time.perf_counter() - t, graph_text(fgraph)))
        if dots is not None:
            dots.append(graph_dot(fgraph))
    fgraph.pass_dots = dots
    return fgraph, log
