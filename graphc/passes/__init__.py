"""Graph-to-graph optimizations, run by the pass manager in graphc.passes.manager."""
from .manager import optimize  # noqa: F401
