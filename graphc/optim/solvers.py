"""Solvers: Caffe's SGD (with momentum), Nesterov, AdaGrad, RMSProp, AdaDelta and Adam, as
objects that own the solver state (iteration counter, learning rate, history blobs) and build
one compiled step function.

    solver = optim.SGD(net, lr=optim.Inv(0.01, gamma=1e-4, power=0.75), momentum=0.9,
                       weight_decay=5e-4)
    step = solver.compile([x, y], loss)          # or solver.compile_net(net)
    for xb, yb in batches:
        loss = step(xb, yb)                      # one iteration: lr set, update applied

What one iteration does, in order (Caffe's ApplyUpdate, per parameter p with multipliers):

    g = mean of the iter_size mini-batch gradients (accumulated in shared buffers)
    g = clip(g) by the global L2 norm over all trained parameters, if clip_gradients is set
    g = g + weight_decay * decay_mult[p] * p       (L2; L1 adds the sign of p)
    p, state = rule(g, lr = policy(iter) * lr_mult[p])
    iter += 1

Caffe clips before dividing by iter_size; here the mean is clipped, so a clip threshold means
the same thing whatever iter_size is (the two agree when iter_size == 1).

The learning rate is a shared scalar set from ``lr_policy(iter)`` in Python before each
iteration (exact formula, no recompile when the policy changes). Parameters whose lr_mult is 0
are frozen: they get no gradient, no state and no update. ``updates(loss)`` returns the plain
Theano-style updates dict (iteration counter included) for callers who compile themselves; then
call ``solver.set_lr()`` before each call (``Step`` objects do it for you).
"""
from collections import OrderedDict

import numpy as np

import graphc as G

from . import updates as U
from .lr_policy import make_policy

__all__ = ["Solver", "SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam", "Step",
           "make_solver", "SOLVERS"]


