"""Every op: compiled C against the numpy reference, and symbolic against numeric gradients."""
import numpy as np
import pytest

import graphc as G
from graphc.testing import verify_grad

from op_cases import CASES


def _inputs(makers, dtype, seed=0):
    rng = np.random.RandomState(seed)
    return [m(rng, dtype) for m in makers]


def _symbolic(values):
    return [G.tensor(f"x{k}", v.shape, v.dtype.name) for k, v in enumerate(values)]


@pytest.mark.parametrize("name", sorted(CASES))
def test_compiled_matches_reference(name, dtype, target):
    build, makers, _ = CASES[name]
    values = _inputs(makers, dtype)
    xs = _symbolic(values)
    out = build(*xs)
    ref = G.function(xs, out, backend="py", opt_level="O0")(*values)
    got = G.function(xs, out, backend=target)(*values)
    assert got.dtype == ref.dtype and got.shape == ref.shape
    tol = 2e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c[2]))
def test_gradient_matches_finite_differences(name, dtype, target):
    build, makers, _ = CASES[name]
    values = _inputs(makers, dtype, seed=1)
    tol = dict(rtol=2e-2, atol=2e-3) if dtype == "float32" else dict(rtol=1e-5, atol=1e-7)
    verify_grad(build, values, backend=target, **tol)
