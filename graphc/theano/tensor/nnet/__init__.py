"""theano.tensor.nnet: softmax (a vector gives a (1, n) row, as Theano's did), conv2d with
Theano's keywords, and graphc's activations and losses by their Theano names."""
from ....errors import GraphcShapeError, GraphcTypeError
from ....ir.constructors import as_variable
from ....ir.ops.conv import conv2d as _conv2d
from ....ir.ops.nn import binary_crossentropy, categorical_crossentropy  # noqa: F401
from ....ir.ops.nn import softmax as _softmax
from ....ir.ops.shape import reshape
from ....math import relu, sigmoid, softplus  # noqa: F401
from . import conv  # noqa: F401


def softmax(x):
    """Row-wise softmax; a vector becomes a (1, n) matrix first, as in Theano."""
    x = as_variable(x)
    if x.ndim == 1:
        x = reshape(x, (1, x.type.shape[0]))
    return _softmax(x)


def conv2d(input, filters, input_shape=None, filter_shape=None, border_mode="valid",
           subsample=(1, 1), filter_flip=True, image_shape=None, filter_dilation=(1, 1),
           num_groups=1, unshared=False, **kwargs):
    """Theano's conv2d: border_mode 'valid', 'full', 'half', an int or a pair of ints (zero
    padding); subsample the stride; filter_flip=True (the default) a true convolution.
    input_shape/filter_shape (and the old image_shape) are checked against the static sizes."""
    if unshared:
        raise GraphcTypeError("conv2d: unshared=True (locally connected filters) is not supported")
    if kwargs:
        raise GraphcTypeError(f"conv2d: unknown argument(s) {', '.join(kwargs)}")
    input, filters = as_variable(input), as_variable(filters)
    _check_shape(input, input_shape if input_shape is not None else image_shape, "input_shape")
    _check_shape(filters, filter_shape, "filter_shape")
    dilation = _pair(filter_dilation, "filter_dilation")
    padding = _padding(border_mode, filters, filter_shape, dilation)
    return _conv2d(input, filters, stride=_pair(subsample, "subsample"), padding=padding,
                   dilation=dilation, groups=num_groups, filter_flip=filter_flip)


def _pair(v, what):
    if isinstance(v, int):
        return (v, v)
    if isinstance(v, (list, tuple)) and len(v) == 2:
        return tuple(int(a) for a in v)
    raise GraphcTypeError(f"conv2d: {what} must be an int or a pair of ints, got {v!r}")


def _check_shape(var, given, what):
    if given is None:
        return
    if len(given) != var.ndim:
        raise GraphcShapeError(f"conv2d: {what} {tuple(given)} has {len(given)} entries but "
                               f"{var.label()} has rank {var.ndim}")
    for axis, (g, d) in enumerate(zip(given, var.type.shape)):
        if g is not None and isinstance(d, int) and int(g) != d:
            raise GraphcShapeError(f"conv2d: {what} says {g} on axis {axis} but {var.label()} "
                                   f"has {d} there ({var.type})")


def _padding(border_mode, filters, filter_shape, dilation):
    if isinstance(border_mode, (int, tuple, list)):
        return _pair(border_mode, "border_mode")
    if border_mode == "valid":
        return (0, 0)
    if border_mode not in ("full", "half"):
        raise GraphcTypeError(f"conv2d: border_mode must be 'valid', 'full', 'half', an int or a "
                              f"pair, got {border_mode!r}")
    kernel = filters.type.shape[2:]
    if filter_shape is not None:
        kernel = tuple(int(k) if k is not None else d for k, d in zip(filter_shape[2:], kernel))
    if not all(isinstance(k, int) for k in kernel):
        raise GraphcShapeError(f"conv2d: border_mode={border_mode!r} needs the filter size when "
                               "the graph is built; give filter_shape or filters of static shape")
    span = [(k - 1) * d for k, d in zip(kernel, dilation)]  # the dilated extent minus one
    return tuple(s if border_mode == "full" else s // 2 for s in span)
