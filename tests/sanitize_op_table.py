"""Run in a subprocess by test_sanitizers.py, with the sanitizer runtime preloaded: compiles the
op table (every case of op_cases.py, forward and gradient) as one function per dtype, with the
C flags GRAPHC_CFLAGS gives (-fsanitize=address,undefined), runs it and compares it with the py
target. A sanitizer report aborts the process (halt_on_error) and names the fault on stderr."""
import sys

import numpy as np

import graphc as G
from op_cases import CASES


def op_table_function(dtype, backend):
    rng = np.random.RandomState(0)
    inputs, outputs, values = [], [], []
    for name in sorted(CASES):
        build, makers, differentiable = CASES[name]
        vals = [m(rng, dtype) for m in makers]
        xs = [G.tensor(f"{name}_{k}", v.shape, v.dtype.name) for k, v in enumerate(vals)]
        out = build(*xs)
        outputs.append(out)
        floats = [x for x in xs if x.dtype.startswith("float")]
        if differentiable and floats and out.dtype.startswith("float"):
            outputs += G.grad(G.sum(out * out), floats, disconnected_inputs="ignore")
        inputs += xs
        values += vals
    return G.function(inputs, outputs, backend=backend, name=f"op_table_{dtype}"), values


def main():
    for dtype in sys.argv[1:] or ["float32", "float64"]:
        f, values = op_table_function(dtype, "c")
        got = f(*values)
        want, _ = op_table_function(dtype, "py")
        for g, w in zip(got, want(*values)):
            tol = 1e-3 if dtype == "float32" else 1e-8
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol)
        print(f"{dtype}: {len(got)} outputs clean", flush=True)


if __name__ == "__main__":
    main()
