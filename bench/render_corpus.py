"""Write the C that graphc renders for a fixed corpus of graphs into a folder, one file each.

    python bench/render_corpus.py OUT_DIR
    diff -r OLD_DIR NEW_DIR        # what a change did to the generated code

The corpus: every case of the op table (tests/op_cases.py) in float32 and float64, the forward
and the gradient function of each, the MLP, LeNet and LSTM training steps of bench/, and an AOT
export of the MLP. A refactoring of the compiler that promises "the rendered C stays the same"
is checked with this. It compiles every graph (into a fresh cache), so it takes a minute or two.
"""
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]
# A fresh cache: a warm compile would reuse an earlier graph's source with its names.
os.environ["GRAPHC_CACHE_DIR"] = tempfile.mkdtemp(prefix="graphc-corpus-")

import numpy as np  # noqa: E402

import graphc as G  # noqa: E402


def source_of(fn):
    """The C source graphc compiled for a Function."""
    return fn.program.source


def _write(out_dir, name, text):
    with open(os.path.join(out_dir, name), "w") as fh:
        fh.write(text)


def render_op_table(out_dir):
    from op_cases import CASES
    for name in sorted(CASES):
        build, makers, differentiable = CASES[name]
        for dtype in ("float32", "float64"):
            rng = np.random.RandomState(0)
            values = [m(rng, dtype) for m in makers]
            xs = [G.tensor(f"x{k}", v.shape, v.dtype.name) for k, v in enumerate(values)]
            out = build(*xs)
            _write(out_dir, f"op_{name}_{dtype}.c",
                   source_of(G.function(xs, out, name=f"op_{name}")))
            if differentiable:
                floats = [x for x in xs if x.dtype.startswith("float")]
                cost = G.sum(out * out) if out.dtype.startswith("float") else None
                if cost is not None:
                    grads = G.grad(cost, floats, disconnected_inputs="ignore")
                    _write(out_dir, f"op_{name}_{dtype}_grad.c",
                           source_of(G.function(xs, grads, name=f"op_{name}_grad")))


def render_steps(out_dir):
    from bench import graphc_impl
    captured = []
    real_function = G.function

    def capturing(*args, **kwargs):
        fn = real_function(*args, **kwargs)
        captured.append(fn)
        return fn

    G.function = capturing
    try:
        for name, builder in [("mlp_step", graphc_impl.mlp_step),
                              ("lenet_step", graphc_impl.lenet_step),
                              ("lstm_step", graphc_impl.lstm_step)]:
            captured.clear()
            builder()
            _write(out_dir, f"{name}.c", source_of(captured[-1]))
    finally:
        G.function = real_function


def render_aot(out_dir):
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from test_aot import build_mlp
    functions, _ = build_mlp()
    export_dir = tempfile.mkdtemp(prefix="graphc-corpus-aot-")
    G.aot.export(functions, export_dir, name="mlp")
    src = os.path.join(export_dir, "src")
    for f in sorted(os.listdir(src)):
        with open(os.path.join(src, f)) as fh:
            _write(out_dir, f"aot_{f}", fh.read())
    with open(os.path.join(export_dir, "mlp.h")) as fh:
        _write(out_dir, "aot_mlp.h", fh.read())


def main(argv):
    if len(argv) != 1:
        print(__doc__)
        return 2
    out_dir = argv[0]
    os.makedirs(out_dir, exist_ok=True)
    render_op_table(out_dir)
    render_steps(out_dir)
    render_aot(out_dir)
    print(f"wrote {len(os.listdir(out_dir))} files to {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