class Solver:
    rule = "sgd"
    type = "SGD"
    defaults = {}
    aliases = {}

    def __init__(self, params, lr=0.01, weight_decay=0.0, regularization="L2", lr_mult=None,
                 decay_mult=None, clip_gradients=None, iter_size=1, dtype=None, **hyper):
        self.net = None
        self.extra_updates = OrderedDict()
        if hasattr(params, "params") and hasattr(params, "lr_mult") and hasattr(params, "updates"):
            self.net = params  # a graphc.nn.Net: its multipliers are read when compiling
            self.params = params.params
            self.extra_updates = params.updates
        elif isinstance(params, dict):
            self.params = OrderedDict(params)
        else:
            plist = list(params)
            names = [p.name or f"param{k}" for k, p in enumerate(plist)]
            if len(set(names)) != len(names):
                names = [f"{n}#{k}" for k, n in enumerate(names)]
            self.params = OrderedDict(zip(names, plist))
        for n, p in self.params.items():
            if not isinstance(p, G.SharedVariable):
                raise TypeError(f"solver: parameter {n!r} is not a shared variable: {p!r}")
        self.lr_policy = make_policy(lr)
        self.weight_decay = float(weight_decay)
        self.regularization = regularization.upper()
        if self.regularization not in ("L1", "L2"):
            raise ValueError(f"regularization must be 'L1' or 'L2', got {regularization!r}")
        self._lr_mult = dict(lr_mult or {})
        self._decay_mult = dict(decay_mult or {})
        for d, what in ((self._lr_mult, "lr_mult"), (self._decay_mult, "decay_mult")):
            unknown = [k for k in d if k not in self.params]
            if unknown:
                raise KeyError(f"solver: {what} names unknown parameters {unknown} "
                               f"(parameters: {list(self.params)})")
        if clip_gradients is not None and not clip_gradients > 0:
            raise ValueError(f"clip_gradients must be > 0 or None, got {clip_gradients!r}")
        self.clip_gradients = clip_gradients
        if int(iter_size) != iter_size or iter_size < 1:
            raise ValueError(f"iter_size must be a positive int, got {iter_size!r}")
        self.iter_size = int(iter_size)
        for alias, canonical in self.aliases.items():
            if alias in hyper:
                hyper[canonical] = hyper.pop(alias)
        unknown = set(hyper) - set(self.defaults)
        if unknown:
            raise TypeError(f"{self.type} solver: unknown hyperparameters {sorted(unknown)} "
                            f"(known: {sorted(self.defaults)})")
        self.hyper = {**self.defaults, **hyper}
        self.dtype = dtype or (next(iter(self.params.values())).dtype if self.params
                               else G.config.floatX)
        self.iter_var = G.shared(np.int64(0), name="solver.iter")
        self.lr_var = G.shared(np.asarray(0.0, self.dtype), name="solver.lr")
        self._slots = OrderedDict()   # state name -> shared
        self._pending = {}            # loaded state for slots not created yet
        self._names = {id(p): n for n, p in self.params.items()}
        self.last_grad_norm = None

    # ---- multipliers -----------------------------------------------------------------------
    def lr_mult(self, name):
        if name in self._lr_mult:
            return float(self._lr_mult[name])
        if self.net is not None:
            return float(self.net.lr_mult.get(name, 1.0))
        return 1.0

    def decay_mult(self, name):
        if name in self._decay_mult:
            return float(self._decay_mult[name])
        if self.net is not None:
            return float(self.net.decay_mult.get(name, 1.0))
        return 1.0

    def set_lr_mult(self, name, value):
        self._lr_mult[name] = float(value)

    @property
    def trained(self):
        """Names of the parameters that are updated (lr_mult != 0)."""
        return [n for n in self.params if self.lr_mult(n) != 0.0]

    @property
    def frozen(self):
        return [n for n in self.params if self.lr_mult(n) == 0.0]

    # ---- state -----------------------------------------------------------------------------
    def _slot(self, p, slot):
        name = f"{self._names[id(p)]}.{slot}"
        if name not in self._slots:
            sv = G.shared(np.zeros(p.static_shape, p.dtype), name=name)
            if name in self._pending:
                sv.set_value(self._pending.pop(name).astype(p.dtype))
            self._slots[name] = sv
        return self._slots[name]

    @property
    def iter(self):
        return int(self.iter_var.get_value())

    @iter.setter
    def iter(self, value):
        self.iter_var.set_value(np.int64(value))

    @property
    def lr(self):
        """The rate the next iteration will use."""
        return self.lr_policy(self.iter)

    def set_lr(self):
        """Load lr_policy(iter) into the shared rate (Step calls it before each iteration)."""
        rate = self.lr_policy(self.iter)
        self.lr_var.set_value(np.asarray(rate, self.dtype))
        return rate

    def state_vars(self):
        d = OrderedDict([("iter", self.iter_var)])
        d.update(self._slots)
        return d

    def state_dict(self):
        return OrderedDict((k, v.get_value()) for k, v in self.state_vars().items())

    def load_state_dict(self, state):
        state = dict(state)
        if "iter" in state:
            self.iter = int(np.asarray(state.pop("iter")))
        for k, v in state.items():
            v = np.asarray(v)
            if k in self._slots:
                sv = self._slots[k]
                if v.shape != tuple(sv.static_shape):
                    raise ValueError(f"solver state {k!r}: shape {v.shape} in the snapshot vs "
                                     f"{tuple(sv.static_shape)} here")
                sv.set_value(v.astype(sv.dtype))
            else:
                self._pending[k] = v

    # ---- graph building --------------------------------------------------------------------
    def _active(self):
        names = self.trained
        return names, [self.params[n] for n in names]

    def gradients(self, loss, names=None):
        names = names if names is not None else self._active()[0]
        return G.grad(loss, [self.params[n] for n in names], disconnected_inputs="ignore")

    def apply_gradients(self, grads, names):
        """Updates for averaged gradients `grads` of parameters `names` (clip, decay, rule)."""
        params = [self.params[n] for n in names]
        if self.clip_gradients is not None and params:
            grads, self.last_grad_norm = U.clip_by_global_norm(grads, self.clip_gradients)
        if self.weight_decay:
            grads = U.weight_decay(grads, params, self.weight_decay,
                                   [self.decay_mult(n) for n in names], self.regularization)
        lrs = []
        for n in names:
            m = self.lr_mult(n)
            lrs.append(self.lr_var if m == 1.0 else self.lr_var * m)
        upd = self._rule_updates(grads, params, lrs)
        upd[self.iter_var] = self.iter_var + 1
        return upd

    def _rule_updates(self, grads, params, lrs):
        return U.RULES[self.rule](grads, params, lrs, slot=self._slot, **self.hyper)

    def updates(self, loss):
        """Theano-style updates for one full step on `loss` (iter_size must be 1)."""
        if self.iter_size != 1:
            raise ValueError("updates(): iter_size > 1 needs two functions; use compile()")
        names, _ = self._active()
        upd = self.apply_gradients(self.gradients(loss, names), names)
        return upd

    def compile(self, inputs, loss, outputs=(), extra_updates=None, name="train_step", **fkw):
        """A Step: one call = one solver iteration (iter_size mini-batches)."""
        outputs = list(outputs or [])
        extra = OrderedDict(self.extra_updates if extra_updates is None else extra_updates)
        names, params = self._active()
        grads = self.gradients(loss, names) if names else []
        outs = [loss] + outputs
        if self.iter_size == 1:
            upd = OrderedDict(extra)
            upd.update(self.apply_gradients(grads, names))
            fn = G.function(inputs, outs, updates=upd, name=name, **fkw)
            return Step(self, [fn], len(outputs))
        acc = [G.shared(np.zeros(p.static_shape, p.dtype), name=f"{n}.grad_acc")
               for n, p in zip(names, params)]
        upd_acc = OrderedDict(extra)
        upd_acc.update((a, a + g) for a, g in zip(acc, grads))
        f_acc = G.function(inputs, outs, updates=upd_acc, name=name + "_accumulate", **fkw)
        inv = 1.0 / self.iter_size
        mean_grads = [(a + g) * inv for a, g in zip(acc, grads)]
        upd_last = OrderedDict(extra)
        upd_last.update(self.apply_gradients(mean_grads, names))
        upd_last.update((a, G.zeros_like(a)) for a in acc)
        f_last = G.function(inputs, outs, updates=upd_last, name=name + "_apply", **fkw)
        return Step(self, [f_acc, f_last], len(outputs))

    def compile_net(self, net=None, outputs=(), name=None, **fkw):
        """compile() for a graphc.nn.Net: inputs are the net inputs the loss needs; ``outputs``
        are extra TRAIN blob names (or variables) returned with the loss."""
        net = net or self.net
        loss = net.loss
        outs = [net.blob(o, "train") if isinstance(o, str) else o for o in outputs]
        terms = [t for t, _, _ in net.loss_terms("train")]
        names = net.inputs_for(terms + [o for o in outputs if isinstance(o, str)], "train")
        step = self.compile([net.inputs[n] for n in names], loss, outs,
                            name=name or f"{net.name}_train", **fkw)
        step.input_names = names
        return step

    def __repr__(self):
        hp = ", ".join(f"{k}={v}" for k, v in self.hyper.items())
        return (f"{type(self).__name__}(lr={self.lr_policy!r}, weight_decay={self.weight_decay}, "
                f"{hp}{', ' if hp else ''}iter_size={self.iter_size}, "
                f"clip_gradients={self.clip_gradients})")


