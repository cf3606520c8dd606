"""The op table at the optimization levels test_ops does not cover: every case in op_cases,
compiled at O0 (no passes) and O1 (canonicalize + stabilize, no fusion) against the numpy
reference, in float64. test_ops runs the default level (O3; O2 has the same pipeline), so
together the suite passes at every optimization level."""
import numpy as np
import pytest

import graphc as G

from op_cases import CASES


@pytest.mark.parametrize("level", ["O0", "O1"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_compiled_matches_reference_at_level(name, level):
    build, makers, _ = CASES[name]
    rng = np.random.RandomState(0)
    values = [m(rng, "float64") for m in makers]
    xs = [G.tensor(f"x{k}", v.shape, v.dtype.name) for k, v in enumerate(values)]
    out = build(*xs)
    want = G.function(xs, out, backend="py", opt_level="O0")(*values)
    got = G.function(xs, out, backend="c", opt_level=level)(*values)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
