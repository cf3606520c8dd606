"""Graph-to-graph optimizations, run by the pass manager in graphc.passes.manager.

Importing a pass module registers it; the order of the imports is the order of the pipeline.
"""
from . import canonicalize, stabilize, fuse_elemwise, fuse_gemm, fuse_siblings  # noqa: F401  (registration)
from .manager import optimize  # noqa: F401
