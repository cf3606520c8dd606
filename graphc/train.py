"""Trainer: Caffe's Solver::Solve loop for a graphc.nn.Net and a graphc.optim solver.

    trainer = Trainer(net, solver, train_data={"data": X, "label": y},
                      test_data={"data": Xt, "label": yt}, batch_size=64,
                      max_iter=10000, display=100, test_interval=500,
                      snapshot=5000, snapshot_prefix="out/lenet")
    trainer.train()

* Log lines as Caffe writes them (to ``log``, print by default):
  ``Iteration 100, loss = 0.2345``, ``    Train net output #0: loss = ...``,
  ``Iteration 100, lr = 0.00992565``, ``Iteration 500, Testing net (#0)``,
  ``    Test net output #0: accuracy = 0.9875``,
  ``    Test net output #1: loss = 0.0392 (* 1 = 0.0392 loss)``.
* ``test_at_end`` (default True) also tests after the last iteration when it is not a multiple
  of test_interval; ``trainer.timing`` accumulates seconds spent in steps and in tests.
* A one-line progress bar on stderr when stderr is a terminal (``progress=True/False`` forces).
* Mini-batches: each epoch is a permutation drawn from the trainer's own RandomState(seed); a
  batch that runs past the end continues into the next epoch's permutation (Caffe's data layers
  never yield a short batch), so every iteration sees ``batch_size`` examples.
* Snapshots (``snapshot=N`` iterations, and ``trainer.snapshot()``): two .npz files written
  atomically (tmp file + os.replace): ``<prefix>_iter_<N>.params.npz`` (parameters and buffers by
  name, Caffe's .caffemodel) and ``<prefix>_iter_<N>.solverstate.npz`` (the same plus the solver
  state, the data order RNG state and position, the loss window and the history).
  ``trainer.restore(path)`` continues bit for bit as if never interrupted.
* Fine-tuning: ``finetune(net, path)`` loads a snapshot's parameters by name into a changed net;
  layers that are new (or renamed, or reshaped) keep their fresh initialization; it logs and
  returns the report.
"""
import json
import math
import os
import sys
import tempfile
import time
from collections import OrderedDict, deque

import numpy as np

__all__ = ["Trainer", "BatchStream", "ProgressBar", "atomic_savez", "load_npz", "finetune"]

_FORMAT_VERSION = 1


