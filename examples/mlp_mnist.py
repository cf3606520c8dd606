"""A 784-500-10 ReLU MLP trained with SGD on the MNIST digits bundled with graphc.

The 5,000-digit subset is split 4,000 train / 1,000 test with a fixed permutation
(np.random.RandomState(0)); see graphc/data/ATTRIBUTION.md for where the digits come from.

Run: python examples/mlp_mnist.py [--epochs 20] [--batch 64] [--lr 0.1] [--backend c|py]
"""
import argparse
import time

import numpy as np

import graphc as G
from graphc.data import iterate_minibatches, load_mnist_subset


def build_mlp(n_in=784, n_hidden=500, n_out=10, seed=1234):
    rng = np.random.RandomState(seed)

    def glorot(fan_in, fan_out):
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-bound, bound, (fan_in, fan_out)).astype("float32")

    params = {
        "W1": G.shared(glorot(n_in, n_hidden), name="W1"),
        "b1": G.shared(np.zeros(n_hidden, "float32"), name="b1"),
        "W2": G.shared(glorot(n_hidden, n_out), name="W2"),
        "b2": G.shared(np.zeros(n_out, "float32"), name="b2"),
    }
    return params


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--backend", default="c")
    args = ap.parse_args()

    X_train, y_train = load_mnist_subset("train")
    X_test, y_test = load_mnist_subset("test")
    print(f"MNIST subset: {len(X_train)} train / {len(X_test)} test digits")

    p = build_mlp()
    batch = G.dim("batch")
    x = G.tensor("x", (batch, 784))
    y = G.tensor("y", (batch,), "int64")
    hidden = G.relu(G.dot(x, p["W1"]) + p["b1"])
    logits = G.dot(hidden, p["W2"]) + p["b2"]
    probs = G.softmax(logits)
    loss = G.categorical_crossentropy(probs, y).mean()
    params = list(p.values())
    grads = G.grad(loss, params)
    updates = {w: w - args.lr * g for w, g in zip(params, grads)}

    t = time.perf_counter()
    train = G.function([x, y], loss, updates=updates, name="mlp_train", backend=args.backend)
    predict = G.function([x], G.argmax(probs, axis=1), name="mlp_predict", backend=args.backend)
    print(f"compiled in {time.perf_counter() - t:.2f} s")

    rng = np.random.RandomState(0)
    for epoch in range(1, args.epochs + 1):
        t = time.perf_counter()
        losses = [train(xb, yb) for xb, yb in iterate_minibatches(X_train, y_train, args.batch,
                                                                  shuffle=True, rng=rng)]
        acc = (predict(X_test) == y_test).mean()
        print(f"epoch {epoch:2d}  loss {np.mean(losses):.4f}  test accuracy {acc:.4f}  "
              f"({time.perf_counter() - t:.2f} s)")
    acc = (predict(X_test) == y_test).mean()
    print(f"final test accuracy: {acc * 100:.2f}% on {len(y_test)} held-out digits")
    return acc


if __name__ == "__main__":
    main()
