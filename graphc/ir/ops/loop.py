"""Loop: run an inner graph (the body) a number of times, the op `scan` will build on.

Its inputs, in order (the names follow Theano's scan):
  sequences      n_seqs tensors of shape [T, ...]: iteration t reads sequence[t];
  initial state  n_carry tensors (scan's outputs_info): iteration t reads the state iteration
                 t-1 wrote (iteration 0 reads these);
  non-sequences  the rest: read whole by every iteration.
The body takes (sequence slices..., states..., non-sequences...) and returns (new states...,
per-step outputs...). The op returns (final states..., per-step outputs stacked along a new
axis 0...). A state whose history is wanted is also returned by the body as a per-step output.
T is the sequences' common length (axis 0); with no sequence, `n_steps` gives it.
With reverse=True iteration it reads and writes index T-1-it of the sequences and the stacked
outputs (the backward loop of back-propagation through time runs so).

The gradient (back-propagation through time) is built by graphc/scan_grad.py, which installs it
as Loop.grad_rule: it needs graphc.grad, a layer above this one.
"""
import numpy as np
import sympy

from ...errors import GradError, GraphcTypeError
from ..graph import Op
from ..types import TensorType


class Loop(Op):
    __props__ = ("body", "n_seqs", "n_carry", "n_steps", "reverse")
    inner_graph_props = ("body",)
    needs_dims = True  # the body's fused kernels size themselves from its own dims

    grad_rule = None  # installed by graphc/scan_grad.py

    def __init__(self, body, n_seqs, n_carry, n_steps=None, reverse=False):
        self.body, self.n_seqs, self.n_carry, self.n_steps = body, n_seqs, n_carry, n_steps
        self.reverse = bool(reverse)
        if n_carry > len(body.outputs) or n_seqs + n_carry > len(body.inputs):
            raise GraphcTypeError(f"Loop: the body takes {len(body.inputs)} inputs and returns "
                                  f"{len(body.outputs)} outputs, fewer than its {n_seqs} sequences "
                                  f"and {n_carry} states need")
        if n_seqs == 0 and n_steps is None:
            raise GraphcTypeError("Loop: with no sequence the trip count is unknown; pass n_steps")
        self.nout = len(body.outputs)

    @property
    def n_stacked(self):
        return len(self.body.outputs) - self.n_carry

    def infer(self, input_types, ctx):
        body = self.body
        if len(input_types) != len(body.inputs):
            raise GraphcTypeError(f"Loop: the body takes {len(body.inputs)} inputs, got "
                                  f"{len(input_types)}; pass sequences, initial states and "
                                  "non-sequences in that order")
        body_fg = body.function_graph()
        if body_fg.value_dims:
            vd = body_fg.value_dims[0]
            name = getattr(self, "name", None)
            where = f"scan {name!r}" if name else "Loop"
            raise GraphcTypeError(f"{where}: the step slices {vd.label} with a bound that is a value "
                                  "of the step (it changes from step to step), but a step's sizes "
                                  "are fixed for the whole loop; mask instead (G.switch on "
                                  "G.arange(n) < bound), or slice outside the scan")
        dims = body_fg.dims
        outer_of = {}  # body dim symbol -> the outer dim it stands for
        steps = self.n_steps
        for k, (t, v) in enumerate(zip(input_types, body.inputs)):
            shape = t.shape
            if k < self.n_seqs:
                if t.ndim < 1:
                    raise GraphcTypeError(f"Loop: sequence {k} is a scalar ({t}); a sequence "
                                          "needs an axis 0 to iterate over")
                steps = shape[0] if steps is None else ctx.equal(steps, shape[0], f"sequence {k} length")
                shape = shape[1:]
            if t.dtype != v.dtype or len(shape) != v.ndim:
                raise GraphcTypeError(f"Loop: input {k} is {t}, so the body's input {k} should be "
                                      f"{t.dtype} of rank {len(shape)}, but it is {v.type}")
            for d_outer, d_body in zip(shape, v.type.shape):
                r = dims.resolve(d_body)
                if isinstance(r, sympy.Symbol) and r not in outer_of:
                    outer_of[r] = d_outer
                else:
                    ctx.equal(d_outer, _outer(r, outer_of), f"input {k} of the body")
        _lift_body_checks(body.function_graph().constraints, outer_of, ctx)
        outs = []
        for j, o in enumerate(body.outputs):
            shape = tuple(_outer(dims.resolve(d), outer_of) for d in o.type.shape)
            if j < self.n_carry:
                init = input_types[self.n_seqs + j]
                if o.dtype != init.dtype or len(shape) != init.ndim:
                    raise GraphcTypeError(f"Loop: state {j} starts as {init} but the body returns "
                                          f"{o.type} for it; a state keeps its type")
                shape = tuple(ctx.equal(a, b, f"state {j}") for a, b in zip(init.shape, shape))
            else:
                shape = (steps,) + shape
            outs.append(TensorType(o.dtype, shape))
        return outs

    def reference(self, *arrays, dims=None):
        seqs = arrays[:self.n_seqs]
        state = list(arrays[self.n_seqs:self.n_seqs + self.n_carry])
        rest = arrays[self.n_seqs + self.n_carry:]
        steps = len(seqs[0]) if seqs else int(sympy.sympify(self.n_steps).subs(dims or {}))
        per_step = [[] for _ in range(self.n_stacked)]
        fg = self.body.function_graph()
        body_dims = self._body_dims(fg, [np.shape(s)[1:] for s in seqs] +
                                    [np.shape(a) for a in state + list(rest)])
        for it in range(steps):
            t = steps - 1 - it if self.reverse else it
            res = self.body.evaluate(*[s[t] for s in seqs], *state, *rest, dims=body_dims)
            state = [np.asarray(r, dtype=a.dtype) for r, a in zip(res[:self.n_carry], state)]
            for acc, r in zip(per_step, res[self.n_carry:]):
                acc.append(r)
        if self.reverse:
            per_step = [acc[::-1] for acc in per_step]
        stacked = [np.stack(acc) if acc else np.zeros(
                       (0,) + tuple(int(sympy.sympify(fg.dims.resolve(d)).subs(body_dims))
                                    for d in o.type.shape), o.dtype)
                   for acc, o in zip(per_step, self.body.outputs[self.n_carry:])]
        out = tuple(state) + tuple(stacked)
        return out if self.nout > 1 else out[0]

    def _body_dims(self, fg, shapes):
        """The values of the body's dim symbols, bound from the shapes of one iteration's inputs."""
        bound = {}
        for v, shape in zip(self.body.inputs, shapes):
            for d, n in zip(v.type.shape, shape):
                r = fg.dims.resolve(d)
                if isinstance(r, sympy.Symbol):
                    bound[r] = n
        return fg.dim_env(bound)

    def grad(self, node, output_grads):
        if Loop.grad_rule is None:
            raise GradError(f"{self}: the gradient of a loop is built by graphc.scan_grad, which "
                            "is not loaded; import graphc (the package loads it)")
        return Loop.grad_rule(node, output_grads)

    def __str__(self):
        back = ", reverse" if self.reverse else ""
        return f"Loop{{{self.n_seqs} seqs, {self.n_carry} states{back}, {self.body!r}}}"


