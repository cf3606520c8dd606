"""theano.tensor.shared_randomstreams: RandomStreams is graphc's (see graphc/ir/ops/random.py)."""
from ...ir.ops.random import RandomStreams

__all__ = ["RandomStreams"]