class Step:
    """One solver iteration per call. ``step(*args)`` / ``step(**feed)`` for iter_size == 1;
    ``step.iteration([feed, feed, ...])`` with iter_size feeds (tuples or dicts) in general.
    Returns the mean loss (a float), or (loss, [outputs]) when outputs were requested."""

    def __init__(self, solver, fns, n_outputs):
        self.solver = solver
        self.fns = fns
        self.n_outputs = n_outputs
        self.input_names = [v.name for v in fns[0].inputs]

    def __call__(self, *args, **kwargs):
        if len(self.fns) != 1:
            raise ValueError(f"iter_size is {self.solver.iter_size}: call step.iteration() with "
                             f"{self.solver.iter_size} mini-batches")
        return self.iteration([(args, kwargs)])

    @staticmethod
    def _call(fn, feed):
        if isinstance(feed, dict):
            return fn(**feed)
        if isinstance(feed, tuple) and len(feed) == 2 and isinstance(feed[1], dict) and \
                isinstance(feed[0], tuple):
            return fn(*feed[0], **feed[1])
        return fn(*feed)

    def iteration(self, feeds):
        feeds = list(feeds)
        k = self.solver.iter_size
        if len(feeds) != k:
            raise ValueError(f"iteration(): expected iter_size = {k} mini-batches, got {len(feeds)}")
        self.solver.set_lr()
        results = []
        for j, feed in enumerate(feeds):
            fn = self.fns[-1] if j == k - 1 else self.fns[0]
            results.append(self._call(fn, feed))
        loss = float(np.mean([np.asarray(r[0], np.float64) for r in results]))
        if not self.n_outputs:
            return loss
        outs = [np.mean([np.asarray(r[1 + i], np.float64) for r in results], axis=0)
                if k > 1 else results[0][1 + i] for i in range(self.n_outputs)]
        return loss, outs


