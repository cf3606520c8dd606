"""Graph-to-graph optimizations. The pipeline of each optimization level is an explicit list in
graphc.passes.manager; importing a pass module registers its pass by name."""
from . import (canonicalize, merge_increments, merge_products, stabilize, fuse_elemwise,  # noqa: F401
               fuse_gemm, fuse_siblings, scan_last_state)  # (registration)
from . import fuse_batch_norm  # noqa: F401,E402  (registration)
from .manager import PIPELINES, optimize, pipeline  # noqa: F401
