"""theano.sandbox.rng_mrg: MRG_RandomStreams is graphc's counter-based RandomStreams (Philox,
not MRG31k3p: the same seed gives other numbers than Theano's, with the same distributions)."""
from ...ir.ops.random import RandomStreams as MRG_RandomStreams

__all__ = ["MRG_RandomStreams"]
