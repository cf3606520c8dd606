"""Row-by-row MNIST: an LSTM (graphc.nn.LSTM, on G.scan: one C loop per call) reads each bundled
digit as 28 steps of 28 pixels and a linear layer classifies its last state. Trained on the 4,000
training digits, scored on the 1,000 held-out ones, next to PyTorch's nn.LSTM trained with the
same recipe: the same initial weights (copied over), the same minibatches in the same order,
SGD with momentum (PyTorch's update rule) on the mean cross-entropy.

Run: python examples/lstm_sequence_mnist.py [--epochs 4] [--hidden 64] [--batch 32] [--lr 0.1]
     [--no-torch] [--limit N]  (N: train on the first N digits only, a quick check)
"""
import argparse
import time

import numpy as np

import graphc as G
from graphc import nn
from graphc.data import load_mnist_subset

ROWS = COLS = 28


def as_sequences(X):
    """[n, 784] -> time-major [28, n, 28]: step t is row t of every digit."""
    return np.ascontiguousarray(X.reshape(-1, ROWS, COLS).transpose(1, 0, 2))


def batches(n, batch, epochs, seed):
    rng = np.random.RandomState(seed)
    for _ in range(epochs):
        order = rng.permutation(n)
        for k in range(0, n - batch + 1, batch):
            yield order[k:k + batch]


def build_graphc(hidden, lr, momentum):
    x = G.tensor("x", (ROWS, G.dim("batch"), COLS))
    y = G.tensor("y", (G.dim("batch"),), "int64")
    lstm = nn.LSTM("lstm", hidden, return_sequences=False)
    h_last = lstm(x, seed=0)
    rng = np.random.RandomState(1)
    bound = 1.0 / np.sqrt(hidden)
    W = G.shared(rng.uniform(-bound, bound, (hidden, 10)).astype("float32"), name="W_out")
    b = G.shared(np.zeros(10, "float32"), name="b_out")
    logits = G.dot(h_last, W) + b
    loss = G.softmax_cross_entropy(logits, y).mean()
    params = dict(lstm.params, W_out=W, b_out=b)
    grads = G.grad(loss, list(params.values()))
    updates = {}
    for p, g in zip(params.values(), grads):
        v = G.shared(np.zeros(p.get_value().shape, "float32"), name=f"v_{p.name}")
        v_new = momentum * v + g
        updates[v] = v_new
        updates[p] = p - lr * v_new
    train = G.function([x, y], loss, updates=updates, name="lstm_train")
    predict = G.function([x], G.argmax(logits, axis=1), name="lstm_predict")
    return params, train, predict


def torch_run(params, Xtr, ytr, Xte, yte, args):
    import torch
    torch.set_num_threads(1)
    hidden = args.hidden
    lstm, head = torch.nn.LSTM(COLS, hidden), torch.nn.Linear(hidden, 10)
    with torch.no_grad():  # graphc's initial weights: W = weight_ih.T, b = bias_ih + bias_hh
        lstm.weight_ih_l0.copy_(torch.tensor(params["lstm.W"].get_value().T))
        lstm.weight_hh_l0.copy_(torch.tensor(params["lstm.U"].get_value().T))
        lstm.bias_ih_l0.copy_(torch.tensor(params["lstm.b"].get_value()))
        lstm.bias_hh_l0.zero_()
        head.weight.copy_(torch.tensor(params["W_out"].get_value().T))
        head.bias.copy_(torch.tensor(params["b_out"].get_value()))
    # graphc's LSTM has one bias, PyTorch's two: bias_hh stays at zero (trained too, it would
    # double the bias's step)
    lstm.bias_hh_l0.requires_grad_(False)
    trained = [p for p in lstm.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.SGD(trained, lr=args.lr, momentum=args.momentum)
    Xt, yt = torch.tensor(Xtr), torch.tensor(ytr)
    t = time.perf_counter()
    for idx in batches(len(ytr), args.batch, args.epochs, args.seed):
        idx = torch.tensor(idx)
        out, _ = lstm(Xt[:, idx])
        loss = torch.nn.functional.cross_entropy(head(out[-1]), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - t
    with torch.no_grad():
        pred = head(lstm(torch.tensor(Xte))[0][-1]).argmax(1).numpy()
    return float((pred == yte).mean()), seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args()

    Xtr, ytr = load_mnist_subset("train")
    Xte, yte = load_mnist_subset("test")
    if args.limit:
        Xtr, ytr = Xtr[:args.limit], ytr[:args.limit]
    Xtr, Xte = as_sequences(Xtr.astype("float32")), as_sequences(Xte.astype("float32"))
    ytr, yte = ytr.astype("int64"), yte.astype("int64")
    print(f"MNIST rows: {Xtr.shape[1]} train / {Xte.shape[1]} test digits, 28 steps of 28 pixels")

    t = time.perf_counter()
    params, train, predict = build_graphc(args.hidden, args.lr, args.momentum)
    print(f"graphc: compiled in {time.perf_counter() - t:.2f} s")
    initial = {k: v.get_value() for k, v in params.items()}
    t = time.perf_counter()
    for step, idx in enumerate(batches(len(ytr), args.batch, args.epochs, args.seed)):
        loss = train(np.ascontiguousarray(Xtr[:, idx]), ytr[idx])
        if step % 100 == 0:
            print(f"  step {step}: loss = {float(loss):.4f}")
    seconds = time.perf_counter() - t
    acc = float((predict(Xte) == yte).mean())
    print(f"graphc LSTM: test accuracy {acc * 100:.1f} % ({seconds:.1f} s training)")

    if not args.no_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("PyTorch is not installed: no comparison (pip install torch)")
            return acc, None
        for k, v in initial.items():
            params[k].set_value(v)
        tacc, tsec = torch_run(params, Xtr, ytr, Xte, yte, args)
        print(f"torch nn.LSTM: test accuracy {tacc * 100:.1f} % ({tsec:.1f} s training)")
        print(f"difference: {abs(acc - tacc) * 100:.1f} points")
        return acc, tacc
    return acc, None


if __name__ == "__main__":
    main()
