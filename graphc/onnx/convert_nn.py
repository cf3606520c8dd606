"""Neural-network ONNX operators: Conv, pools, normalizations, softmax, Gemm, MatMul, Dropout
(ConvTranspose: convert_conv_transpose.py). 1-D convolutions and pools run as 2-D ones over a
height of 1; 3-D ones are composed of 2-D ones (convert_nn3d.py)."""
import numpy as np

from ..ir.constructors import constant
from ..ir.ops import elemwise as E
from ..ir.ops.blas import Matmul
from ..ir.ops.broadcast import broadcast_shape, broadcast_to
from ..ir.ops.conv import conv2d
from ..ir.ops.layer_norm import layer_norm
from ..ir.ops.nn import log_softmax, softmax
from ..ir.ops.normalization import batch_norm_inference, batch_norm_train, lrn
from ..ir.ops.pool import AvgPool2d, MaxPool2d
from ..ir.ops.reduce import mean as reduce_mean, reduce_max
from ..ir.ops.shape import reshape, transpose
from ..ir.types import FLOAT_DTYPES, size_of
from .convert_tensor import pad_constant
from .registry import Unsupported, converter

POOL_ATTRS = ("auto_pad", "kernel_shape", "pads", "strides", "ceil_mode", "dilations")


def _spatial(node, x):
    n = x.ndim - 2
    if n not in (1, 2):
        raise Unsupported(f"input of rank {x.ndim}: graphc has 1-D, 2-D and 3-D {node.op_type} "
                          "(NCW, NCHW, NCDHW)")
    return n


def _as_2d(x):
    """(N, C, L) -> (N, C, 1, L); 4-D unchanged."""
    if x.ndim == 3:
        return reshape(x, (x.type.shape[0], x.type.shape[1], 1, x.type.shape[2]))
    return x


def _from_2d(y, nsp):
    if nsp == 1:
        s = y.type.shape
        return reshape(y, (s[0], s[1], s[3]))
    return y


def _ints(node, name, n, default):
    v = node.attr(name)
    if v is None:
        return [default] * n
    if len(v) != n:
        raise Unsupported(f"attribute {name}={v} must have {n} entries")
    return list(v)


