"""Lowering of training-mode batch normalization (ir/ops/batch_norm_ops.py) to its kernels: x
viewed as (N, C, P), P the spatial size (1 for an (N, C) input). The C target's kernels call
the runtime library (templates/c/_batch_norm.j2: run-time sizes, compiled once); the CUDA
target's are templates/cuda/batch_norm*.cu.j2. The forms with the ReLU (and the residual add)
folded in (passes/fuse_batch_norm.py) are the same kernels with param `act`."""
from ..ir.ops import batch_norm_ops
from ..ir.types import size_of
from .lower_support import lowers


def _params(L, x, eps, act):
    shape = L.shape(x)
    return dict(N=shape[0], C=shape[1], P=size_of(shape[2:]), eps=float(eps), dtype=x.dtype,
                act=act)


def _emit_forward(L, node, act):
    (y, mean, var) = node.outputs
    L.emit("batch_norm", [L.out_buffer(y), L.out_buffer(mean), L.out_buffer(var)],
           [L.buffer(v) for v in node.inputs], str(node.op),
           **_params(L, node.inputs[0], node.op.eps, act))


def _emit_gradient(L, node, act):
    (gx, dgamma, dbeta) = node.outputs
    L.emit("batch_norm_grad", [L.out_buffer(gx), L.out_buffer(dgamma), L.out_buffer(dbeta)],
           [L.buffer(v) for v in node.inputs], str(node.op),
           **_params(L, node.inputs[0], node.op.eps, act))


@lowers(batch_norm_ops.BatchNormTrain)
def lower_batch_norm(L, node):
    _emit_forward(L, node, "none")


@lowers(batch_norm_ops.BatchNormTrainRelu)
def lower_batch_norm_relu(L, node):
    _emit_forward(L, node, "add_relu" if node.op.residual else "relu")


@lowers(batch_norm_ops.BatchNormTrainGrad)
def lower_batch_norm_grad(L, node):
    _emit_gradient(L, node, "none")


@lowers(batch_norm_ops.BatchNormTrainReluGrad)
def lower_batch_norm_relu_grad(L, node):
    _emit_gradient(L, node, "relu")
