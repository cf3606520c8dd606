"""The conv kernel choices of the C target (lower_cnn.py, templates/c/conv_*.j2): every path
must give the py reference's result up to float rounding, in both dtypes, on odd sizes."""
import numpy as np
import sympy

import graphc as G


def test_chunk_holds_one_image_when_one_image_exceeds_the_budget(monkeypatch):
    """Symbolic image sizes and a budget smaller than one image: the chunk is one image. sympy
    folded Max(1, floor(budget / size)) into the floor, so NB was 0 and the chunk loop never
    advanced (the call hung)."""
    monkeypatch.setenv("GRAPHC_CONV_ALGO", "gemm")
    monkeypatch.setenv("GRAPHC_CONV_WORKSPACE", "4096")
    x = G.tensor4("x", dtype="float64")
    w = G.shared(np.random.RandomState(0).standard_normal((4, 3, 3, 3)), name="w")
    y = G.conv2d(x, w, padding=(1, 1))
    outs = [y] + G.grad((y * y).sum(), [x, w])
    f = G.function([x], outs)
    chunked = [k for k in f.program.program.kernels if k.kind.startswith("conv_chunked")]
    assert len(chunked) == 3
    xv = np.random.RandomState(1).standard_normal((3, 3, 9, 7))
    dims = {s: 1 for k in chunked for s in sympy.sympify(k.params["NB"]).free_symbols}
    for k in chunked:  # every symbol at its smallest value still gives a chunk of >= 1 image
        nb = sympy.sympify(k.params["NB"]).subs({s: v for s, v in dims.items()})
        assert nb >= 1
        big = sympy.sympify(k.params["NB"]).subs({s: 1000 for s in dims})
        assert big >= 1, f"NB = {k.params['NB']} is {big} for large images"
    ref = G.function([x], outs, backend="py", opt_level="O0")
    for got, want in zip(f(xv), ref(xv)):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11)
