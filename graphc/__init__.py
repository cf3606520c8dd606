"""graphc: a symbolic graph compiler for deep learning.

    import graphc as G
    x = G.matrix("x"); w = G.shared(np.zeros(3, "float32"), name="w")
    f = G.function([x], G.dot(x, w))
"""
import os as _os

# Threads: compiled programs run everything parallel, gemm included, on one OpenMP pool and call
# the BLAS single-threaded (templates/c/_gemm_parallel.j2). libgomp's default spin (~300000 spins)
# keeps that pool awake between the kernels of a call. A second pool that spins steals its cores:
# OpenBLAS's threads spin ~2^28 cycles after a product unless told otherwise (numpy's OpenBLAS,
# when loaded after this; measured with graphc's own BLAS threaded: LSTM step 615 ms with the
# default, 58 ms with this). Read when the BLAS library loads; a user's own value wins.
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from .config import config  # noqa: E402
from .errors import (CompileError, GradError, GraphcError, GraphcShapeError, GraphcTypeError,
                     InputError, RuntimeCheckError)
from .grad import grad
from .scan import scan
from .ir.constructors import (constant, dmatrix, dscalar, dvector, fmatrix, fscalar, fvector,
                              imatrix, iscalar, ivector, lmatrix, lscalar, lvector, matrix,
                              scalar, shared, tensor, tensor3, tensor4, vector)
from .ir.graph import SharedVariable, Variable
from .ir.ops.blas import batched_dot, dot, matmul
from .ir.subtensor_update import inc_subtensor, set_subtensor
from .ir.ops.elemwise import cast
from .ir.ops.indexing import take
from .ir.ops.nn import (binary_crossentropy, categorical_crossentropy, log_softmax, one_hot,
                        sigmoid_binary_crossentropy, softmax, softmax_cross_entropy, squared_error)
from .ir.ops.reduce import argmax, argmin, mean, var
from .ir.ops.shape import (arange, concatenate, dimshuffle, expand_dims, flatten, reshape,
                           squeeze, stack, transpose)
from .ir.ops.conv import conv2d
from .ir.ops.normalization import batch_norm, batch_norm_inference, batch_norm_train, lrn
from .ir.ops.pool import avg_pool2d, max_pool2d
from .ir.ops.random import RandomStreams, dropout, random_uniform
from .ir.ops.activations import elu, gelu, hard_sigmoid, hard_swish, leaky_relu
from .ir.ops.broadcast import broadcast_to
from .ir.ops.layer_norm import layer_norm
from .ir.printing import debugprint
from .ir.types import dim
from .math import *  # noqa: F401,F403  (elementwise functions: exp, log, tanh, ...)
from .compiler import function
from .runtime.function import Function
from .dump import dump
from . import testing, nnet  # noqa: F401
from .ir.alloc import alloc, eye, fill, ones, zeros  # noqa: E402
from . import variable_eval  # noqa: F401,E402  (Variable.eval, Theano's)

if config.profile:  # GRAPHC_PROFILE=1: every function timed, a report each at exit
    from .profiler import install_from_environment as _install_profiling
    _install_profiling()


def _watch_for_profile_keyword(fn):
    # graphc.function(..., profile=True), Theano's keyword: graphc.profiler.watch, imported when
    # first asked for (the compiler driver sits below the profiler and holds only this slot).
    from .profiler import watch_for_profile_keyword
    return watch_for_profile_keyword(fn)


from . import compiler as _compiler  # noqa: E402
_compiler.profile_watcher = _watch_for_profile_keyword


# Jupyter shows a compiled function's kernel program and a variable's graph as pictures
# (Graphviz's dot, graphc/pictures.py), else as text. Attached here: the picture code sits above
# both classes; imported when first shown, not by `import graphc`.
def _function_svg(fn):
    from .pictures import function_svg
    return function_svg(fn)


def _function_pretty(fn, p, cycle):
    from .pictures import function_text
    p.text(function_text(fn))


def _variable_svg(var):
    from .pictures import variable_svg
    return variable_svg(var)


Function._repr_svg_, Function._repr_pretty_ = _function_svg, _function_pretty
Variable._repr_svg_ = _variable_svg


def __getattr__(name):
    # graphc.aot (ship functions as a C library) loads the C target's toolchain modules (jinja2,
    # the compiler probe): imported when first used, not by `import graphc`.
    if name == "aot":
        import importlib
        return importlib.import_module(".aot", __name__)
    # graphc.profile(f, *args): per-kernel timings (graphc.profiler, imported when first used).
    if name == "profile":
        from .profiler import profile
        return profile
    if name == "onnx":  # ONNX import/export: needs the optional onnx package when used
        import importlib
        return importlib.import_module(".onnx", __name__)
    raise AttributeError(f"module 'graphc' has no attribute {name!r}")


__version__ = "0.1.0"
