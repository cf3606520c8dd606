"""Fine-tuning, Caffe style: train LeNet briefly, snapshot it, load the snapshot by name into a
network with a new last layer, and fine-tune with the lower layers frozen (lr_mult 0).

1. Pre-train Caffe's LeNet on the digits 0-4 of the bundled MNIST subset; snapshot
   (lenet_iter_N.params.npz / .solverstate.npz).
2. Build LeNet for a new task, the digits 5-9, with a new classifier "ip2_new" (5 outputs) and
   conv1/conv2 frozen (lr_mult 0). finetune() copies every parameter whose name and shape match
   (conv1, conv2, ip1) and reports that ip2_new keeps its fresh initialization and that the old
   ip2 was not used.
3. Fine-tune on a small training set of the new task (--shots examples); compare with the same
   net trained from scratch on the same data and budget, and check the frozen layers did not move.

Run: python examples/finetune.py [--pretrain-epochs 3] [--epochs 4] [--shots 500]
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lenet_mnist import lenet, lenet_solver  # noqa: E402

from graphc.data import load_mnist_subset  # noqa: E402
from graphc.train import Trainer, finetune  # noqa: E402


def subset(X, y, classes, limit=None):
    keep = np.isin(y, classes)
    X, y = X[keep], y[keep] - min(classes)
    return (X[:limit], y[:limit]) if limit else (X, y)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pretrain-epochs", type=float, default=3)
    ap.add_argument("--epochs", type=float, default=4)
    ap.add_argument("--shots", type=int, default=500, help="training examples of the new task")
    ap.add_argument("--out", default="finetune_out")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    X, y = load_mnist_subset("train", flatten=False)
    Xt, yt = load_mnist_subset("test", flatten=False)
    old_task = subset(X, y, [0, 1, 2, 3, 4]), subset(Xt, yt, [0, 1, 2, 3, 4])
    new_task = subset(X, y, [5, 6, 7, 8, 9], args.shots), subset(Xt, yt, [5, 6, 7, 8, 9])

    def log(prefix):
        return lambda line: print(f"[{prefix}] {line}") if ("Test net" in line or "Snapshot" in line
                                                            or "Copying" in line) else None

    # 1. pre-train on digits 0-4 (LeNet's 10 outputs; the labels use 5 of them)
    print(f"1. pre-training LeNet on digits 0-4 ({len(old_task[0][0])} images)")
    net = lenet(seed=1)
    trainer = Trainer(net, lenet_solver(net), old_task[0], old_task[1], batch_size=64,
                      epochs=args.pretrain_epochs, display=0, test_interval=0,
                      test_batch_size=500, snapshot_prefix=os.path.join(args.out, "lenet"),
                      log=log("pretrain"))
    trainer.train()
    params_path, state_path = trainer.snapshot()
    print(f"   digits 0-4 test accuracy {trainer.history['test'][-1]['accuracy']:.4f}")

    # 2. new net: new last layer (new name -> fresh init), conv layers frozen
    print(f"2. loading {os.path.basename(params_path)} into LeNet with a new 5-way 'ip2_new'")
    ft_net = lenet(seed=2, num_output=5, last="ip2_new", frozen=("conv1", "conv2"))
    fresh = ft_net.params["ip2_new.W"].get_value()
    report = finetune(ft_net, params_path, log=lambda line: print("   " + line))
    assert "ip2_new.W" in report.skipped and np.array_equal(ft_net.params["ip2_new.W"].get_value(), fresh)
    frozen_before = {k: ft_net.params[k].get_value() for k in ("conv1.W", "conv1.b", "conv2.W", "conv2.b")}

    # 3. fine-tune vs scratch on the small new-task training set
    results = {}
    for name, model in (("fine-tuned", ft_net),
                        ("from scratch", lenet(seed=2, num_output=5, last="ip2_new"))):
        solver = lenet_solver(model)
        print(f"3. {name}: training {len(new_task[0][0])} images of digits 5-9 for {args.epochs:g} "
              f"epochs; trained params: {', '.join(solver.trained)}")
        tr = Trainer(model, solver, new_task[0], new_task[1], batch_size=64, epochs=args.epochs,
                     display=0, test_interval=0, test_batch_size=500, log=log(name))
        tr.train()
        results[name] = tr.history["test"][-1]["accuracy"]

    moved = [k for k, v in frozen_before.items() if not np.array_equal(v, ft_net.params[k].get_value())]
    print(f"frozen layers unchanged by fine-tuning: {not moved}" + (f" (moved: {moved})" if moved else ""))
    print(f"digits 5-9 test accuracy ({len(new_task[1][0])} images): "
          + ", ".join(f"{k} {v * 100:.2f}%" for k, v in results.items()))
    return results


if __name__ == "__main__":
    main()