def atomic_savez(path, arrays):
    """np.savez to ``path`` via a temporary file in the same directory and os.replace, so a
    reader (or a crash) never sees a half-written snapshot."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    for k, v in arrays.items():
        if v.dtype == object:
            raise TypeError(f"atomic_savez: {k!r} is not a numeric array (dtype object)")
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def load_npz(path):
    with np.load(path, allow_pickle=False) as z:
        return OrderedDict((k, z[k]) for k in z.files)


class BatchStream:
    """Endless stream of index batches over n examples: shuffled epoch after epoch (a batch
    straddling an epoch boundary takes the rest of one permutation and the start of the next).
    Its whole state (RNG, permutation, cursor) round-trips through state_dict()."""

    def __init__(self, n, batch_size, seed=0, shuffle=True):
        if n < 1:
            raise ValueError("BatchStream: no examples")
        self.n, self.batch_size, self.shuffle = int(n), int(batch_size), bool(shuffle)
        self.rng = np.random.RandomState(seed)
        self.epoch = 0
        self.order = self._new_order()
        self.cursor = 0

    def _new_order(self):
        return self.rng.permutation(self.n) if self.shuffle else np.arange(self.n)

    def next(self):
        parts, need = [], self.batch_size
        while need:
            if self.cursor == self.n:
                self.order = self._new_order()
                self.cursor = 0
                self.epoch += 1
            take = min(need, self.n - self.cursor)
            parts.append(self.order[self.cursor:self.cursor + take])
            self.cursor += take
            need -= take
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    @property
    def epochs_done(self):
        return self.epoch + self.cursor / self.n

    def state_dict(self):
        name, keys, pos, has_gauss, gauss = self.rng.get_state()
        return {"rng_keys": np.asarray(keys, np.uint32), "rng_pos": np.int64(pos),
                "rng_has_gauss": np.int64(has_gauss), "rng_gauss": np.float64(gauss),
                "order": np.asarray(self.order, np.int64), "cursor": np.int64(self.cursor),
                "epoch": np.int64(self.epoch), "n": np.int64(self.n),
                "batch_size": np.int64(self.batch_size)}

    def load_state_dict(self, d):
        if int(d["n"]) != self.n:
            raise ValueError(f"data stream state is for {int(d['n'])} examples, this data has {self.n}")
        self.rng.set_state(("MT19937", np.asarray(d["rng_keys"], np.uint32), int(d["rng_pos"]),
                            int(d["rng_has_gauss"]), float(d["rng_gauss"])))
        self.order = np.asarray(d["order"], np.int64)
        self.cursor, self.epoch = int(d["cursor"]), int(d["epoch"])


class ProgressBar:
    """A one-line progress bar on a stream (stderr); does nothing when disabled."""

    def __init__(self, total, enabled=None, stream=None, width=30):
        self.stream = stream or sys.stderr
        if enabled is None:
            enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled, self.total, self.width = enabled, max(int(total), 1), width
        self.start = time.perf_counter()
        self._shown = False

    def update(self, done, start_done=0, text=""):
        if not self.enabled:
            return
        frac = min(max(done / self.total, 0.0), 1.0)
        fill = int(round(frac * self.width))
        elapsed = time.perf_counter() - self.start
        rate = (done - start_done) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        eta_s = f"{eta:5.0f}s" if math.isfinite(eta) else "    ?s"
        self.stream.write(f"\r[{'#' * fill}{'.' * (self.width - fill)}] {done}/{self.total} "
                          f"{rate:6.1f} it/s eta {eta_s} {text}\x1b[K")
        self.stream.flush()
        self._shown = True

    def clear(self):
        if self.enabled and self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False

    def close(self):
        self.clear()


def _fmt(v):
    """Caffe prints with the default stream precision (6 significant digits)."""
    return f"{float(v):.6g}"


class Trainer:
    """See the module docstring. ``train_data`` / ``test_data``: a dict input name -> array, or
    a tuple of arrays in the order of the net inputs the loss needs (e.g. (X, y))."""

    def __init__(self, net, solver, train_data, test_data=None, batch_size=64,
                 test_batch_size=None, max_iter=None, epochs=None, display=100,
                 test_interval=None, test_initialization=True, snapshot=0, snapshot_prefix=None,
                 snapshot_after_train=False, average_loss=1, seed=0, shuffle=True,
                 progress=None, log=print, compile_kwargs=None, test_at_end=True, target=None):
        self.net, self.solver = net, solver
        # target: where the step and the test net run ("cpu", "cuda"; default GRAPHC_TARGET)
        if target is not None:
            compile_kwargs = dict(compile_kwargs or {}, target=target)
        self.batch_size = int(batch_size)
        self.test_batch_size = int(test_batch_size or max(batch_size, 256))
        self.display, self.test_interval = int(display or 0), int(test_interval or 0)
        self.test_initialization = bool(test_initialization)
        self.test_at_end = bool(test_at_end)
        self.timing = {"train_s": 0.0, "test_s": 0.0, "iters": 0}
        self.snapshot_interval, self.snapshot_prefix = int(snapshot or 0), snapshot_prefix
        self.snapshot_after_train = bool(snapshot_after_train)
        if (self.snapshot_interval or self.snapshot_after_train) and not snapshot_prefix:
            raise ValueError("Trainer: snapshots need a snapshot_prefix")
        self.log = log or (lambda *a, **k: None)
        self.progress = progress
        self.loss_terms = net.loss_terms("train")
        train_inputs = net.inputs_for([t for t, _, _ in self.loss_terms], "train")
        self.train_arrays = self._feed_arrays(train_data, train_inputs, "train_data")
        self.step = solver.compile_net(net, outputs=[t for t, _, _ in self.loss_terms]
                                       if len(self.loss_terms) > 1 else (),
                                       **(compile_kwargs or {}))
        n = len(next(iter(self.train_arrays.values())))
        self.n_train = n
        self.stream = BatchStream(n, self.batch_size, seed, shuffle)
        per_iter = self.batch_size * solver.iter_size
        if max_iter is None and epochs is not None:
            max_iter = int(math.ceil(epochs * n / per_iter))
        self.max_iter = max_iter
        self.iters_per_epoch = n / per_iter
        self.test_names = net.output_names("test") if test_data is not None else []
        self.test_fn = None
        if test_data is not None and self.test_names:
            self.test_fn = net.function(self.test_names, "test", name=f"{net.name}_test",
                                        **(compile_kwargs or {}))
            self.test_arrays = self._feed_arrays(test_data, self.test_fn.input_names, "test_data")
        self.losses = deque(maxlen=max(int(average_loss), 1))
        self.history = {"iter": [], "loss": [], "lr": [], "test_iter": [], "test": []}
        self.last_snapshot = None

    # ---- data ------------------------------------------------------------------------------
    def _feed_arrays(self, data, names, what):
        if isinstance(data, dict):
            missing = [n for n in names if n not in data]
            if missing:
                raise ValueError(f"Trainer: {what} lacks net inputs {missing} (has {list(data)})")
            arrays = OrderedDict((n, np.asarray(data[n])) for n in names)
        else:
            data = list(data)
            # A tuple lists arrays in the order of the net inputs (all of them, or just those
            # this function needs).
            order = list(self.net.inputs) if len(data) == len(self.net.inputs) else names
            if len(data) != len(order):
                raise ValueError(f"Trainer: {what} has {len(data)} arrays; expected one per net "
                                 f"input {list(self.net.inputs)} or per needed input {names}")
            named = dict(zip(order, data))
            arrays = OrderedDict((n, np.asarray(named[n])) for n in names)
        lengths = {n: len(a) for n, a in arrays.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"Trainer: {what} arrays differ in length: {lengths}")
        for n, a in arrays.items():
            arrays[n] = np.ascontiguousarray(a, dtype=self.net.inputs[n].dtype)
        return arrays

    def _batch(self):
        idx = self.stream.next()
        return {n: a[idx] for n, a in self.train_arrays.items()}

    # ---- testing ---------------------------------------------------------------------------
    def test(self, log=True):
        """Run the TEST phase over the whole test set; returns {output name: mean value} (the
        mean over examples: batch means weighted by batch size)."""
        if self.test_fn is None:
            return OrderedDict()
        t0 = time.perf_counter()
        n = len(next(iter(self.test_arrays.values())))
        totals = np.zeros(len(self.test_names))
        for start in range(0, n, self.test_batch_size):
            feed = {k: a[start:start + self.test_batch_size] for k, a in self.test_arrays.items()}
            m = len(next(iter(feed.values())))
            outs = self.test_fn(**feed)
            totals += m * np.array([float(o) for o in outs])
        result = OrderedDict(zip(self.test_names, totals / n))
        self.timing["test_s"] += time.perf_counter() - t0
        self.history["test_iter"].append(self.solver.iter)
        self.history["test"].append(dict(result))
        if log:
            weights = {t: w for t, w, _ in self.net.loss_terms("test")}
            self.log(f"Iteration {self.solver.iter}, Testing net (#0)")
            for k, (name, v) in enumerate(result.items()):
                line = f"    Test net output #{k}: {name} = {_fmt(v)}"
                if name in weights:
                    line += f" (* {_fmt(weights[name])} = {_fmt(weights[name] * v)} loss)"
                self.log(line)
        return result

    # ---- training --------------------------------------------------------------------------
    def train(self, max_iter=None):
        """Iterate until the solver's iteration counter reaches max_iter (Caffe's Solve)."""
        stop = max_iter if max_iter is not None else self.max_iter
        if stop is None:
            raise ValueError("Trainer.train: give max_iter or epochs")
        solver = self.solver
        start_iter = solver.iter
        bar = ProgressBar(stop, self.progress)
        self._bar = bar
        t0 = time.perf_counter()
        try:
            while solver.iter < stop:
                it = solver.iter
                if self.test_interval and it % self.test_interval == 0 and \
                        (it > 0 or self.test_initialization):
                    bar.clear()
                    self.test()
                rate = solver.lr
                t_step = time.perf_counter()
                feeds = [self._batch() for _ in range(solver.iter_size)]
                result = self.step.iteration(feeds)
                self.timing["train_s"] += time.perf_counter() - t_step
                self.timing["iters"] += 1
                loss, outs = result if isinstance(result, tuple) else (result, None)
                if not math.isfinite(loss):
                    bar.clear()
                    self.log(f"Iteration {it}, loss = {_fmt(loss)} (diverged)")
                self.losses.append(loss)
                smoothed = float(np.mean(self.losses))
                self.history["iter"].append(it)
                self.history["loss"].append(loss)
                self.history["lr"].append(rate)
                if self.display and it % self.display == 0:
                    bar.clear()
                    self.log(f"Iteration {it}, loss = {_fmt(smoothed)}")
                    if outs is not None:
                        for k, ((name, w, _), v) in enumerate(zip(self.loss_terms, outs)):
                            self.log(f"    Train net output #{k}: {name} = {_fmt(v)} "
                                     f"(* {_fmt(w)} = {_fmt(w * float(v))} loss)")
                    self.log(f"Iteration {it}, lr = {_fmt(rate)}")
                if self.snapshot_interval and solver.iter % self.snapshot_interval == 0:
                    bar.clear()
                    self.snapshot()
                bar.update(solver.iter, start_iter, f"loss {smoothed:.4f}")
        finally:
            bar.close()
        self.train_time = time.perf_counter() - t0
        if self.snapshot_after_train and solver.iter != getattr(self, "_snapshot_iter", None):
            self.snapshot()
        if self.test_interval and solver.iter % self.test_interval == 0 or (
                self.test_at_end and self.test_fn is not None and
                (not self.history["test_iter"] or self.history["test_iter"][-1] != solver.iter)):
            self.test()
        self.log("Optimization Done.")
        return self.history

    @property
    def epoch(self):
        return self.stream.epochs_done

    # ---- snapshots -------------------------------------------------------------------------
    def _paths(self, prefix=None, it=None):
        prefix = prefix or self.snapshot_prefix
        it = self.solver.iter if it is None else it
        return f"{prefix}_iter_{it}.params.npz", f"{prefix}_iter_{it}.solverstate.npz"

    def snapshot(self, prefix=None):
        """Write the params and solverstate files; returns their paths."""
        params_path, state_path = self._paths(prefix)
        net_state = {f"param/{k}": v for k, v in self.net.state_dict().items()}
        meta = {"format": _FORMAT_VERSION, "iter": self.solver.iter, "net": self.net.name,
                "solver": type(self.solver).__name__, "losses": list(self.losses),
                "history": self.history}
        arrays = dict(net_state)
        arrays.update({f"solver/{k}": v for k, v in self.solver.state_dict().items()})
        arrays.update({f"data/{k}": v for k, v in self.stream.state_dict().items()})
        arrays["meta/json"] = np.array(json.dumps(meta))
        atomic_savez(params_path, net_state)
        atomic_savez(state_path, arrays)
        self.log(f"Snapshotting to binary proto file {params_path}")
        self.log(f"Snapshotting solver state to binary proto file {state_path}")
        self.last_snapshot = state_path
        self._snapshot_iter = self.solver.iter
        return params_path, state_path

    def restore(self, path):
        """Resume from a .solverstate.npz: parameters, buffers, solver state, data order."""
        arrays = load_npz(path)
        if "meta/json" not in arrays:
            raise ValueError(f"{path} is not a solverstate snapshot (no meta/json); to start from "
                             "parameters only, use finetune() or net.load()")
        meta = json.loads(str(arrays["meta/json"]))
        report = self.net.load_state_dict(
            {k[6:]: v for k, v in arrays.items() if k.startswith("param/")}, strict=True)
        self.solver.load_state_dict({k[7:]: v for k, v in arrays.items() if k.startswith("solver/")})
        self.stream.load_state_dict({k[5:]: v for k, v in arrays.items() if k.startswith("data/")})
        self.losses.clear()
        self.losses.extend(meta.get("losses", []))
        if "history" in meta:
            self.history = meta["history"]
        self.log(f"Restoring previous solver status from {path} (iteration {self.solver.iter}, "
                 f"{len(report.loaded)} arrays)")
        return report


def finetune(net, path, log=print, strict=False):
    """Load parameters by name from a snapshot (.params.npz or .solverstate.npz) into ``net``;
    parameters missing from the file or with another shape keep their initialization. Logs
    what was copied and what was not; returns the LoadReport."""
    arrays = load_npz(path)
    if any(k.startswith("param/") for k in arrays):
        arrays = OrderedDict((k[6:], v) for k, v in arrays.items() if k.startswith("param/"))
    report = net.load_state_dict(arrays, strict=strict)
    if log:
        log(f"Copying weights from {path}")
        for line in report.summary().splitlines():
            log("    " + line)
    return report
