#!/usr/bin/env python
"""Acceptance comparison: Caffe's LeNet on full Fashion-MNIST, graphc vs. PyTorch.

Same network, recipe, initial weights and data order in both:

* Net: Caffe's LeNet (conv 20@5x5, maxpool 2, conv 50@5x5, maxpool 2, ip 500, ReLU, ip 10),
  built by ``lenet()`` of examples/lenet_mnist.py (xavier weights, constant-0 biases,
  lr_mult 1 / 2 for weights / biases, as in Caffe's lenet_train_test.prototxt).
* Solver: ``lenet_solver()`` of the same file (Caffe's lenet_solver.prototxt): SGD,
  base_lr 0.01, momentum 0.9, weight_decay 5e-4, lr_policy inv (gamma 1e-4, power 0.75),
  batch 64. The torch side applies Caffe's update rule by hand (v = m*v + lr*lr_mult*(g +
  wd*decay_mult*p); p -= v), with the lr and decay multipliers read from the graphc solver:
  torch.optim.SGD scales the momentum buffer by the *current* lr instead, which differs
  from Caffe once the inv policy changes the rate.
* Initial weights: graphc's (seeded fillers), copied into the torch model (graphc's dense
  weights are (in, out), torch's (out, in)).
* Data: full Fashion-MNIST (60,000 train / 10,000 test), pixels scaled to [0, 1]. The
  graphc Trainer draws one numpy permutation per epoch (RandomState(seed)); a batch that
  runs past an epoch's end continues into the next permutation (Caffe's data layers never
  yield a short batch). The index batches graphc trained on are recorded and fed to torch in
  the same order. ``--torch-order own`` instead gives torch its own order (torch.randperm per
  epoch, same batching), same initial weights.
* Each framework trains in a fresh child process (as bench/run.py does): both bring OpenMP
  pools, and graphc sets GOMP/OpenBLAS variables on import. Seconds per epoch = time in the
  training loop (batch gathering + steps) / epochs; compiling and testing are excluded and
  reported separately.

Run:    python bench/lenet_fashion.py [--epochs 2] [--limit N] [--torch-order shared|own]
        --limit N: first N train and N test images (quick smoke run).

Prints a markdown table and writes bench/results/lenet_fashion.json (runs with --limit or
--torch-order own write lenet_fashion_<variant>.json unless --json is given). Needs Debian's
``dataset-fashion-mnist`` (or $GRAPHC_FASHION_MNIST); without it, says how to install it and
exits 0.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time

# Environment for the children, taken before graphc is imported (it sets GOMP_SPINCOUNT and
# OPENBLAS_THREAD_TIMEOUT on import, which must not reach the torch process).
BASE_ENV = dict(os.environ)

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from bench.harness import NOISY, CpuMonitor  # noqa: E402
EXAMPLES = os.path.join(ROOT, "examples")
RESULTS = os.path.join(ROOT, "bench", "results")
TOLERANCE_POINTS = 0.5
TEST_BATCH = 500


# ------------------------------------------------------------------------------ helpers
def load_data(limit):
    from graphc.data import load_fashion_mnist
    X, y = load_fashion_mnist("train", flatten=False)
    Xt, yt = load_fashion_mnist("test", flatten=False)
    if limit:
        X, y, Xt, yt = X[:limit], y[:limit], Xt[:limit], yt[:limit]
    return X, y, Xt, yt


def loss_summary(losses, window=100):
    losses = np.asarray(losses, np.float64)
    return {"first": [float(v) for v in losses[:3]],
            "last_mean": float(losses[-window:].mean()),
            "window_means": [float(losses[i:i + window].mean())
                             for i in range(0, len(losses), window)]}


# ------------------------------------------------------------------------------ graphc worker
def worker_graphc(args, tmp):
    sys.path.insert(0, EXAMPLES)
    from lenet_mnist import lenet, lenet_solver  # the example's builders, not a copy

    from graphc.train import Trainer

    X, y, Xt, yt = load_data(args.limit)
    net = lenet(seed=args.seed)
    solver = lenet_solver(net)
    init = {k: v.copy() for k, v in net.state_dict(buffers=False).items()}
    np.savez(os.path.join(tmp, "init.npz"), **init)
    meta = {"lr_mult": {n: solver.lr_mult(n) for n in init},
            "decay_mult": {n: solver.decay_mult(n) for n in init},
            "weight_decay": solver.weight_decay, "momentum": solver.hyper["momentum"],
            "lr_policy": repr(solver.lr_policy)}

    t0 = time.perf_counter()
    trainer = Trainer(net, solver, train_data=(X, y), test_data=(Xt, yt),
                      batch_size=args.batch, test_batch_size=TEST_BATCH, epochs=args.epochs,
                      display=args.display, test_interval=0, test_initialization=False,
                      test_at_end=True, seed=args.seed, progress=False)
    compile_s = time.perf_counter() - t0
    print(f"[graphc] compiled train step + test net in {compile_s:.1f} s; "
          f"{trainer.max_iter} iterations", flush=True)

    # Record the index batches the Trainer draws, so torch can replay exactly this order.
    order, draw = [], trainer.stream.next

    def recording_next():
        idx = draw()
        order.append(idx.copy())
        return idx

    trainer.stream.next = recording_next
    # Rates the solver will use, for the torch side to check its own formula against.
    rates = np.array([solver.lr_policy(i) for i in range(trainer.max_iter)], np.float64)
    monitor = CpuMonitor()
    trainer.train()
    other_cpu = monitor.other()
    tm = trainer.timing
    np.save(os.path.join(tmp, "order.npy"), np.stack(order))
    np.save(os.path.join(tmp, "rates.npy"), rates)

    test = trainer.history["test"][-1]
    logits_fn = net.function("ip2", phase="test")
    logits = np.concatenate([logits_fn(Xt[i:i + TEST_BATCH])
                             for i in range(0, len(Xt), TEST_BATCH)])
    np.save(os.path.join(tmp, "graphc_logits.npy"), logits)
    acc_logits = float((logits.argmax(1) == yt).mean())
    epochs_done = tm["iters"] * args.batch / len(X)
    if abs(acc_logits - float(test["accuracy"])) > 1e-4:
        raise SystemExit(f"graphc's Accuracy layer says {test['accuracy']}, its logits give "
                         f"{acc_logits}")
    # Accuracy = correct / n from the logits (exact), the Accuracy layer's float32 mean agrees.
    res = {"framework": "graphc", "test_accuracy": acc_logits,
           "test_accuracy_layer": float(test["accuracy"]), "test_loss": float(test["loss"]),
           "iters": tm["iters"], "epochs_done": epochs_done, "train_s": tm["train_s"],
           "s_per_epoch": tm["train_s"] / epochs_done, "test_s": tm["test_s"],
           "setup_s": compile_s, "other_cpu": other_cpu,
           "loss": loss_summary(trainer.history["loss"]),
           "meta": meta}
    with open(os.path.join(tmp, "graphc.json"), "w") as f:
        json.dump(res, f)


# ------------------------------------------------------------------------------ torch worker
def worker_torch(args, tmp):
    import torch  # before graphc (via load_data), so torch's OpenMP starts with its defaults
    import torch.nn as tnn
    import torch.nn.functional as F

    X, y, Xt, yt = load_data(args.limit)
    with open(os.path.join(tmp, "graphc.json")) as f:
        meta = json.load(f)["meta"]
    init = dict(np.load(os.path.join(tmp, "init.npz")))
    shared_order = np.load(os.path.join(tmp, "order.npy"))
    graphc_rates = np.load(os.path.join(tmp, "rates.npy"))
    max_iter = len(shared_order)

    class LeNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(1, 20, 5)
            self.conv2 = tnn.Conv2d(20, 50, 5)
            self.ip1 = tnn.Linear(800, 500)
            self.ip2 = tnn.Linear(500, 10)

        def forward(self, x):
            x = F.max_pool2d(self.conv1(x), 2, 2)
            x = F.max_pool2d(self.conv2(x), 2, 2)
            x = F.relu(self.ip1(x.flatten(1)))
            return self.ip2(x)

    t0 = time.perf_counter()
    model = LeNet()
    # graphc name -> (torch parameter, layout fix)
    pairs = {"conv1.W": (model.conv1.weight, None), "conv1.b": (model.conv1.bias, None),
             "conv2.W": (model.conv2.weight, None), "conv2.b": (model.conv2.bias, None),
             "ip1.W": (model.ip1.weight, "T"), "ip1.b": (model.ip1.bias, None),
             "ip2.W": (model.ip2.weight, "T"), "ip2.b": (model.ip2.bias, None)}
    if set(pairs) != set(init):
        raise SystemExit(f"graphc parameters {sorted(init)} do not match the torch model's")
    with torch.no_grad():
        for name, (p, fix) in pairs.items():
            v = init[name].T if fix == "T" else init[name]
            if tuple(v.shape) != tuple(p.shape):
                raise SystemExit(f"{name}: graphc shape {init[name].shape} vs torch {p.shape}")
            p.copy_(torch.from_numpy(np.ascontiguousarray(v)))

    # Caffe's SGD (sgd_solver.cpp: Regularize, ComputeUpdateValue, Update), by hand.
    wd, mom = float(meta["weight_decay"]), float(meta["momentum"])
    groups = [(p, torch.zeros_like(p), float(meta["lr_mult"][n]), float(meta["decay_mult"][n]))
              for n, (p, _) in pairs.items()]

    def inv_lr(it):  # lr_policy "inv", written out independently of graphc's Inv
        return 0.01 * math.pow(1.0 + 1e-4 * it, -0.75)

    ours = np.array([inv_lr(i) for i in range(max_iter)])
    if not np.allclose(ours, graphc_rates, rtol=1e-12, atol=0):
        raise SystemExit("torch's inv learning rates differ from graphc's lr_policy")

    def step(xb, yb, it):
        for p, _, _, _ in groups:
            p.grad = None
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        lr = inv_lr(it)
        with torch.no_grad():
            for p, v, lr_mult, decay_mult in groups:
                g = p.grad
                if wd * decay_mult:
                    g = g.add(p, alpha=wd * decay_mult)
                v.mul_(mom).add_(g, alpha=lr * lr_mult)
                p.sub_(v)
        return loss.item()

    if args.torch_order == "shared":
        order = shared_order
    else:  # torch's own order: one torch.randperm per epoch, batches straddle epochs
        gen = torch.Generator().manual_seed(args.seed)
        n, flat = len(X), []
        while len(flat) < max_iter * args.batch:
            flat.extend(torch.randperm(n, generator=gen).tolist())
        order = np.asarray(flat[:max_iter * args.batch], np.int64).reshape(max_iter, args.batch)
    setup_s = time.perf_counter() - t0

    Xtr, ytr = torch.from_numpy(X), torch.from_numpy(y)
    losses, train_s = [], 0.0
    monitor = CpuMonitor()
    model.train()
    for it in range(max_iter):
        t = time.perf_counter()
        idx = torch.from_numpy(order[it])
        losses.append(step(Xtr[idx], ytr[idx], it))
        train_s += time.perf_counter() - t
        if args.display and it % args.display == 0:
            print(f"[torch] Iteration {it}, loss = {losses[-1]:.6g}, lr = {inv_lr(it):.6g}",
                  flush=True)

    other_cpu = monitor.other()
    t = time.perf_counter()
    model.eval()
    with torch.no_grad():
        Xte = torch.from_numpy(Xt)
        logits = torch.cat([model(Xte[i:i + TEST_BATCH])
                            for i in range(0, len(Xt), TEST_BATCH)]).numpy()
        test_loss = float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(yt)))
    test_s = time.perf_counter() - t
    np.save(os.path.join(tmp, "torch_logits.npy"), logits)
    epochs_done = max_iter * args.batch / len(X)
    res = {"framework": "torch", "test_accuracy": float((logits.argmax(1) == yt).mean()),
           "test_loss": test_loss, "iters": max_iter, "epochs_done": epochs_done,
           "train_s": train_s, "s_per_epoch": train_s / epochs_done, "test_s": test_s,
           "setup_s": setup_s, "other_cpu": other_cpu, "loss": loss_summary(losses),
           "order": args.torch_order,
           "torch": torch.__version__, "threads": torch.get_num_threads()}
    with open(os.path.join(tmp, "torch.json"), "w") as f:
        json.dump(res, f)


# ------------------------------------------------------------------------------ driver
def run_child(kind, args, tmp):
    cmd = [sys.executable, os.path.abspath(__file__), "--_worker", kind, "--_dir", tmp,
           "--epochs", repr(args.epochs), "--batch", str(args.batch), "--seed", str(args.seed),
           "--display", str(args.display), "--torch-order", args.torch_order]
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    print(f"--- {kind}: fresh process", flush=True)
    rc = subprocess.call(cmd, env=BASE_ENV, cwd=ROOT)
    if rc != 0:
        raise SystemExit(f"{kind} worker failed (exit status {rc})")
    with open(os.path.join(tmp, f"{kind}.json")) as f:
        return json.load(f)


def fmt_share(x):
    if x is None:
        return "?"
    return f"{x * 100:.0f}%" + (" (busy machine)" if x > NOISY else "")


def git_commit():
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                       text=True, stderr=subprocess.DEVNULL).strip()
    except Exception:
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=float, default=2)
    ap.add_argument("--limit", type=int, default=0,
                    help="use only the first N train and N test images (smoke run)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1,
                    help="graphc's parameter fillers and the data order")
    ap.add_argument("--torch-order", choices=("shared", "own"), default="shared",
                    help="torch replays graphc's batches (shared) or draws its own order")
    ap.add_argument("--display", type=int, default=200, help="log the loss every N iterations")
    ap.add_argument("--json", default=None, help="result file (default: bench/results/"
                    "lenet_fashion[_variant].json)")
    ap.add_argument("--_worker", choices=("graphc", "torch"), help=argparse.SUPPRESS)
    ap.add_argument("--_dir", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args._worker == "graphc":
        return worker_graphc(args, args._dir)
    if args._worker == "torch":
        return worker_torch(args, args._dir)

    from graphc.data import FASHION_MNIST_ENV, find_fashion_mnist
    if find_fashion_mnist() is None:
        print("Fashion-MNIST not found; nothing to compare. Install it with\n"
              "    apt-get install dataset-fashion-mnist   (files in "
              "/usr/share/datasets/fashion-mnist)\n"
              f"or point ${FASHION_MNIST_ENV} at a directory with the train/t10k IDX files.")
        return 0
    try:
        import torch  # noqa: F401  (only checked here; the torch child imports it)
    except Exception as e:
        print(f"torch is not importable ({e}); install the CPU wheel: pip install torch==2.13.0")
        return 0

    command = "python bench/lenet_fashion.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="lenet_fashion.") as tmp:
        g = run_child("graphc", args, tmp)
        t = run_child("torch", args, tmp)
        lg, lt = np.load(os.path.join(tmp, "graphc_logits.npy")), \
            np.load(os.path.join(tmp, "torch_logits.npy"))
    agree = float((lg.argmax(1) == lt.argmax(1)).mean())
    diff = (g["test_accuracy"] - t["test_accuracy"]) * 100.0
    ok = abs(diff) <= TOLERANCE_POINTS
    n_train = args.limit or 60000
    n_test = min(args.limit, 10000) if args.limit else 10000

    rows = [
        ("test accuracy (%)", f"{g['test_accuracy'] * 100:.2f}", f"{t['test_accuracy'] * 100:.2f}"),
        ("test loss", f"{g['test_loss']:.4f}", f"{t['test_loss']:.4f}"),
        ("seconds per epoch (training)", f"{g['s_per_epoch']:.1f}", f"{t['s_per_epoch']:.1f}"),
        ("ms per iteration", f"{g['train_s'] / g['iters'] * 1e3:.1f}",
         f"{t['train_s'] / t['iters'] * 1e3:.1f}"),
        ("other processes' CPU share while training", fmt_share(g["other_cpu"]),
         fmt_share(t["other_cpu"])),
        ("setup / compile (s)", f"{g['setup_s']:.1f}", f"{t['setup_s']:.1f}"),
        ("loss at iteration 0", f"{g['loss']['first'][0]:.6f}", f"{t['loss']['first'][0]:.6f}"),
        ("mean loss, last 100 iterations", f"{g['loss']['last_mean']:.4f}",
         f"{t['loss']['last_mean']:.4f}"),
    ]
    print()
    print(f"LeNet on Fashion-MNIST ({n_train} train / {n_test} test), {args.epochs:g} epochs = "
          f"{g['iters']} iterations of {args.batch}; torch data order: {args.torch_order}")
    print()
    print("| | graphc | PyTorch |")
    print("|---|---:|---:|")
    for name, a, b in rows:
        print(f"| {name} | {a} | {b} |")
    print()
    print(f"difference (graphc - torch): {diff:+.2f} points; within {TOLERANCE_POINTS} points: "
          f"{'yes' if ok else 'NO'}; the two models agree on {agree * 100:.2f}% of test "
          "predictions")

    result = {
        "benchmark": "lenet_fashion", "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "git_commit": git_commit(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "config": {"epochs": args.epochs, "batch": args.batch, "seed": args.seed,
                   "limit": args.limit, "n_train": n_train, "n_test": n_test,
                   "torch_order": args.torch_order, "base_lr": 0.01, "momentum": 0.9,
                   "weight_decay": 5e-4, "lr_policy": "inv gamma 1e-4 power 0.75",
                   "inputs": "uint8 / 255 -> [0, 1]"},
        "graphc": g, "torch": t,
        "difference_points": diff, "tolerance_points": TOLERANCE_POINTS, "within_tolerance": ok,
        "prediction_agreement": agree,
    }
    variant = "_".join(v for v in (f"limit{args.limit}" if args.limit else "",
                                   "torch-own-order" if args.torch_order == "own" else "") if v)
    path = args.json or os.path.join(RESULTS, "lenet_fashion" + (f"_{variant}" if variant else "")
                                     + ".json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {os.path.relpath(path, ROOT) if path.startswith(ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
