"""The `py` target's executable: runs each op's numpy reference in order. The oracle for every
test of the compiled code, and a debugging mode (no compiler needed)."""
import numpy as np

from ...errors import RuntimeCheckError
from ...ir.graph import Constant


class PyProgram:
    def __init__(self, fgraph, checker):
        self.fgraph = fgraph
        self.symbols = checker.symbols
        self.nodes = fgraph.nodes
        self.source = ""  # nothing is rendered

    def describe(self):
        return ""  # no kernel program

    def fast_path(self, checker, graph, single_output):
        return None

    def run(self, arrays, shared_values, dims):
        fg = self.fgraph
        env = {}
        for v, a in zip(fg.inputs, arrays):
            env[v] = a
        for v, a in zip(fg.shareds, shared_values):
            env[v] = a
        dimenv = fg.dim_env(dict(zip(self.symbols, dims)))
        for node in self.nodes:
            args = [env[i] if i in env else _leaf_value(i) for i in node.inputs]
            try:
                if getattr(node.op, "needs_dims", False):
                    res = node.op.reference(*args, dims=dimenv)
                else:
                    res = node.op.reference(*args)
            except (IndexError, ValueError) as e:
                raise RuntimeCheckError(f"{node.op} failed: {e}") from e
            res = res if node.op.nout > 1 else (res,)
            for o, r in zip(node.outputs, res):
                env[o] = np.asarray(r).astype(o.dtype, copy=False)
        return [np.array(env[o] if o in env else _leaf_value(o), copy=True) for o in fg.outputs]


def _leaf_value(v):
    if isinstance(v, Constant):
        return v.data
    return v.get_value(borrow=True)