def _lift_body_checks(constraints, outer_of, ctx):
    """The body's conditions on sizes (a nested scan's n_steps against its sequences, two
    operands' sizes) hold for the outer dims each iteration binds, so the outer graph checks them
    at call time: without this a call could read past a sequence (a nested scan's n_steps larger
    than its sequence ran on in C, reading beyond the buffer). A condition on the body's own
    sizes (no outer dim stands for them) stays inside."""
    for a, b, what in constraints:
        sides = [sympy.sympify(x) for x in (a, b)]
        free = set().union(*(x.free_symbols for x in sides))
        if not free or not free <= set(outer_of):
            continue
        a, b = (_outer(x, outer_of) for x in sides)
        ctx.equal(int(a) if a.is_Integer else a, int(b) if b.is_Integer else b, what)


def _outer(d, outer_of):
    return d if isinstance(d, int) else sympy.sympify(d).xreplace(outer_of)


def loop(body, sequences=(), initial_states=(), non_sequences=(), n_steps=None, reverse=False):
    """Apply the Loop of `body` (an InnerGraph); returns its outputs as a list."""
    op = Loop(body, len(sequences), len(initial_states), n_steps, reverse)
    out = op(*sequences, *initial_states, *non_sequences)
    return list(out) if op.nout > 1 else [out]
