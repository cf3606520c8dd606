"""Theano's T.nnet namespace: G.nnet.softmax, G.nnet.sigmoid, ... (aliases of the top level)."""
from .ir.ops.nn import (binary_crossentropy, categorical_crossentropy, log_softmax,  # noqa: F401
                        one_hot, sigmoid_binary_crossentropy, softmax, softmax_cross_entropy)
from .math import relu, sigmoid, softplus  # noqa: F401
