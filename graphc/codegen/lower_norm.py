"""Lowering of training-mode batch normalization (ir/ops/batch_norm_ops.py) to its kernels: x
viewed as (N, C, P), P the spatial size (1 for an (N, C) input). The C target's kernels call
the runtime library (templates/c/_batch_norm.j2: run-time sizes, compiled once); the CUDA
target's are templates/cuda/batch_norm*.cu.j2."""
from ..ir.ops import batch_norm_ops
from ..ir.types import size_of
from .lower_support import lowers


def _params(L, x, eps):
    shape = L.shape(x)
    return dict(N=shape[0], C=shape[1], P=size_of(shape[2:]), eps=float(eps), dtype=x.dtype)


@lowers(batch_norm_ops.BatchNormTrain)
def lower_batch_norm(L, node):
    (x, gamma, beta), (y, mean, var) = node.inputs, node.outputs
    L.emit("batch_norm", [L.out_buffer(y), L.out_buffer(mean), L.out_buffer(var)],
           [L.buffer(x), L.buffer(gamma), L.buffer(beta)], str(node.op),
           **_params(L, x, node.op.eps))


@lowers(batch_norm_ops.BatchNormTrainGrad)
def lower_batch_norm_grad(L, node):
    (x, gamma, mean, var, gy), (gx, dgamma, dbeta) = node.inputs, node.outputs
    L.emit("batch_norm_grad", [L.out_buffer(gx), L.out_buffer(dgamma), L.out_buffer(dbeta)],
           [L.buffer(x), L.buffer(gamma), L.buffer(mean), L.buffer(var), L.buffer(gy)],
           str(node.op), **_params(L, x, node.op.eps))