class SGD(Solver):
    """Caffe's SGD: v = momentum * v + lr * g; p -= v (plain SGD when momentum == 0)."""
    type = "SGD"
    defaults = {"momentum": 0.0}

    def _rule_updates(self, grads, params, lrs):
        if self.hyper["momentum"] == 0.0:
            return U.sgd(grads, params, lrs)
        return U.momentum(grads, params, lrs, momentum=self.hyper["momentum"], slot=self._slot)


class Nesterov(Solver):
    type = "Nesterov"
    rule = "nesterov"
    defaults = {"momentum": 0.9}


class AdaGrad(Solver):
    type = "AdaGrad"
    rule = "adagrad"
    defaults = {"delta": 1e-8}
    aliases = {"eps": "delta"}


class RMSProp(Solver):
    type = "RMSProp"
    rule = "rmsprop"
    defaults = {"rms_decay": 0.99, "delta": 1e-8}
    aliases = {"eps": "delta", "rho": "rms_decay"}


class AdaDelta(Solver):
    type = "AdaDelta"
    rule = "adadelta"
    defaults = {"momentum": 0.95, "delta": 1e-6}
    aliases = {"eps": "delta", "rho": "momentum"}

    def __init__(self, params, lr=1.0, **kw):
        super().__init__(params, lr=lr, **kw)


class Adam(Solver):
    """Caffe's Adam (momentum = beta1, momentum2 = beta2, delta = epsilon); the bias correction
    uses t = iter + 1."""
    type = "Adam"
    rule = "adam"
    defaults = {"beta1": 0.9, "beta2": 0.999, "delta": 1e-8}
    aliases = {"momentum": "beta1", "momentum2": "beta2", "eps": "delta"}

    def __init__(self, params, lr=0.001, **kw):
        super().__init__(params, lr=lr, **kw)

    def _rule_updates(self, grads, params, lrs):
        return U.adam(grads, params, lrs, t=self.iter_var + 1, slot=self._slot, **self.hyper)


SOLVERS = {c.type.lower(): c for c in (SGD, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam)}


def make_solver(kind, params, **kwargs):
    """make_solver("nesterov", net, lr=0.01, momentum=0.95) (Caffe's solver type names)."""
    key = kind.lower()
    if key not in SOLVERS:
        raise ValueError(f"unknown solver type {kind!r}; choose from {sorted(SOLVERS)}")
    return SOLVERS[key](params, **kwargs)