def _pads(node, hw, kernel, strides, dilations):
    """(begins, ends) per spatial axis from pads or auto_pad."""
    n = len(kernel)
    auto = node.attr("auto_pad", "NOTSET")
    if auto == "NOTSET":
        pads = _ints(node, "pads", 2 * n, 0)
        return pads[:n], pads[n:]
    if auto == "VALID":
        return [0] * n, [0] * n
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise Unsupported(f"auto_pad={auto!r}")
    begins, ends = [], []
    for size, k, s, d in zip(hw, kernel, strides, dilations):
        if not isinstance(size, int):
            raise Unsupported(f"auto_pad={auto} needs static spatial sizes, got {size}")
        out = -(-size // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        small = total // 2
        begins.append(small if auto == "SAME_UPPER" else total - small)
        ends.append(total - small if auto == "SAME_UPPER" else small)
    return begins, ends


def _lift(nsp, kernel, strides, dilations, begins, ends):
    """Spatial parameters of a 1-D op as those of the 2-D op over height 1."""
    if nsp == 2:
        return kernel, strides, dilations, begins, ends
    return [1] + kernel, [1] + strides, [1] + dilations, [0] + begins, [0] + ends


def pad_zeros(x, begins, ends):
    """x (N, C, H, W) with zeros around its last two axes (begins, ends per axis)."""
    if not any(begins) and not any(ends):
        return x
    return pad_constant(x, [0, 0] + list(begins), [0, 0] + list(ends), 0)


def _kernel_of(node, w_shape=None):
    k = node.attr("kernel_shape")
    if k is None and w_shape is not None:
        k = list(w_shape[2:])
    if k is None:
        raise Unsupported("attribute kernel_shape is required")
    if not all(isinstance(v, int) for v in k):
        raise Unsupported(f"kernel_shape {k} must be static")
    return list(k)


@converter("Conv", attrs=("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"))
def conv(node):
    x, w, b = node.input(0), node.input(1), node.input(2)
    if x.ndim == 5:
        from .convert_nn3d import conv_3d
        return conv_3d(node, x, w, b)
    nsp = _spatial(node, x)
    kernel = _kernel_of(node, w.type.shape)
    strides, dil = _ints(node, "strides", nsp, 1), _ints(node, "dilations", nsp, 1)
    begins, ends = _pads(node, x.type.shape[2:], kernel, strides, dil)
    kernel, strides, dil, begins, ends = _lift(nsp, kernel, strides, dil, begins, ends)
    x2, w2 = _as_2d(x), _as_2d(w)
    if begins != ends:
        x2, begins = pad_zeros(x2, begins, ends), [0, 0]
    y = conv2d(x2, w2, stride=tuple(strides), padding=tuple(begins), dilation=tuple(dil),
               groups=node.attr("group", 1))
    if b is not None:
        y = y + reshape(b, (1, b.type.shape[0], 1, 1))
    return _from_2d(y, nsp)


def _pool_geometry(node, x):
    nsp = _spatial(node, x)
    kernel = _kernel_of(node)
    strides, dil = _ints(node, "strides", nsp, 1), _ints(node, "dilations", nsp, 1)
    begins, ends = _pads(node, x.type.shape[2:], kernel, strides, dil)
    kernel, strides, dil, begins, ends = _lift(nsp, kernel, strides, dil, begins, ends)
    check_pool_pads(kernel, begins, ends)
    return nsp, kernel, strides, begins, ends, bool(node.attr("ceil_mode", 0))


def check_pool_pads(kernel, begins, ends):
    if any(p >= k for p, k in zip(begins + ends, kernel + kernel)):
        raise Unsupported(f"pads {begins + ends} as large as the window {kernel}")


def _neg_inf_border(x2, begins, ends):
    """x (N, C, H, W) padded with -inf (max pooling never picks the padding)."""
    hw = x2.type.shape[2:]
    if not all(isinstance(d, int) for d in hw):
        raise Unsupported("asymmetric pads need static spatial sizes")
    mask = np.full([d + b + e for d, b, e in zip(hw, begins, ends)], -np.inf, x2.dtype)
    mask[begins[0]:begins[0] + hw[0], begins[1]:begins[1] + hw[1]] = 0
    return pad_zeros(x2, begins, ends) + mask.reshape((1, 1) + mask.shape)


def _check_pool_outputs(node):
    if node.num_outputs > 1 and node.proto.output[1]:
        raise Unsupported("the Indices output is not supported")
    if node.attr("storage_order", 0):
        raise Unsupported("storage_order=1")


def max_pool_2d(x2, kernel, strides, begins, ends, ceil):
    """ONNX's MaxPool of (N, C, H, W), pads per side."""
    if begins != ends:
        x2, begins = _neg_inf_border(x2, begins, ends), [0, 0]
    y, _ = MaxPool2d(tuple(kernel), tuple(strides), tuple(begins), ceil)(x2)
    return y


def avg_pool_2d(x2, kernel, strides, begins, ends, ceil, count_include_pad):
    """ONNX's AveragePool of (N, C, H, W), pads per side."""
    asym = begins != ends
    pool = AvgPool2d(tuple(kernel), tuple(strides), (0, 0) if asym else tuple(begins), ceil)
    y = pool(pad_zeros(x2, begins, ends) if asym else x2)
    if not count_include_pad and any(begins + ends):
        # graphc counts padding in the divisor: divide by the pool of a ones plane padded alike
        hw = x2.type.shape[2:]
        if all(isinstance(d, int) for d in hw):
            ones = constant(np.ones((1, 1) + tuple(hw), x2.dtype))
        else:
            ones = E.second_op(x2, np.asarray(1, x2.dtype))
        y = y / pool(pad_zeros(ones, begins, ends) if asym else ones)
    return y


@converter("MaxPool", attrs=POOL_ATTRS + ("storage_order",))
def max_pool(node):
    x = node.input(0)
    _check_pool_outputs(node)
    if x.ndim == 5 or any(d != 1 for d in node.attr("dilations") or []):
        from .convert_nn3d import separable_pool
        return separable_pool(node, x, "max")
    nsp, kernel, strides, begins, ends, ceil = _pool_geometry(node, x)
    return _from_2d(max_pool_2d(_as_2d(x), kernel, strides, begins, ends, ceil), nsp)


@converter("AveragePool", attrs=POOL_ATTRS + ("count_include_pad",))
def avg_pool(node):
    x = node.input(0)
    if x.ndim == 5 or any(d != 1 for d in node.attr("dilations") or []):
        from .convert_nn3d import separable_pool
        return separable_pool(node, x, "avg")
    nsp, kernel, strides, begins, ends, ceil = _pool_geometry(node, x)
    y = avg_pool_2d(_as_2d(x), kernel, strides, begins, ends, ceil,
                    node.attr("count_include_pad", 0))
    return _from_2d(y, nsp)


@converter("GlobalAveragePool")
def global_avg(node):
    x = node.input(0)
    return reduce_mean(x, tuple(range(2, x.ndim)), keepdims=True)


@converter("GlobalMaxPool")
def global_max(node):
    x = node.input(0)
    return reduce_max(x, tuple(range(2, x.ndim)), keepdims=True)


@converter("BatchNormalization", attrs=("epsilon", "momentum", "training_mode"))
def batch_norm(node):
    x, scale, bias, mean, var = node.inputs()[:5]
    node.mark_running_stat(3)
    node.mark_running_stat(4)
    eps = node.attr("epsilon", 1e-5)
    training = bool(node.attr("training_mode", 0))
    if node.num_outputs > 1 and not training:
        raise Unsupported("running mean/var outputs exist only in training mode")
    if x.ndim < 2:
        raise Unsupported(f"input of rank {x.ndim}")
    s = x.type.shape
    x4 = x if x.ndim in (2, 4) else reshape(x, (s[0], s[1], size_of(s[2:]), 1))
    if not training:
        y = batch_norm_inference(x4, scale, bias, mean, var, eps)
        return y if x4 is x else reshape(y, s)
    # Statistics of the batch normalize y; the running ones blend in the (biased) batch
    # variance, as ONNX's spec and reference do (PyTorch's own module uses the unbiased one).
    y, batch_mean, batch_var = batch_norm_train(x4, scale, bias, eps)
    y = y if x4 is x else reshape(y, s)
    m = np.asarray(node.attr("momentum", 0.9), x.dtype)
    keep = np.asarray(1 - node.attr("momentum", 0.9), x.dtype)
    return [y, mean * m + batch_mean * keep, var * m + batch_var * keep][:node.num_outputs]


@converter("LRN", attrs=("alpha", "beta", "bias", "size"))
def lrn_(node):
    size = node.attr("size")
    if size is None or size % 2 == 0:
        raise Unsupported(f"size={size}: graphc's LRN takes an odd size")
    return lrn(node.input(0), size, node.attr("alpha", 1e-4), node.attr("beta", 0.75),
               node.attr("bias", 1.0))


@converter("Dropout", attrs=("seed",))
def dropout(node):
    x = node.input(0)
    ratio = float(node.static_scalar(1, "ratio")) if node.has_input(1) else 0.5
    training = bool(node.static_scalar(2, "training_mode")) if node.has_input(2) else False
    want_mask = node.num_outputs > 1 and node.proto.output[1] != ""
    if not training or ratio == 0.0:
        return [x, E.second_op(x, np.asarray(True))] if want_mask else [x]
    if not 0.0 < ratio < 1.0:
        raise Unsupported(f"ratio={ratio} (must be in [0, 1))")
    if x.dtype not in FLOAT_DTYPES:
        raise Unsupported(f"training-mode dropout of {x.dtype} (graphc drops floats)")
    # graphc's random streams: the model's counter advances after every call of a function
    # that uses it (its default update), so each call draws a new mask.
    u = node.random_streams(node.attr("seed")).draw(x.type.shape, x.dtype)
    keep = E.ge_op(u, np.asarray(ratio, x.dtype))
    y = x * E.cast(keep, x.dtype) * np.asarray(1.0 / (1.0 - ratio), x.dtype)
    return [y, keep] if want_mask else [y]


def _on_axis(fn, x, axis):
    axis = axis % x.ndim
    if axis == x.ndim - 1:
        return fn(x)
    perm = [i for i in range(x.ndim) if i != axis] + [axis]
    return transpose(fn(transpose(x, perm)), list(np.argsort(perm)))


@converter("Softmax", attrs=("axis",))
def softmax_(node):
    return _on_axis(softmax, node.input(0), node.attr("axis", -1))


@converter("LogSoftmax", attrs=("axis",))
def log_softmax_(node):
    return _on_axis(log_softmax, node.input(0), node.attr("axis", -1))


@converter("LayerNormalization", attrs=("axis", "epsilon", "stash_type"))
def layer_norm_(node):
    x, scale, bias = node.input(0), node.input(1), node.input(2)
    y, mu, inv = layer_norm(x, scale, bias, node.attr("axis", -1), node.attr("epsilon", 1e-5),
                            return_stats=True)
    return [y, mu, inv][:max(node.num_outputs, 1)]


@converter("Gemm", attrs=("alpha", "beta", "transA", "transB"))
def gemm(node):
    a, b, c = node.input(0), node.input(1), node.input(2)
    if a.dtype not in FLOAT_DTYPES:
        raise Unsupported(f"operands of dtype {a.dtype} (graphc multiplies floats)")
    y = Matmul(bool(node.attr("transA", 0)), bool(node.attr("transB", 0)))(a, b)
    alpha, beta = node.attr("alpha", 1.0), node.attr("beta", 1.0)
    if alpha != 1.0:
        y = y * np.asarray(alpha, y.dtype)
    if c is not None and beta != 0.0:
        y = y + (c if beta == 1.0 else c * np.asarray(beta, c.dtype))
    return y


@converter("MatMul")
def matmul(node):
    a, b = node.input(0), node.input(1)
    if a.dtype not in FLOAT_DTYPES or a.dtype != b.dtype:
        raise Unsupported(f"operands {a.dtype} and {b.dtype}: graphc multiplies floats of one dtype")
    return batched_matmul(a, b)


def batched_matmul(a, b):
    """numpy.matmul: 1-D operands, and batch axes that broadcast."""
    squeeze_a, squeeze_b = a.ndim == 1, b.ndim == 1
    if squeeze_a:
        a = reshape(a, (1, a.type.shape[0]))
    if squeeze_b:
        b = reshape(b, (b.type.shape[0], 1))
    if b.ndim == 2:
        # (..., M, K) @ (K, N): one gemm over the flattened leading axes
        lead = a.type.shape[:-1]
        y = Matmul()(reshape(a, (size_of(lead), a.type.shape[-1])), b)
        y = reshape(y, tuple(lead) + (b.type.shape[1],))
    else:
        batch = broadcast_shape(a.type.shape[:-2], b.type.shape[:-2])
        a = broadcast_to(a, tuple(batch) + tuple(a.type.shape[-2:]))
        b = broadcast_to(b, tuple(batch) + tuple(b.type.shape[-2:]))
        n = size_of(batch)
        y = Matmul()(reshape(a, (n,) + tuple(a.type.shape[-2:])),
                     reshape(b, (n,) + tuple(b.type.shape[-2:])))
        y = reshape(y, tuple(batch) + tuple(y.type.shape[-2:]))
    if squeeze_a:
        y = reshape(y, y.type.shape[:-2] + y.type.shape[-1:])
    if squeeze_b:
        y = reshape(y, y.type.shape[:-1])
    return y
