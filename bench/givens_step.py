"""Per-call cost of a Theano-style minibatch step (issue 14): `givens={x: data[i*bs:(i+1)*bs]}`
with the dataset in a shared variable, vs the same step with the batch passed in directly.

Interleaved rounds, CPU time per call (process time: the machine is shared), min and median.
    python bench/givens_step.py [--rounds 15] [--calls 200]
"""
import argparse
import statistics
import time

import numpy as np

import graphc as G


def build(n=2000, n_in=784, n_out=10, bs=20):
    rng = np.random.default_rng(0)
    data = G.shared(rng.standard_normal((n, n_in)).astype("float32"), name="data")
    labels = G.shared(rng.integers(0, n_out, n).astype("int64"), name="labels")
    W = G.shared(np.zeros((n_in, n_out), "float32"), name="W")
    b = G.shared(np.zeros(n_out, "float32"), name="b")
    x, y, i = G.matrix("x"), None, G.lscalar("i")
    y = G.tensor("y", (None,), "int64")
    p = G.nnet.softmax(G.dot(x, W) + b)
    cost = -G.mean(G.log(p)[G.arange(y.shape[0]), y])
    gW, gb = G.grad(cost, [W, b])
    upd = [(W, W - 0.1 * gW), (b, b - 0.1 * gb)]
    givens_fn = G.function([i], cost, updates=upd,
                           givens={x: data[i * bs:(i + 1) * bs], y: labels[i * bs:(i + 1) * bs]})
    direct_fn = G.function([x, y], cost, updates=upd)
    batches = [(data.get_value()[k * bs:(k + 1) * bs], labels.get_value()[k * bs:(k + 1) * bs])
               for k in range(n // bs)]
    return givens_fn, direct_fn, batches, n // bs


def per_call(fn, argsets, calls):
    t0 = time.process_time()
    for k in range(calls):
        fn(*argsets[k % len(argsets)])
    return (time.process_time() - t0) / calls * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--calls", type=int, default=200)
    a = ap.parse_args()
    givens_fn, direct_fn, batches, nb = build()
    idx = [(k,) for k in range(nb)]
    res = {"givens f(i)": [], "direct f(xb, yb)": []}
    per_call(givens_fn, idx, 20), per_call(direct_fn, batches, 20)  # warm up
    for _ in range(a.rounds):
        res["givens f(i)"].append(per_call(givens_fn, idx, a.calls))
        res["direct f(xb, yb)"].append(per_call(direct_fn, batches, a.calls))
    for name, v in res.items():
        print(f"{name:18s} CPU us/call: min {min(v):7.1f}  median {statistics.median(v):7.1f}")


if __name__ == "__main__":
    main()
