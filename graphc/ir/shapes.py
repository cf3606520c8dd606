"""Resolve the dim equalities recorded while a graph was built.

Shape inference records `a == b` whenever two dims must agree and it cannot prove it (a fresh dim
of `G.matrix()` meeting the 100 of a weight, two named dims...). Before compiling, the equalities
are solved by union-find: each class of symbols gets one representative (an int if any member is
bound to one, else a named dim, else a fresh one). What cannot be solved this way (products of
dims against other products) becomes a check run when the dims are bound at call time.
"""
import sympy

from ..errors import GraphcShapeError
from .types import dims_equal, free_symbols_of, is_fresh


class DimResolver:
    def __init__(self, constraints):
        self.parent = {}
        self.value = {}  # root symbol -> int
        self.runtime_checks = []  # (lhs, rhs, message) evaluated after binding
        self.value_dims = ()  # dims computed from values (ir/value_dims.py), set by the graph
        pending = list(constraints)
        progress = True
        while pending and progress:
            progress, retry = False, []
            for a, b, msg in pending:
                if self._unify(self.resolve(a), self.resolve(b), msg):
                    progress = True
                else:
                    retry.append((a, b, msg))
            pending = retry
        # A message stays as given (text, one that explains itself, or a LazyText printed only
        # when the check fails: printing pooled sizes costs sympy ~0.1 s a message, and the
        # resolver runs after every pass).
        for a, b, msg in pending:
            self.runtime_checks.append((self.resolve(a), self.resolve(b), msg))

    def _find(self, s):
        while self.parent.get(s, s) != s:
            s = self.parent[s]
        return s

    def _unify(self, a, b, msg):
        """Record a == b. Returns False if the pair must wait (not solvable yet)."""
        if isinstance(a, int) and isinstance(b, int):
            if a != b:
                raise GraphcShapeError(f"{msg}: {a} != {b}")
            return True
        if isinstance(a, sympy.Symbol) and isinstance(b, sympy.Symbol):
            ra, rb = self._find(a), self._find(b)
            if ra != rb:
                # Named dims win over fresh ones, so messages and dumps show the user's names.
                if is_fresh(ra) and not is_fresh(rb):
                    ra, rb = rb, ra
                self.parent[rb] = ra
                if rb in self.value:
                    vb = self.value.pop(rb)
                    if self.value.setdefault(ra, vb) != vb:
                        raise GraphcShapeError(f"{msg}: {self.value[ra]} != {vb}")
            return True
        if isinstance(a, sympy.Symbol) and isinstance(b, int):
            self.value[self._find(a)] = b
            return True
        if isinstance(b, sympy.Symbol) and isinstance(a, int):
            self.value[self._find(b)] = a
            return True
        if dims_equal(a, b):
            return True
        return False

    def resolve(self, d):
        """The canonical form of a dim (or dim expression)."""
        if isinstance(d, int):
            return d
        if isinstance(d, sympy.Symbol):
            r = self._find(d)
            return self.value.get(r, r)
        expr = sympy.sympify(d)
        subs = {s: self.resolve(s) for s in free_symbols_of(expr)}
        subs = {k: sympy.Integer(v) if isinstance(v, int) else v for k, v in subs.items() if v is not k}
        if not subs:  # (rebuilding a floor or ceiling re-runs sympy's evaluation: ~30 ms each)
            return expr
        out = expr.xreplace(subs)
        return int(out) if out.is_Integer else out

    def shape(self, var):
        return tuple(self.resolve(d) for d in var.type.shape)
