"""n_steps that shapes cannot prove equal to the sequences' length (Theano's lstm.py passes
n_steps=x.shape[0] next to a mask of another length symbol): the scan runs n_steps steps, each
sequence is read up to there, and a call with a sequence shorter than that is refused before
anything runs, naming the scan, the sequence, its length and n_steps. Forward and gradient
(BPTT over the same count) on every target, the CUDA host loop emulated, and AOT."""
import os
import shutil
import subprocess

import numpy as np
import pytest

import graphc as G


def masked_rnn(dtype, n_steps_from_x=True, go_backwards=False):
    """h_t = m_t * tanh(x_t + h_{t-1} * W) + (1 - m_t) * h_{t-1}, the mask m and x each with a
    length of its own; n_steps=x.shape[0] (or none). Returns (inputs, hs, W)."""
    x = G.tensor("x", (None, 3, 2), dtype)
    m = G.tensor("m", (None, 3), dtype)
    h0 = G.tensor("h0", (3, 2), dtype)
    W = G.shared(np.array([0.7, -0.4], dtype), name="W")

    def step(m_t, x_t, h):
        keep = m_t[:, None]
        return keep * G.tanh(x_t + h * W) + (1 - keep) * h
    hs, _ = G.scan(step, sequences=[m, x], outputs_info=h0, name="layer",
                   n_steps=x.shape[0] if n_steps_from_x else None, go_backwards=go_backwards)
    return [x, m, h0], hs, W


def numpy_rnn(x, m, h, w, steps, backwards=False):
    out = []
    for t in (reversed(range(steps)) if backwards else range(steps)):
        keep = m[t][:, None]
        h = keep * np.tanh(x[t] + h * w) + (1 - keep) * h
        out.append(h)
    return np.stack(out)


def _point(dtype, t_x, t_m, seed=0):
    r = np.random.default_rng(seed)
    return [r.standard_normal((t_x, 3, 2)).astype(dtype),
            (r.random((t_m, 3)) > 0.3).astype(dtype), r.standard_normal((3, 2)).astype(dtype)]


def _tol(dtype):
    return dict(rtol=2e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-11, atol=1e-12)


def _forward_and_gradient_follow_n_steps(dtype, target, go_backwards=False):
    inputs, hs, W = masked_rnn(dtype, go_backwards=go_backwards)
    assert hs.type.shape[0] == inputs[0].type.shape[0]  # the loop runs x.shape[0] steps
    wrt = [inputs[0], inputs[1], W]
    f = G.function(inputs, [hs] + G.grad((hs * hs).sum(), wrt), target=target)
    # reference: the same scan without n_steps over a mask cut by hand, on the py target
    ref_in, ref_hs, ref_W = masked_rnn(dtype, n_steps_from_x=False, go_backwards=go_backwards)
    ref = G.function(ref_in, [ref_hs] + G.grad((ref_hs * ref_hs).sum(),
                                               [ref_in[0], ref_in[1], ref_W]), backend="py")
    for t_x, t_m in ((4, 6), (3, 3), (1, 2)):
        x, m, h0 = _point(dtype, t_x, t_m, seed=t_x)
        hs_got, gx, gm, gW = f(x, m, h0)
        np.testing.assert_allclose(hs_got, numpy_rnn(x, m, h0, W.get_value(), t_x, go_backwards),
                                   **_tol(dtype))
        want = ref(x, m[:t_x], h0)
        assert gm.shape == m.shape and not gm[t_x:].any()  # mask entries past n_steps: unread
        for got, w in ((hs_got, want[0]), (gx, want[1]), (gm[:t_x], want[2]), (gW, want[3])):
            np.testing.assert_allclose(got, w, **_tol(dtype))


def test_symbolic_n_steps_reads_each_sequence_up_to_it(target, dtype):
    _forward_and_gradient_follow_n_steps(dtype, target)


def test_symbolic_n_steps_backwards_reads_the_first_n_steps_reversed(dtype):
    """(Theano: the sequences are cut to n_steps, then read from the end of the cut.)"""
    _forward_and_gradient_follow_n_steps(dtype, "c", go_backwards=True)


@pytest.mark.skipif(shutil.which("g++") is None, reason="the CUDA emulator needs g++")
def test_symbolic_n_steps_on_the_cuda_host_loop_emulated(monkeypatch):
    monkeypatch.setenv("GRAPHC_CUDA_EMULATE", "1")
    _forward_and_gradient_follow_n_steps("float32", "cuda")


def test_a_sequence_shorter_than_n_steps_is_refused_before_anything_runs(target):
    inputs, hs, W = masked_rnn("float64")
    f = G.function(inputs, hs, updates={W: W * 2.0}, target=target)
    x, m, h0 = _point("float64", 5, 3)
    with pytest.raises(G.InputError, match=r"scan 'layer': sequences\[0\] \(m\) has 3 entries "
                       r"along axis 0 but the scan runs n_steps = x\.shape\[0\] = 5 steps"):
        f(x, m, h0)
    np.testing.assert_array_equal(W.get_value(), [0.7, -0.4])  # the failed call changed nothing
    f(x[:3], m, h0)
    np.testing.assert_array_equal(W.get_value(), [1.4, -0.8])


