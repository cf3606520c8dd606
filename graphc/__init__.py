"""graphc: a symbolic graph compiler for deep learning.

    import graphc as G
    x = G.matrix("x"); w = G.shared(np.zeros(3, "float32"), name="w")
    f = G.function([x], G.dot(x, w))
"""
import os as _os

# OpenMP threads that spin after a parallel region steal the cores OpenBLAS's threads need for
# the next gemm (measured: MLP step 104 ms with the default spin, 4.5 ms with this). libgomp
# reads the setting when the first compiled library loads; a user's own value wins.
_os.environ.setdefault("GOMP_SPINCOUNT", "300000")
# Likewise OpenBLAS's threads spin ~2^28 cycles after a gemm unless told otherwise (LSTM step:
# 615 ms with the default, 58 ms with this). Read when the BLAS library loads.
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from .config import config  # noqa: E402
from .errors import (CompileError, GradError, GraphcError, GraphcShapeError, GraphcTypeError,
                     InputError, RuntimeCheckError)
from .grad import grad
from .ir.constructors import (constant, dmatrix, dscalar, dvector, fmatrix, fscalar, fvector,
                              imatrix, iscalar, ivector, lmatrix, lscalar, lvector, matrix,
                              scalar, shared, tensor, tensor3, tensor4, vector)
from .ir.graph import SharedVariable, Variable
from .ir.ops.blas import dot, matmul
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
from .ir.printing import debugprint
from .ir.types import dim
from .math import *  # noqa: F401,F403  (elementwise functions: exp, log, tanh, ...)
from .runtime.function import Function, function
from .dump import dump
from . import testing, nnet  # noqa: F401
from . import aot  # noqa: F401,E402  (graphc.aot.export: ship functions as a C library)

__version__ = "0.1.0"
