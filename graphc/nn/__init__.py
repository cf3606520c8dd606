"""graphc.nn: Caffe-style layers, fillers, losses and a named-DAG Net, on graphc's public API.

    import graphc as G
    from graphc import nn
    net = nn.Net("mlp", seed=1)
    net.input("data", (G.dim("batch"), 784))
    net.input("label", (G.dim("batch"),), "int64")
    net.add(nn.InnerProduct("ip1", 500, weight_filler=nn.xavier()), bottom="data")
    net.add(nn.ReLU("relu1"))
    net.add(nn.InnerProduct("ip2", 10))
    net.add(nn.SoftmaxWithLoss("loss", bottom=["ip2", "label"]))
    net.add(nn.Accuracy("accuracy", bottom=["ip2", "label"], phase="test"))

See graphc.optim for solvers and graphc.train for the training loop.
"""
from . import losses
from .fillers import Filler, constant, gaussian, get_filler, msra, uniform, xavier
from .layers import (LRN, Accuracy, AvgPool2D, BatchNorm, Concat, Conv2D, Convolution, Dense,
                     Dropout, Eltwise, EuclideanLoss, Flatten, HingeLoss, InnerProduct, Layer,
                     LossLayer, MaxPool2D, Pooling, ReLU, Sigmoid, SigmoidCrossEntropyLoss,
                     Softmax, SoftmaxWithLoss, TanH)
from .net import LoadReport, Net, ParamSpec, format_shape
from .recurrent import GRU, LSTM, RNN

__all__ = ["Net", "ParamSpec", "LoadReport", "format_shape", "losses",
           "Filler", "constant", "gaussian", "uniform", "xavier", "msra", "get_filler",
           "Layer", "InnerProduct", "Dense", "Conv2D", "Convolution", "Pooling", "MaxPool2D",
           "AvgPool2D", "LRN", "Dropout", "BatchNorm", "ReLU", "Sigmoid", "TanH", "Softmax",
           "Flatten", "Concat", "Eltwise", "Accuracy", "LossLayer", "SoftmaxWithLoss",
           "SigmoidCrossEntropyLoss", "EuclideanLoss", "HingeLoss", "RNN", "LSTM", "GRU"]
