"""Graph-to-graph optimizations, run by the pass manager in graphc.passes.manager.

Importing a pass module registers it; the order of the imports is the order of the pipeline.
"""
from . import (canonicalize, merge_increments, merge_products, stabilize, fuse_elemwise,  # noqa: F401
               fuse_gemm, fuse_siblings)  # (registration)
from .manager import optimize  # noqa: F401
