"""Caffe's deep MNIST autoencoder (caffe/examples/mnist/mnist_autoencoder.prototxt), trained with
three of Caffe's solvers side by side: SGD with momentum, Nesterov and AdaGrad.

Net:  784 -> 1000 -> 500 -> 250 -> 30 -> 250 -> 500 -> 1000 -> 784, sigmoid units except the
      30-unit code and the output logits; Caffe's fillers (sparse Gaussian, std 1, 15 non-zeros
      per unit on average; zero biases).
Loss: SigmoidCrossEntropyLoss(decode1, data) (loss_weight 1, summed over pixels / batch size);
      EuclideanLoss(sigmoid(decode1), data) reported with loss_weight 0 (Caffe's "l2_error").
Solvers (Caffe's mnist_autoencoder_solver*.prototxt, weight_decay 5e-4, batch 100):
      sgd       lr 0.01, momentum 0.9,  "step" policy (gamma 0.1, stepsize 10000)
      nesterov  lr 0.01, momentum 0.95, "step" policy (gamma 0.1, stepsize 10000)
      adagrad   lr 0.01, "fixed" policy

Data: the MNIST digits bundled with graphc (4,000 train / 1,000 test). Every solver starts from
the same initial weights (same net seed). The default (--epochs 8) runs in a few minutes; Caffe
trains for 65,000 iterations.

Writes --out/autoencoder_curves.png (train loss, test cross-entropy and test L2 error per epoch
for the three solvers; needs matplotlib: pip install 'graphc[viz]', else the example trains and
says so) and prints a comparison table.

Run: python examples/mnist_autoencoder.py [--epochs 8] [--solvers sgd,nesterov,adagrad]
"""
import argparse
import os
import time

import numpy as np

import graphc as G
from graphc import nn, optim
from graphc.data import load_mnist_subset
from graphc.nn.viz import VizUnavailable, plot_curves
from graphc.train import Trainer

SIZES = [1000, 500, 250, 30]


def autoencoder(seed=1):
    batch = G.dim("batch")
    net = nn.Net("MNISTAutoencoder", seed=seed)
    net.input("data", (batch, 784))
    weights = nn.gaussian(std=1.0, sparse=15)
    mults = [{"lr_mult": 1, "decay_mult": 1}, {"lr_mult": 1, "decay_mult": 0}]
    prev = "data"
    for k, n in enumerate(SIZES, 1):              # encoder: encode1..encode4
        net.add(nn.InnerProduct(f"encode{k}", n, weight_filler=weights, param=mults), bottom=prev)
        prev = f"encode{k}"
        if k < len(SIZES):                         # the 30-unit code is linear
            net.add(nn.Sigmoid(f"encode{k}neuron"))
            prev = f"encode{k}neuron"
    for k, n in zip(range(len(SIZES), 0, -1), SIZES[-2::-1] + [784]):   # decode4..decode1
        net.add(nn.InnerProduct(f"decode{k}", n, weight_filler=weights, param=mults), bottom=prev)
        prev = f"decode{k}"
        if k > 1:
            net.add(nn.Sigmoid(f"decode{k}neuron"))
            prev = f"decode{k}neuron"
    net.add(nn.SigmoidCrossEntropyLoss("cross_entropy_loss", bottom=["decode1", "data"],
                                       loss_weight=1))
    net.add(nn.Sigmoid("decode1neuron"), bottom="decode1")
    net.add(nn.EuclideanLoss("l2_error", bottom=["decode1neuron", "data"], loss_weight=0))
    return net


SOLVERS = {
    "sgd": lambda net: optim.SGD(net, lr=optim.Step(0.01, gamma=0.1, stepsize=10000),
                                 momentum=0.9, weight_decay=5e-4),
    "nesterov": lambda net: optim.Nesterov(net, lr=optim.Step(0.01, gamma=0.1, stepsize=10000),
                                           momentum=0.95, weight_decay=5e-4),
    "adagrad": lambda net: optim.AdaGrad(net, lr=0.01, weight_decay=5e-4),
}


