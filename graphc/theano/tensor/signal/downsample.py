"""theano.tensor.signal.downsample (Theano 0.x): max_pool_2d(input, ds, ignore_border, st,
padding, mode)."""


def max_pool_2d(input, ds, ignore_border=None, st=None, padding=(0, 0), mode="max"):
    from .pool import pool_2d
    return pool_2d(input, ws=ds, ignore_border=ignore_border, stride=st, pad=padding, mode=mode)
