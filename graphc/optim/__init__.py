"""graphc.optim: Caffe's solvers and learning-rate policies on graphc's public API.

* Functional update rules returning Theano-style ``updates`` dicts (state included):
  ``sgd, momentum, nesterov, adagrad, rmsprop, adadelta, adam``; helpers ``weight_decay``,
  ``global_norm``, ``clip_by_global_norm``.
* Solver objects (state, lr policy, multipliers, weight decay, clipping, gradient accumulation,
  one compiled step): ``SGD, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam``.
* Learning-rate policies with Caffe's formulas: ``Fixed, Step, MultiStep, Exp, Inv, Poly,
  Sigmoid``, ``make_policy``.
"""
from .lr_policy import (POLICIES, Exp, Fixed, Inv, LRPolicy, MultiStep, Poly, Sigmoid, Step,
                        make_policy)
from .solvers import (SOLVERS, AdaDelta, AdaGrad, Adam, Nesterov, RMSProp, SGD, Solver,
                      make_solver)
from .solvers import Step as SolverStep
from .updates import (RULES, adadelta, adagrad, adam, clip_by_global_norm, global_norm, momentum,
                      nesterov, rmsprop, sgd, weight_decay)

__all__ = ["LRPolicy", "Fixed", "Step", "MultiStep", "Exp", "Inv", "Poly", "Sigmoid",
           "make_policy", "POLICIES", "Solver", "SGD", "Nesterov", "AdaGrad", "RMSProp",
           "AdaDelta", "Adam", "SolverStep", "make_solver", "SOLVERS", "sgd", "momentum",
           "nesterov", "adagrad", "rmsprop", "adadelta", "adam", "weight_decay", "global_norm",
           "clip_by_global_norm", "RULES"]
