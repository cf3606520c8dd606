"""Theano's names over graphc: `import graphc.theano as theano` runs Theano programs.

    import graphc.theano as theano
    import graphc.theano.tensor as T

or, for a program that says `import theano` and should run unchanged:

    python -m graphc.theano program.py [args]     # or: graphc.theano.install() first

This package only names graphc's functions the way Theano did (and translates the few keyword
arguments whose names differ); every op, every semantic (givens, default updates, downcasting,
slices with run-time bounds) lives in graphc itself. What differs on purpose is in README.md,
"Coming from Theano".
"""
import sys

from ..compiler import function
from ..config import config as _graphc_config
from ..grad import grad
from ..ir.constructors import shared
from ..ir.givens import clone_replace
from ..ir.graph import SharedVariable, Variable
from ..scan import scan
from . import printing, sandbox, tensor  # noqa: F401
from .configuration import TheanoConfig

config = TheanoConfig(_graphc_config)
Mode = None  # Theano's Mode objects are not supported: pass mode='FAST_RUN' or 'FAST_COMPILE'


def clone(output, replace=None, share_inputs=True):
    """theano.clone: `output` (a variable or a list) with the variables of `replace` replaced."""
    outs = output if isinstance(output, (list, tuple)) else [output]
    new = clone_replace(list(outs), dict(replace or {}))
    return new if isinstance(output, (list, tuple)) else new[0]


_MODULES = {
    "theano": "graphc.theano",
    "theano.tensor": "graphc.theano.tensor",
    "theano.tensor.nnet": "graphc.theano.tensor.nnet",
    "theano.tensor.nnet.conv": "graphc.theano.tensor.nnet.conv",
    "theano.tensor.signal": "graphc.theano.tensor.signal",
    "theano.tensor.signal.pool": "graphc.theano.tensor.signal.pool",
    "theano.tensor.signal.downsample": "graphc.theano.tensor.signal.downsample",
    "theano.tensor.shared_randomstreams": "graphc.theano.tensor.shared_randomstreams",
    "theano.sandbox": "graphc.theano.sandbox",
    "theano.sandbox.rng_mrg": "graphc.theano.sandbox.rng_mrg",
    "theano.printing": "graphc.theano.printing",
}


def install():
    """Make `import theano` (and its submodules above) import graphc.theano in this process.
    A real Theano already imported is left alone (an error says so)."""
    import importlib
    present = sys.modules.get("theano")
    if present is not None and present is not sys.modules[__name__]:
        raise ImportError("graphc.theano.install(): a module 'theano' is already imported; call "
                          "install() before the program imports theano")
    for alias, real in _MODULES.items():
        sys.modules[alias] = importlib.import_module(real)


__all__ = ["function", "shared", "grad", "config", "clone", "tensor", "printing", "sandbox",
           "install", "SharedVariable", "Variable", "scan"]
