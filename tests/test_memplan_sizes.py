"""The memory planner's size ordering (graphc/codegen/memplan_sizes.py): `provably_ge(a, b)` must
be True only when a >= b for every value of the dims (positive integers), and should be True
for the orderings a CNN's buffers need (a wider activation holds a narrower one, an activation
holds its pooled self, a Winograd tile count is the pooled extent). Sizes that cannot be ordered
(3n against 2m, a Min against its argument, a ceiling against its argument) must not be."""
import itertools
import random

import pytest
import sympy

from graphc.codegen.memplan_sizes import add_to_max, evaluate, max_of, provably_ge, typical

n, m, h, w = (sympy.Symbol(s, integer=True, positive=True) for s in "nmhw")
C, F, Min, Max, R = sympy.ceiling, sympy.floor, sympy.Min, sympy.Max, sympy.Rational
X, Y = C(h / 2), C(w / 2)  # pooled extents
TILES = 8192 * F(h / 2 + R(1, 2)) * F(w / 2 + R(1, 2))  # a Winograd layer's bytes per image
CHUNK = Min(n, F(Max(33554432, TILES) / Max(1, TILES)))  # images per chunk of a 32 MiB budget

ORDERED = [  # a >= b for every dim value, and provably so
    (512 * n * X * Y, 256 * n * X * Y),
    (256 * n * h * w, 256 * n * X * Y),
    (1024 * n * X * Y, 256 * n * h * w),
    (256 * n, 256),
    (n * m, n),
    (64 * C(n / 16), 64),
    (64 * C(5 * n / 8), 64 * C(n / 16)),
    (2 * X, h),
    (X, C(h / 3)),
    (F(h / 2 + R(1, 2)), X),  # floor((h+1)/2) is ceiling(h/2)
    (X, F(h / 2 + R(1, 2))),
    (n, Min(n, m)),
    (Max(n, m), m),
    (Max(3 * n, 2 * m), Max(2 * n, m)),
    (n - 1, 0),
    (C(n / 2) - 1, 0),
    (F(Max(33554432, TILES) / Max(1, TILES)), 1),  # a chunk holds at least one image
    (8192 * X * Y * CHUNK, 4096 * F(h / 2 + R(1, 2)) * F(w / 2 + R(1, 2)) * CHUNK),
    (8192 * X * Y * CHUNK, 256 * X * Y),
    (256 * n * h * w, 64 * C(27 * h * w * Min(n, F(Max(33554432, 364 * h * w) / (364 * h * w))) / 16)),
]

NOT_ORDERED = [  # a >= b fails for some dim value: must never be "proved"
    (3 * n, 2 * m), (2 * m, 3 * n),
    (256, 256 * n),
    (n, n * m),
    (Min(n, m), n),
    (n, Max(n, m)),
    (Max(2 * n, m), Max(3 * n, 2 * m)),
    (h, 2 * X),  # h = 1: ceiling(1/2) = 1
    (X, h / 2 + R(1, 2) + R(1, 10)),
    (C(h / 3), X),
    (64 * C(n / 16), 64 * C(5 * n / 8)),
    (256 * n * h * w, 1024 * n * C(X / 2) * C(Y / 2)),  # h = w = 1: 256 < 1024
    (1024 * n * X * Y, 8192 * X * Y * CHUNK),  # n = 1
    (n - 2, 0),
    (F(n / 2), 1),
    (256 * n * X * Y, 512 * n * X * Y),
]


@pytest.mark.parametrize("a, b", ORDERED, ids=[f"{a} >= {b}" for a, b in ORDERED])
def test_orderings_a_plan_needs_are_proved(a, b):
    assert provably_ge(a, b)


@pytest.mark.parametrize("a, b", NOT_ORDERED, ids=[f"{a} >= {b}" for a, b in NOT_ORDERED])
def test_sizes_that_cannot_be_ordered_are_not(a, b):
    assert not provably_ge(a, b)
    # and each has a counterexample, so the list itself is right
    envs = [{s: v for s, v in zip((n, m, h, w), vs)} for vs in itertools.product((1, 2, 3, 5, 40), repeat=4)]
    assert any(sympy.sympify(a).xreplace(env) < sympy.sympify(b).xreplace(env) for env in envs)


def _random_size(rng, depth=0):
    """A size expression of the kinds lowering makes: c * dims, sums, products, pooled extents,
    a Winograd tile count, chunk counts (Min), budgets (Max)."""
    dims = (n, m, h)
    kind = rng.randrange(8 if depth < 2 else 3)
    if kind == 0:
        return sympy.Integer(rng.choice((1, 2, 3, 64, 256)))
    if kind in (1, 2):
        return rng.choice((1, 2, 3, 4, 64)) * rng.choice(dims)
    sub = _random_size(rng, depth + 1)
    if kind == 3:
        return sub + _random_size(rng, depth + 1)
    if kind == 4:
        return sub * _random_size(rng, depth + 1)
    if kind == 5:
        return C(sub / rng.choice((2, 3, 16)))
    if kind == 6:
        return F(sub / 2 + R(rng.choice((0, 1)), 2))
    # (unevaluated: sympy's Min/Max evaluation is slow, and lowering's sizes hold both forms)
    return (Min if rng.random() < 0.5 else Max)(sub, _random_size(rng, depth + 1), evaluate=False)


def test_every_proof_holds_at_every_sampled_dim_value():
    """Soundness, fuzzed: random pairs of sizes; wherever a >= b is proved, no dim values in a grid
    (each dim 1, 2, 3, 5, 16 or 100 independently) give a < b."""
    rng = random.Random(1234)
    grid = list(itertools.product((1, 2, 3, 5, 16, 100), repeat=3))
    proved = 0
    for _ in range(250):
        a, b = _random_size(rng), _random_size(rng)
        if not provably_ge(a, b):
            continue
        proved += 1
        for vs in grid:
            env = tuple(zip((n, m, h), vs))
            assert evaluate(a, env) >= evaluate(b, env), (a, b, vs)
    assert proved > 40  # the fuzz proves enough to mean something


def test_a_slot_of_unordered_sizes_is_their_max_and_keeps_only_maximal_parts():
    parts = add_to_max([256 * n * X * Y], 512 * n * X * Y)  # proved larger: replaces
    assert parts == [512 * n * X * Y]
    assert add_to_max(parts, 128 * n * X * Y) == parts  # proved smaller: absorbed
    parts = add_to_max(parts, 3 * m)  # unordered: both kept
    assert set(parts) == {512 * n * X * Y, 3 * m}
    size = max_of(parts)
    assert isinstance(size, sympy.Max)
    for vs in itertools.product((1, 2, 9), repeat=3):
        env = dict(zip((n, m, h), vs), **{})
        env[w] = 3
        got = int(size.xreplace(env))
        assert got == max(int(p.xreplace(env)) for p in parts)
    assert provably_ge(size, 3 * m) and provably_ge(size, 512 * n * X * Y)
    assert max_of([64, 128, 64]) == 128 and max_of([n]) == n


def test_typical_values_and_evaluation_are_exact():
    assert typical(64 * C(n / 16)) == (64, 64, 256)  # n = 4, 16, 64
    e = 256 * n * X * Y + Max(3 * n, 2 * m)
    env = ((n, 5), (m, 9), (h, 3), (w, 1))
    assert evaluate(e, env) == int(e.xreplace(dict(env)))
