"""The table of ONNX operators graphc imports: per op type, the converter (ONNX node -> graphc
graph), the attributes it understands, the first opset it follows, and an optional folder that
computes the node at load time when every input is known then (shape subgraphs)."""
from dataclasses import dataclass, field
from typing import Callable, Optional

MIN_OPSET = 13
MAX_OPSET = 28   # the newest default-domain opset of onnx 1.23; from 13 on, the versions of the
                 # imported operators change types (float8, int4...), not the semantics read here


class Unsupported(Exception):
    """Raised by a converter for a case it does not handle; the importer collects these."""


@dataclass
class Converter:
    op_type: str
    fn: Callable
    attrs: frozenset = field(default_factory=frozenset)
    fold: Optional[Callable] = None


CONVERTERS = {}


def converter(*op_types, attrs=()):
    def deco(fn):
        for t in op_types:
            CONVERTERS[t] = Converter(t, fn, frozenset(attrs))
        return fn
    return deco


def folder(*op_types):
    """Register a load-time computation for op types already in CONVERTERS."""
    def deco(fn):
        for t in op_types:
            CONVERTERS[t].fold = fn
        return fn
    return deco


def supported_ops():
    _load_all()
    return sorted(CONVERTERS)


def _load_all():
    from . import (convert_control, convert_conv_transpose, convert_einsum,  # noqa: F401
                   convert_elementwise, convert_nn, convert_recurrent, convert_reduce,
                   convert_resize, convert_tensor, fold)
