"""Learning-rate policies, with Caffe's formulas (caffe/src/caffe/solvers/sgd_solver.cpp,
SGDSolver::GetLearningRate). ``policy(it)`` is the rate used by iteration ``it`` (0-based, the
value of the solver's iteration counter before the step), computed in double precision:

    fixed      base_lr
    step       base_lr * gamma ^ floor(it / stepsize)
    exp        base_lr * gamma ^ it
    inv        base_lr * (1 + gamma * it) ^ (-power)
    multistep  base_lr * gamma ^ (number of stepvalues <= it)
    poly       base_lr * (1 - it / max_iter) ^ power
    sigmoid    base_lr * 1 / (1 + exp(-gamma * (it - stepsize)))

The solver evaluates the policy in Python and hands the rate to the compiled step through a
shared scalar, so the compiled function never changes and the rate is exactly the formula's
(rounded once to the parameters' dtype).
"""
import math

__all__ = ["LRPolicy", "Fixed", "Step", "Exp", "Inv", "MultiStep", "Poly", "Sigmoid",
           "make_policy", "POLICIES"]


class LRPolicy:
    name = "policy"

    def __init__(self, base_lr):
        base_lr = float(base_lr)
        if not base_lr >= 0 or math.isinf(base_lr):
            raise ValueError(f"lr policy {self.name}: base_lr must be a finite number >= 0, got {base_lr}")
        self.base_lr = base_lr

    def __call__(self, it):
        it = int(it)
        if it < 0:
            raise ValueError(f"lr policy {self.name}: iteration must be >= 0, got {it}")
        return float(self.rate(it))

    def rate(self, it):
        raise NotImplementedError

    def config(self):
        return {"lr_policy": self.name, **{k: v for k, v in vars(self).items()}}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Fixed(LRPolicy):
    name = "fixed"

    def rate(self, it):
        return self.base_lr


class Step(LRPolicy):
    name = "step"

    def __init__(self, base_lr, gamma, stepsize):
        super().__init__(base_lr)
        if int(stepsize) != stepsize or stepsize < 1:
            raise ValueError(f"lr policy step: stepsize must be a positive int, got {stepsize!r}")
        self.gamma, self.stepsize = float(gamma), int(stepsize)

    def rate(self, it):
        return self.base_lr * math.pow(self.gamma, it // self.stepsize)


class Exp(LRPolicy):
    name = "exp"

    def __init__(self, base_lr, gamma):
        super().__init__(base_lr)
        self.gamma = float(gamma)

    def rate(self, it):
        return self.base_lr * math.pow(self.gamma, it)


class Inv(LRPolicy):
    name = "inv"

    def __init__(self, base_lr, gamma, power):
        super().__init__(base_lr)
        self.gamma, self.power = float(gamma), float(power)

    def rate(self, it):
        return self.base_lr * math.pow(1.0 + self.gamma * it, -self.power)


class MultiStep(LRPolicy):
    name = "multistep"

    def __init__(self, base_lr, gamma, stepvalues):
        super().__init__(base_lr)
        sv = [int(s) for s in stepvalues]
        if any(b <= a for a, b in zip(sv, sv[1:])):
            raise ValueError(f"lr policy multistep: stepvalues must increase, got {sv}")
        self.gamma, self.stepvalues = float(gamma), sv

    def rate(self, it):
        # Caffe advances current_step_ once per call while it >= stepvalue[current_step_]; called
        # every iteration, that is the number of step values <= it.
        current_step = sum(1 for s in self.stepvalues if it >= s)
        return self.base_lr * math.pow(self.gamma, current_step)


class Poly(LRPolicy):
    name = "poly"

    def __init__(self, base_lr, power, max_iter):
        super().__init__(base_lr)
        if int(max_iter) != max_iter or max_iter < 1:
            raise ValueError(f"lr policy poly: max_iter must be a positive int, got {max_iter!r}")
        self.power, self.max_iter = float(power), int(max_iter)

    def rate(self, it):
        return self.base_lr * math.pow(1.0 - float(it) / float(self.max_iter), self.power)


class Sigmoid(LRPolicy):
    name = "sigmoid"

    def __init__(self, base_lr, gamma, stepsize):
        super().__init__(base_lr)
        self.gamma, self.stepsize = float(gamma), int(stepsize)

    def rate(self, it):
        return self.base_lr * (1.0 / (1.0 + math.exp(-self.gamma * (float(it) - float(self.stepsize)))))


POLICIES = {c.name: c for c in (Fixed, Step, Exp, Inv, MultiStep, Poly, Sigmoid)}


def make_policy(spec=None, **kwargs):
    """An LRPolicy from a policy, a number (fixed rate), a name plus keyword arguments
    (``make_policy("inv", base_lr=0.01, gamma=1e-4, power=0.75)``) or a Caffe-style dict
    (``{"lr_policy": "step", "base_lr": 0.1, "gamma": 0.1, "stepsize": 1000}``)."""
    if isinstance(spec, LRPolicy):
        return spec
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return Fixed(spec)
    if isinstance(spec, dict):
        kwargs = {**spec, **kwargs}
        spec = kwargs.pop("lr_policy", kwargs.pop("policy", None))
    if isinstance(spec, str):
        name = spec.lower()
        if name not in POLICIES:
            raise ValueError(f"unknown lr policy {spec!r}; choose from {sorted(POLICIES)}")
        try:
            return POLICIES[name](**kwargs)
        except TypeError as e:
            raise ValueError(f"lr policy {name}: {e}") from None
    if callable(spec):
        return spec
    raise ValueError(f"cannot make an lr policy from {spec!r}")