def test_int_n_steps_with_symbolic_sequences_and_taps():
    """n_steps=3 over sequences of unknown lengths, one with taps [-1, 1] (it needs 3 + 2)."""
    a = G.tensor("a", (None,), "float64")
    b = G.tensor("b", (G.dim("Tb"),), "float64")
    ys, _ = G.scan(lambda a_m1, a_p1, b_t, y: y + a_m1 * a_p1 + b_t,
                   sequences=[dict(input=a, taps=[-1, 1]), b],
                   outputs_info=G.constant(0.0, dtype="float64"),
                   n_steps=3, name="taps")
    assert ys.type.shape == (3,)
    f = G.function([a, b], ys, backend="c")
    av, bv = np.arange(1.0, 8.0), np.arange(10.0, 14.0)
    want = np.cumsum([av[t] * av[t + 2] + bv[t] for t in range(3)])
    np.testing.assert_allclose(f(av, bv), want)
    with pytest.raises(G.InputError, match=r"sequences\[0\] \(a\) has 4 entries.*n_steps = 3 "
                       r"steps, which read 3 \+ 2 \(the span of its taps \[-1, 1\]\) entries"):
        f(av[:4], bv)
    with pytest.raises(G.InputError, match=r"sequences\[1\] \(b\) has 2 entries"):
        f(av, bv[:2])


def test_sequences_known_too_short_are_refused_when_the_scan_is_built():
    X, Y = G.tensor("X", (5, 2), "float64"), G.tensor("Y", (2, 2), "float64")
    with pytest.raises(G.GraphcError, match=r"n_steps = 3 but sequences\[1\] gives only 2 steps"):
        G.scan(lambda x, y: x + y, sequences=[X, Y], n_steps=3)
    # a longer one is read up to n_steps
    ys, _ = G.scan(lambda x, y: x + y, sequences=[X, G.tensor("Z", (3, 2), "float64")], n_steps=3)
    assert ys.type.shape == (3, 2)


def test_theano_lstm_tutorial_layer_keeps_n_steps():
    """lstm.py's lstm_layer as written there (n_steps=state_below.shape[0], the mask a separate
    input of its own length), trained one step: equals the same layer without n_steps."""
    from graphc import theano
    from graphc.theano import tensor as T

    def build(with_n_steps):
        rng = np.random.RandomState(3)
        dim = 3
        U = theano.shared((0.3 * rng.randn(dim, 4 * dim)).astype("float64"), name="U")
        state_below = T.tensor3("x", dtype="float64")
        mask = T.matrix("mask", dtype="float64")
        nsteps, n_samples = state_below.shape[0], state_below.shape[1]

        def _slice(_x, n):
            return _x[:, n * dim:(n + 1) * dim]

        def _step(m_, x_, h_, c_):
            preact = T.dot(h_, U) + x_
            i, f, o = (T.nnet.sigmoid(_slice(preact, k)) for k in range(3))
            c = f * c_ + i * T.tanh(_slice(preact, 3))
            c = m_[:, None] * c + (1. - m_)[:, None] * c_
            h = o * T.tanh(c)
            h = m_[:, None] * h + (1. - m_)[:, None] * h_
            return h, c
        rval, _ = theano.scan(_step, sequences=[mask, state_below],
                              outputs_info=[T.alloc(np.float64(0.), n_samples, dim),
                                            T.alloc(np.float64(0.), n_samples, dim)],
                              name="lstm_layers", n_steps=nsteps if with_n_steps else None)
        cost = (rval[0] * mask[:, :, None]).sum()
        return theano.function([state_below, mask], cost,
                               updates=[(U, U - 0.1 * T.grad(cost, U))]), U
    r = np.random.RandomState(4)
    x, mask = r.randn(5, 2, 12), (r.rand(5, 2) > 0.2).astype("float64")
    (f, U), (g, V) = build(True), build(False)
    np.testing.assert_allclose(f(x, mask), g(x, mask), rtol=1e-12)
    np.testing.assert_allclose(U.get_value(), V.get_value(), rtol=1e-12)
    # (the cost's mask * h ties the mask's length to x's here, as in the tutorial)
    with pytest.raises(G.InputError, match=r"input mask: expected shape \(x.shape\[0\]"):
        f(x, mask[:4])


@pytest.mark.skipif(shutil.which(os.environ.get("CC", "gcc")) is None, reason="needs a C compiler")
def test_aot_export_checks_the_length_in_c(tmp_path):
    from test_aot import make_example
    x = G.tensor("x", (G.dim("batch"), None, 2), "float32")
    m = G.tensor("m", (G.dim("batch"), None), "float32")
    xs, ms = x.dimshuffle(1, 0, 2), m.dimshuffle(1, 0)
    hs, _ = G.scan(lambda m_t, x_t, h: m_t[:, None] * G.tanh(x_t + h) + (1 - m_t[:, None]) * h,
                   sequences=[ms, xs], outputs_info=G.zeros_like(x[:, 0, :]),
                   n_steps=xs.shape[0], name="layer")
    f = G.function([x, m], hs[-1], name="nsteps_infer")
    out = str(tmp_path / "lib")
    G.aot.export({"infer": f}, out, name="nsteps")
    main = make_example(out, "nsteps")
    r = np.random.RandomState(0)
    xv, mv = r.rand(3, 4, 2).astype("float32"), (r.rand(3, 5) > 0.3).astype("float32")
    xv.tofile(tmp_path / "x.bin")
    mv.tofile(tmp_path / "m.bin")
    dims = ["3", "4", "5"]  # batch, x's length, m's length
    proc = subprocess.run([main, "infer", *dims, "x.bin", "m.bin", "o.bin"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_allclose(np.fromfile(tmp_path / "o.bin", "float32").reshape(3, 2),
                               f(xv, mv), rtol=1e-5, atol=1e-7)
    mv[:, :3].copy().tofile(tmp_path / "m.bin")
    proc = subprocess.run([main, "infer", "3", "4", "3", "x.bin", "m.bin", "o.bin"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode != 0 and "scan 'layer': sequences[0] is shorter than the scan's " \
        "n_steps" in proc.stdout + proc.stderr