def write_solver_comparison(path, results, per_epoch, k=10):
    """The solvers' curves on one figure (graphc.nn.viz): train cross-entropy (mean over k
    iterations), test cross-entropy and test L2 error against epochs, one line per solver.
    results: {solver: {"history": a Trainer's history}}. Without matplotlib, says how to get
    it and returns None (the training ran all the same)."""

    def smoothed(h):   # mean over k iterations, at the last iteration of each window
        loss = np.asarray(h["loss"])
        k_ = min(k, len(loss))
        return (np.asarray(h["iter"][k_ - 1:]) * per_epoch,
                np.convolve(loss, np.ones(k_) / k_, "valid"))

    def tested(h, key):  # from the first epoch on (the untrained net's error dwarfs the rest)
        its = np.asarray(h["test_iter"])
        vals = np.asarray([t[key] for t in h["test"]])
        keep = its > 0
        return its[keep] * per_epoch, vals[keep]

    panels = [
        {"title": f"train cross-entropy (mean of {k})", "xlabel": "epoch", "logy": True,
         "series": [(n, *smoothed(r["history"])) for n, r in results.items()]},
        {"title": "test cross-entropy", "xlabel": "epoch",
         "series": [(n, *tested(r["history"], "cross_entropy_loss")) for n, r in results.items()]},
        {"title": "test L2 error", "xlabel": "epoch",
         "series": [(n, *tested(r["history"], "l2_error")) for n, r in results.items()]},
    ]
    try:
        plot_curves(path, panels)
    except VizUnavailable as e:
        print(f"no plot: {e}")
        return None
    print(f"wrote {path}")
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=float, default=8)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--solvers", default="sgd,nesterov,adagrad")
    ap.add_argument("--out", default="autoencoder_out")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--verbose", action="store_true", help="print every Caffe-style log line")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    names = [s.strip() for s in args.solvers.split(",") if s.strip()]
    for n in names:
        if n not in SOLVERS:
            raise SystemExit(f"unknown solver {n!r}; choose from {', '.join(SOLVERS)}")

    X, _ = load_mnist_subset("train")
    Xt, _ = load_mnist_subset("test")
    epoch_iters = int(np.ceil(len(X) / args.batch))
    print(f"MNIST subset: {len(X)} train / {len(Xt)} test digits; batch {args.batch}, "
          f"{args.epochs:g} epochs = {int(np.ceil(args.epochs * len(X) / args.batch))} iterations "
          "per solver")

    results = {}
    for name in names:
        net = autoencoder(seed=args.seed)          # same seed: the same initial weights
        solver = SOLVERS[name](net)
        lines = []

        def log(line, name=name, lines=lines):
            lines.append(line)
            if args.verbose or "Testing" in line or "Test net output" in line:
                print(f"[{name}] {line}")

        t0 = time.perf_counter()
        trainer = Trainer(net, solver, train_data={"data": X}, test_data={"data": Xt},
                          batch_size=args.batch, test_batch_size=500, epochs=args.epochs,
                          display=epoch_iters, test_interval=epoch_iters, seed=args.seed, log=log)
        compile_s = time.perf_counter() - t0
        trainer.train()
        h = trainer.history
        results[name] = {
            "history": h, "compile_s": compile_s, "train_s": trainer.timing["train_s"],
            "ms_per_iter": trainer.timing["train_s"] / max(trainer.timing["iters"], 1) * 1e3,
            "final": h["test"][-1],
            "train_loss": float(np.mean(h["loss"][-epoch_iters:])),
        }

    print("\nsolver     train loss   test cross-entropy   test L2 error   ms/iter   train s")
    for name, r in results.items():
        print(f"{name:9s}  {r['train_loss']:10.3f}   {r['final']['cross_entropy_loss']:18.3f}   "
              f"{r['final']['l2_error']:13.3f}   {r['ms_per_iter']:7.1f}   {r['train_s']:7.1f}")
    best = min(results, key=lambda n: results[n]["final"]["l2_error"])
    print(f"lowest test L2 error: {best}")

    write_solver_comparison(os.path.join(args.out, "autoencoder_curves.png"), results,
                            per_epoch=args.batch / len(X))
    return results


if __name__ == "__main__":
    main()
