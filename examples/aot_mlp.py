"""Ship an MLP (784-64-10, ReLU, softmax) to C: inference and an SGD training step.

    graphc aot examples/aot_mlp.py:build --out dist/mlp
    make -C dist/mlp && dist/mlp/mlp_main          # lists the functions and parameters

or, from Python: python examples/aot_mlp.py dist/mlp
"""
import sys

import numpy as np

import graphc as G


def build(n_hidden=64, lr=0.1, seed=1234):
    """The functions to export: {"infer": x -> probs, "train_step": (x, y) -> loss, updates}."""
    rng = np.random.RandomState(seed)

    def glorot(fan_in, fan_out):
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-bound, bound, (fan_in, fan_out)).astype("float32")

    W1 = G.shared(glorot(784, n_hidden), name="W1")
    b1 = G.shared(np.zeros(n_hidden, "float32"), name="b1")
    W2 = G.shared(glorot(n_hidden, 10), name="W2")
    b2 = G.shared(np.zeros(10, "float32"), name="b2")
    batch = G.dim("batch")
    x = G.tensor("x", (batch, 784))
    y = G.tensor("y", (batch,), "int64")
    probs = G.softmax(G.dot(G.relu(G.dot(x, W1) + b1), W2) + b2)
    loss = G.categorical_crossentropy(probs, y).mean()
    params = [W1, b1, W2, b2]
    updates = {p: p - lr * g for p, g in zip(params, G.grad(loss, params))}
    return {"infer": G.function([x], probs, name="mlp_infer"),
            "train_step": G.function([x, y], loss, updates=updates, name="mlp_train")}


if __name__ == "__main__":
    out = G.aot.export(build(), sys.argv[1] if len(sys.argv) > 1 else "dist/mlp", name="mlp")
    print(f"wrote {out.directory}")
