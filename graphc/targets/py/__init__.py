"""The py target: runs each op's numpy reference in graph order (no compiler needed)."""
from ..base import Capabilities, Target
from .executor import PyProgram


class PyTarget(Target):
    name = "py"
    capabilities = Capabilities(runs_graph=True)

    def load_graph(self, fgraph, checker):
        return PyProgram(fgraph, checker)
