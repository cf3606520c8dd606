"""Caffe's LeNet on MNIST (caffe/examples/mnist/lenet_train_test.prototxt + lenet_solver.prototxt),
written with graphc.nn / graphc.optim / graphc.train.

Net:    conv1 20 5x5 -> pool1 max 2/2 -> conv2 50 5x5 -> pool2 max 2/2 -> ip1 500 -> relu1 -> ip2 10
        (xavier weights, constant-0 biases, lr_mult 1 for weights and 2 for biases)
Solver: SGD, base_lr 0.01, momentum 0.9, weight_decay 5e-4, lr_policy "inv" (gamma 1e-4,
        power 0.75), batch 64.

Data:   --dataset mnist (default): the 5,000 digits bundled with graphc, 4,000 train / 1,000
        test; --dataset fashion: full Fashion-MNIST (60,000 / 10,000) when a local copy exists
        (Debian's dataset-fashion-mnist, or $GRAPHC_FASHION_MNIST). Pixels are scaled to [0, 1]
        (Caffe scales by 1/256).

Writes to --out (default lenet_out/): lenet_curve.png (training loss and test accuracy),
lenet_conv1.png (conv1's 20 filters), lenet_conv1_activations.png (conv1's output for the first
test image, one tile per channel), lenet_final.params.npz (parameters by name), and prints
the shape of features read from an inner layer (ip1) by name. The pictures need matplotlib
(pip install 'graphc[viz]'); without it the example trains and says so.

Run: python examples/lenet_mnist.py [--epochs 10] [--dataset mnist|fashion] [--out DIR]
        [--target cpu|cuda] [--steps N]
--target cuda trains on the GPU (GRAPHC_CUDA_EMULATE=1 runs the CUDA code on the CPU's execution
model: slow, use --steps to keep it short); --steps N stops after N iterations and tests once, on
the first 500 test images.
"""
import argparse
import os
import time

import numpy as np

import graphc as G
from graphc import nn, optim
from graphc.data import find_fashion_mnist, load_fashion_mnist, load_mnist_subset
from graphc.nn.viz import VizUnavailable, plot_curves, save_activation_grid, save_filter_grid
from graphc.train import Trainer


def lenet(seed=1, num_output=10, last="ip2", frozen=()):
    """Caffe's LeNet as a graphc.nn.Net. `last` renames the classifier (fine-tuning: a new
    name = a fresh layer); layers in `frozen` get lr_mult 0."""
    batch = G.dim("batch")
    net = nn.Net("LeNet", seed=seed)
    net.input("data", (batch, 1, 28, 28))
    net.input("label", (batch,), "int64")

    def mults(layer):
        if layer in frozen:
            return [{"lr_mult": 0}, {"lr_mult": 0}]
        return [{"lr_mult": 1}, {"lr_mult": 2}]

    xavier, zero = nn.xavier(), nn.constant(0.0)
    net.add(nn.Conv2D("conv1", num_output=20, kernel_size=5, stride=1, param=mults("conv1"),
                      weight_filler=xavier, bias_filler=zero), bottom="data")
    net.add(nn.MaxPool2D("pool1", kernel_size=2, stride=2))
    net.add(nn.Conv2D("conv2", num_output=50, kernel_size=5, stride=1, param=mults("conv2"),
                      weight_filler=xavier, bias_filler=zero))
    net.add(nn.MaxPool2D("pool2", kernel_size=2, stride=2))
    net.add(nn.InnerProduct("ip1", num_output=500, param=mults("ip1"), weight_filler=xavier,
                            bias_filler=zero))
    net.add(nn.ReLU("relu1"))
    net.add(nn.InnerProduct(last, num_output=num_output, param=mults(last), weight_filler=xavier,
                            bias_filler=zero))
    net.add(nn.Accuracy("accuracy", bottom=[last, "label"], phase="test"))
    net.add(nn.SoftmaxWithLoss("loss", bottom=[last, "label"]))
    return net


def lenet_solver(net, base_lr=0.01):
    return optim.SGD(net, lr=optim.Inv(base_lr, gamma=1e-4, power=0.75), momentum=0.9,
                     weight_decay=5e-4)


def load_data(name):
    if name == "mnist":
        return load_mnist_subset("train", flatten=False), load_mnist_subset("test", flatten=False)
    if name == "fashion":
        if find_fashion_mnist() is None:
            raise SystemExit("Fashion-MNIST not found: install Debian's dataset-fashion-mnist or "
                             "set GRAPHC_FASHION_MNIST=DIR (train/t10k IDX files)")
        return (load_fashion_mnist("train", flatten=False),
                load_fashion_mnist("test", flatten=False))
    raise SystemExit(f"unknown dataset {name!r}")


