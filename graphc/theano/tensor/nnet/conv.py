"""theano.tensor.nnet.conv (Theano 0.x): conv2d(input, filters, filter_shape, image_shape, ...),
a true convolution like the newer one."""


def conv2d(input, filters, filter_shape=None, image_shape=None, border_mode="valid",
           subsample=(1, 1), **kwargs):
    from . import conv2d as _conv2d
    return _conv2d(input, filters, input_shape=image_shape, filter_shape=filter_shape,
                   border_mode=border_mode, subsample=subsample, **kwargs)
