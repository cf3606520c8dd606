"""scan_last_state: `hs[-1]` of a loop reads the loop's final state, not a T-step history.

A scan returns each recurrent output's history, one buffer of T steps. When the graph reads
only its last entries (hs[-1]; hs[-2] or hs[-2:] when the output has taps down to -2, so that
the loop carries its last two values) and nothing else reads it (no gradient: back-propagation
through time reads the whole history), those reads become reads of the loop's final states. The
history then has no reader, so the lowering plans no buffer for it (lower_loop._unused_stacked)
and the planned memory no longer grows with T.

Reading hs[-k] needs k steps; the history's index would fail for fewer, and the final state of
such a loop still holds the initial value, so the call checks T >= k (a dim constraint, checked
before the program runs) where the shapes do not show it.
"""
import sympy

from ..ir.graph import Node
from ..ir.ops.conv import FitsCheck
from ..ir.ops.loop import Loop
from ..ir.ops.shape import Subtensor, concatenate, expand_dims
from .manager import register


@register("scan_last_state")
def scan_last_state(fgraph):
    changed = False
    for node in list(fgraph.nodes):
        if isinstance(node.op, Loop) and not node.op.reverse:
            changed = _rewrite_loop(fgraph, node) or changed
    return fgraph, changed


def _lags(op, i):
    """For stacked output i, the states that hold its last values after the loop: {lag: state
    index}, lag 0 holding the last step's value, lag 1 the one before (a tap -2 slot)..."""
    body, ns, nc = op.body, op.n_seqs, op.n_carry
    out = body.outputs[nc + i]
    lags = {}
    for j in range(nc):
        if body.outputs[j] is out:
            lags[0] = j
            break
    lag = 0
    while lag in lags:  # a state whose new value is the previous value of the state at `lag`
        prev = body.inputs[ns + lags[lag]]
        nxt = next((j for j in range(nc) if body.outputs[j] is prev), None)
        if nxt is None or nxt in lags.values():  # (a state passed through unchanged: a cycle)
            break
        lag += 1
        lags[lag] = nxt
    return lags


def _entries_read(reader, steps, available):
    """The lags a Subtensor reader reads along axis 0 (hs[T-1-lag], or hs[T-k:T] as lags k-1..0),
    with the index of the other axes; None if it reads anything else."""
    op = reader.op
    if type(op) is not Subtensor or op.dynamic or not op.index:
        return None
    first, rest = op.index[0], op.index[1:]
    if isinstance(first, tuple):
        start, stop, step = first
        if step != 1 or not _same(stop, steps):
            return None
        k = _as_int(sympy.expand(sympy.sympify(steps) - start))
        lags = list(range(k - 1, -1, -1)) if k is not None and k >= 1 else None
    else:
        lag = _as_int(sympy.expand(sympy.sympify(steps) - 1 - first))
        lags = [lag] if lag is not None and lag >= 0 else None
    if lags is None or any(lag not in available for lag in lags):
        return None
    return lags, isinstance(first, tuple), rest


def _rewrite_loop(fgraph, node):
    op = node.op
    steps = node.outputs[op.n_carry].type.shape[0] if op.n_stacked else None
    plans = []  # (stacked output, [(reader, lags, keeps axis 0, rest of the index)])
    for i in range(op.n_stacked):
        hs = node.outputs[op.n_carry + i]
        if fgraph.is_output(hs) or not fgraph.n_reads(hs):
            continue
        available = _lags(op, i)
        reads = []
        for reader in fgraph.readers(hs):
            read = _entries_read(reader, steps, available) if reader.inputs[0] is hs and \
                hs not in reader.inputs[1:] else None
            if read is None:
                reads = None
                break
            reads.append((reader, *read))
        if reads:
            plans.append((available, reads))
    if not plans:
        return False
    needed = max(max(lags) + 1 for _, reads in plans for _, lags, _, _ in reads)
    if isinstance(steps, int) and steps < needed:
        return False  # the history's index fails as it should (it reads before step 0)
    loop_node = node
    if not isinstance(steps, int):
        # (FitsCheck: sympy's Min would fold Min(T - 1, 0) to 0, a dim symbol being positive)
        check = (FitsCheck(sympy.sympify(steps) - needed), 0, TooFewSteps(_name(op), steps, needed))
        loop_node = Node(op, list(node.inputs), [o.type for o in node.outputs],
                         list(node.constraints) + [check])
        for old, new in zip(node.outputs, loop_node.outputs):
            new.name = old.name
            fgraph.replace(old, new)
    for available, reads in plans:
        for reader, lags, keeps_axis, rest in reads:
            finals = [loop_node.outputs[available[lag]] for lag in lags]
            value = concatenate([expand_dims(f, 0) for f in finals], 0) if keeps_axis else finals[0]
            if rest:
                index = ((0, value.type.shape[0], 1),) + rest if keeps_axis else rest
                value = Subtensor(index)(value)
            fgraph.replace(reader.outputs[0], value)
    return True


def _name(op):
    name = getattr(op, "name", None)
    return f"scan {name!r}" if name else str(op)


def _same(a, b):
    return sympy.expand(sympy.sympify(a) - b) == 0


def _as_int(e):
    return int(e) if getattr(e, "is_Integer", False) else None


class TooFewSteps:
    """The message of the check that a loop whose last k values are read ran k steps."""

    def __init__(self, loop, steps, needed):
        self.loop, self.steps, self.needed = loop, steps, needed

    def _read(self):
        return f"its output is read {self.needed} step{'s' if self.needed > 1 else ''} from the end"

    def __str__(self):
        return (f"{self.loop}: {self._read()}, so it must run at least that many; it runs "
                f"{self.steps}")

    def __format__(self, spec):
        return format(str(self), spec)

    def __reduce__(self):
        return (TooFewSteps, (self.loop, self.steps, self.needed))

    def explain(self, value_of, name_of=str):
        n = value_of(self.steps)
        return (f"{self.loop}: {self._read()} (hs[-{self.needed}]), but the loop runs "
                f"{name_of(self.steps)} = {n} step{'' if n == 1 else 's'} for these inputs; pass "
                f"sequences of at least {self.needed} step{'s' if self.needed > 1 else ''}")