def write_plots(out, trainer, net, tag="lenet", activations=None):
    """Training curves, conv1's filters and (activations: conv1's output for one image,
    (20, 24, 24)) its activation grid. Without matplotlib, says how to get it."""
    h = trainer.history
    it, loss = np.asarray(h["iter"]), np.asarray(h["loss"])
    k = min(20, len(loss))
    smooth = np.convolve(loss, np.ones(k) / k, mode="valid") if k else loss
    panels = [
        {"title": "train loss", "xlabel": "iteration", "logy": True,
         "series": [("loss", it, loss), (f"mean of {k}", it[k - 1:], smooth)]},
        {"title": "test accuracy", "xlabel": "iteration",
         "series": [("accuracy", h["test_iter"], [t["accuracy"] for t in h["test"]])]},
    ]
    curve = os.path.join(out, f"{tag}_curve.png")
    filters = os.path.join(out, f"{tag}_conv1.png")
    try:
        plot_curves(curve, panels)
        save_filter_grid(filters, net.params["conv1.W"].get_value(), ncols=5, scale=8,
                         title="conv1 filters")
        if activations is not None:
            acts = save_activation_grid(os.path.join(out, f"{tag}_conv1_activations.png"),
                                        activations, title="conv1 output, first test image",
                                        scale=4)
    except VizUnavailable as e:  # the training ran all the same
        print(f"no plots: {e}")
        return
    print(f"wrote {curve}, {filters}" + (f" and {acts}" if activations is not None else ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=float, default=10)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--dataset", choices=("mnist", "fashion"), default="mnist")
    ap.add_argument("--out", default="lenet_out")
    ap.add_argument("--display", type=int, default=100)
    ap.add_argument("--test-interval", type=int, default=0,
                    help="iterations between tests (default: one epoch)")
    ap.add_argument("--snapshot", type=int, default=0, help="snapshot every N iterations")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--target", default=None, help="cpu or cuda (default: GRAPHC_TARGET, else cpu)")
    ap.add_argument("--steps", type=int, default=0,
                    help="stop after this many iterations and test once, on 500 test images")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    (X, y), (Xt, yt) = load_data(args.dataset)
    if args.steps:
        Xt, yt = Xt[:500], yt[:500]
    print(f"{args.dataset}: {len(X)} train / {len(Xt)} test images {X.shape[1:]}")
    net = lenet(seed=args.seed)
    print(net.summary())
    solver = lenet_solver(net)
    iters_per_epoch = int(np.ceil(len(X) / args.batch))
    t0 = time.perf_counter()
    trainer = Trainer(net, solver, train_data=(X, y), test_data=(Xt, yt), batch_size=args.batch,
                      test_batch_size=500, epochs=args.epochs, display=args.display,
                      test_interval=args.test_interval or iters_per_epoch,
                      snapshot=args.snapshot, seed=args.seed,
                      snapshot_prefix=os.path.join(args.out, "lenet"), target=args.target,
                      max_iter=args.steps or None, test_initialization=not args.steps)
    print(f"compiled train step and test net in {time.perf_counter() - t0:.1f} s; "
          f"{trainer.max_iter} iterations = {trainer.max_iter * args.batch / len(X):.3g} epochs of "
          f"{len(X) / args.batch:.1f}")
    trainer.train()
    tm = trainer.timing
    epochs_done = tm["iters"] * args.batch / len(X)
    acc = trainer.history["test"][-1]["accuracy"]
    print(f"final test accuracy: {acc * 100:.2f}% on {len(Xt)} images after {epochs_done:g} epochs")
    print(f"time: {tm['train_s'] / epochs_done:.2f} s per epoch training "
          f"({tm['train_s'] / max(tm['iters'], 1) * 1e3:.1f} ms per iteration of {args.batch}), "
          f"{tm['test_s']:.1f} s testing in total")

    # Features of an inner layer, read by name from the TEST-phase net.
    features = net.function(["conv1", "pool2", "ip1"], phase="test")
    conv1, pool2, ip1 = features(Xt[:8])
    print(f"features of the first 8 test images: pool2 {pool2.shape}, ip1 {ip1.shape} "
          f"(inputs: {features.input_names})")

    net.save(os.path.join(args.out, "lenet_final.params.npz"))
    write_plots(args.out, trainer, net, activations=conv1[0])
    return acc


if __name__ == "__main__":
    main()
