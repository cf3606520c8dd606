"""graphc.theano, the naming layer: Theano's module paths and the few functions whose arguments
differ from graphc's (softmax of a vector, conv2d's keywords, pool_2d's modes), each checked
against numpy computing what Theano computes."""
import os
import subprocess
import sys

import numpy as np
import pytest

import graphc.theano as theano
import graphc.theano.tensor as T
from graphc.errors import GraphcShapeError, GraphcTypeError
from graphc.theano.sandbox.rng_mrg import MRG_RandomStreams
from graphc.theano.tensor.nnet import conv2d
from graphc.theano.tensor.shared_randomstreams import RandomStreams
from graphc.theano.tensor.signal import downsample, pool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_softmax_of_a_vector_is_a_row():
    v = T.vector("v")
    out = theano.function([v], T.nnet.softmax(v))(np.float32([1, 2, 3]))
    e = np.exp([1, 2, 3] - np.max([1, 2, 3]))
    assert out.shape == (1, 3)
    np.testing.assert_allclose(out[0], e / e.sum(), rtol=1e-6)


def _theano_conv(x, w, pad, stride, dilation, flip):
    """What Theano's conv2d computes, in numpy."""
    if flip:
        w = w[:, :, ::-1, ::-1]
    x = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    kh, kw = (w.shape[2] - 1) * dilation[0] + 1, (w.shape[3] - 1) * dilation[1] + 1
    ho, wo = (x.shape[2] - kh) // stride[0] + 1, (x.shape[3] - kw) // stride[1] + 1
    out = np.zeros((x.shape[0], w.shape[0], ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = x[:, :, i * stride[0]:i * stride[0] + kh:dilation[0],
                      j * stride[1]:j * stride[1] + kw:dilation[1]]
            out[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w)
    return out


@pytest.mark.parametrize("border_mode,pad", [("valid", (0, 0)), ("full", (2, 1)),
                                             ("half", (1, 0)), (1, (1, 1)), ((2, 0), (2, 0))])
def test_conv2d_border_modes_and_flip(border_mode, pad):
    rs = np.random.RandomState(1)
    xv, wv = rs.randn(2, 2, 7, 6).astype("float32"), rs.randn(3, 2, 3, 2).astype("float32")
    x, w = T.tensor4("x"), theano.shared(wv, name="w")
    out = conv2d(x, w, input_shape=(None, 2, 7, 6), filter_shape=(3, 2, 3, 2),
                 border_mode=border_mode, subsample=(1, 2))
    got = theano.function([x], out)(xv)
    np.testing.assert_allclose(got, _theano_conv(xv, wv, pad, (1, 2), (1, 1), True),
                               rtol=1e-4, atol=1e-4)


def test_conv2d_dilation_old_module_and_errors():
    rs = np.random.RandomState(2)
    xv, wv = rs.randn(1, 1, 8, 8).astype("float32"), rs.randn(2, 1, 2, 2).astype("float32")
    x = T.tensor4("x")
    f = theano.function([x], [conv2d(x, wv, filter_dilation=2, filter_flip=False),
                              T.nnet.conv.conv2d(x, wv, filter_shape=(2, 1, 2, 2))])
    dilated, old = f(xv)
    np.testing.assert_allclose(dilated, _theano_conv(xv, wv, (0, 0), (1, 1), (2, 2), False),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(old, _theano_conv(xv, wv, (0, 0), (1, 1), (1, 1), True),
                               rtol=1e-4, atol=1e-5)
    with pytest.raises(GraphcShapeError, match="filter_shape says 3"):
        conv2d(x, wv, filter_shape=(3, 1, 2, 2))
    with pytest.raises(GraphcTypeError, match="border_mode"):
        conv2d(x, wv, border_mode="same")


def _theano_pool(x, ws, stride, pad, ignore_border, mode):
    """Theano's Pool.perform, in numpy."""
    n, c, h, w = x.shape
    if ignore_border:
        out_hw = [(s + 2 * p - k) // st + 1 for s, k, st, p in zip((h, w), ws, stride, pad)]
    else:
        out_hw = [(s - 1) // st + 1 if st >= k else max(0, (s - 1 - k + st) // st) + 1
                  for s, k, st in zip((h, w), ws, stride)]
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    out = np.zeros((n, c) + tuple(out_hw), x.dtype)
    for i in range(out_hw[0]):
        for j in range(out_hw[1]):
            r0, c0 = i * stride[0], j * stride[1]
            r1, c1 = min(r0 + ws[0], xp.shape[2]), min(c0 + ws[1], xp.shape[3])
            if mode != "average_inc_pad":  # Theano: only that mode's windows include the padding
                r0, c0 = max(r0, pad[0]), max(c0, pad[1])
                r1, c1 = min(r1, h + pad[0]), min(c1, w + pad[1])
            win = xp[:, :, r0:r1, c0:c1]
            out[:, :, i, j] = {"max": win.max(axis=(2, 3)), "sum": win.sum(axis=(2, 3))}.get(
                mode, win.mean(axis=(2, 3)) if mode.startswith("average") else None)
    return out


@pytest.mark.parametrize("mode", pool.MODES)
@pytest.mark.parametrize("ws,stride,pad,ignore_border", [
    ((2, 2), (2, 2), (0, 0), True), ((3, 2), (2, 1), (0, 0), False), ((3, 3), (2, 2), (1, 1), True)])
def test_pool_2d_modes(mode, ws, stride, pad, ignore_border):
    xv = np.random.RandomState(3).randn(2, 2, 7, 6).astype("float32")
    x = T.tensor("x", (None, 2, 7, 6))
    out = pool.pool_2d(x, ws=ws, ignore_border=ignore_border, stride=stride, pad=pad, mode=mode)
    got = theano.function([x], out)(xv)
    want = _theano_pool(xv, ws, stride, pad, ignore_border, mode)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_pool_2d_old_names_and_errors():
    xv = np.random.RandomState(4).randn(1, 1, 4, 4).astype("float32")
    x = T.tensor4("x")
    got = theano.function([x], downsample.max_pool_2d(x, (2, 2), ignore_border=True))(xv)
    np.testing.assert_allclose(got, _theano_pool(xv, (2, 2), (2, 2), (0, 0), True, "max"))
    with pytest.raises(GraphcTypeError, match="ignore_border=True"):
        pool.pool_2d(x, ws=(2, 2), pad=(1, 1))
    with pytest.raises(GraphcTypeError, match="mode"):
        pool.pool_2d(x, ws=(2, 2), mode="median")


def test_random_streams_by_theano_paths():
    for cls in (RandomStreams, MRG_RandomStreams):
        srng = cls(seed=234)
        x = T.matrix("x")
        corrupt = srng.binomial(size=x.shape, n=1, p=0.75, dtype=theano.config.floatX) * x
        f = theano.function([x], corrupt)
        a, b = f(np.ones((50, 40), "float32")), f(np.ones((50, 40), "float32"))
        assert a.dtype == np.float32 and abs(a.mean() - 0.75) < 0.05
        assert not np.array_equal(a, b)  # the default update advanced the stream


def test_config_printing_clone_and_scan():
    assert theano.config.floatX == "float32" and theano.config.device == "cpu"
    theano.config.device = "cpu"  # Theano's settings may be set
    with pytest.raises(AttributeError, match="no setting"):
        theano.config.no_such_setting
    x, b = T.vector("x"), theano.shared(np.float32(1), name="b")
    assert theano.printing.pprint(T.exp(x * 2) + b) == "(exp((x * 2.0)) + b)"
    y = T.vector("y")
    z = theano.clone(x * 3, replace={x: y})
    np.testing.assert_array_equal(theano.function([y], z)([1.0]), [3.0])
    import graphc
    assert theano.scan is graphc.scan  # a plain name: Theano's signature is graphc's


def test_a_program_that_imports_theano_runs_unchanged(tmp_path):
    program = tmp_path / "prog.py"
    program.write_text(
        "import numpy\nimport theano\nimport theano.tensor as T\n"
        "from theano.tensor.signal import pool\n"
        "x = T.matrix('x')\nw = theano.shared(numpy.ones((3, 2), dtype=theano.config.floatX))\n"
        "f = theano.function([x], T.dot(x, w).sum(), allow_input_downcast=True)\n"
        "print('result', f(numpy.ones((4, 3))))\n")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-m", "graphc.theano", str(program)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "result 24.0" in out.stdout
