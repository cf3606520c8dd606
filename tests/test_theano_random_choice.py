"""choice(replace=False) and permutation(size=(k,), n) (issue 14), checked statistically with a
chi-square statistic against its 0.1 % critical value (fixed seeds: the tests are
deterministic), and that the streams advance on every call (default updates)."""
import itertools

import numpy as np
import pytest

import graphc as G
from graphc.errors import GraphcTypeError

# chi-square critical values at 0.1 % for the degrees of freedom used below
CRITICAL = {5: 20.52, 11: 31.26, 35: 66.62}


def _chi2(counts, probs):
    counts, probs = np.asarray(counts, float), np.asarray(probs, float)
    expected = counts.sum() * probs
    return ((counts - expected) ** 2 / expected).sum()


def _pair_counts(pairs, k):
    cells = list(itertools.permutations(range(k), 2))
    counts = [sum(1 for p in pairs if tuple(p) == c) for c in cells]
    return cells, counts


@pytest.mark.parametrize("backend", ["c", "py"])
def test_choice_without_replacement_uniform(backend):
    rng = G.RandomStreams(seed=7)
    f = G.function([], rng.choice((2,), a=4, replace=False), backend=backend)
    pairs = [f() for _ in range(600 if backend == "c" else 240)]
    assert rng.counter.get_value() == len(pairs)  # one step of the stream per call
    assert all(p.dtype == np.int64 and p.shape == (2,) and p[0] != p[1] for p in pairs)
    cells, counts = _pair_counts(pairs, 4)
    assert _chi2(counts, [1 / 12] * 12) < CRITICAL[11]


def test_choice_without_replacement_weighted_as_numpy_draws():
    # MRG's form: a matrix of probabilities, size draws per row (here 12000 rows alike)
    w = np.array([0.1, 0.2, 0.3, 0.4])
    rng = G.RandomStreams(seed=3)
    pairs = G.function([], rng.choice(2, p=np.tile(w, (12000, 1)), replace=False))()
    assert pairs.shape == (12000, 2) and (pairs[:, 0] != pairs[:, 1]).all()
    cells, counts = _pair_counts(pairs.tolist(), 4)
    # numpy's successive draws: the first by w, the second by w renormalized without it
    probs = [w[i] * w[j] / (1 - w[i]) for i, j in cells]
    assert _chi2(counts, probs) < CRITICAL[11]


def test_choice_without_replacement_values_shapes_and_errors():
    rng = G.RandomStreams(seed=1)
    values = np.array([10, 20, 30, 40, 50], "int64")
    f = G.function([], [rng.choice((2, 2), a=values, replace=False),
                        rng.choice((2,), a=3, replace=False, p=[0.5, 0.5, 0.0])])
    for _ in range(20):
        picked, weighted = f()
        assert picked.shape == (2, 2) and len(set(picked.ravel())) == 4
        assert set(picked.ravel()) <= set(values)
        assert sorted(weighted) == [0, 1]  # the zero-probability entry is never drawn
    with pytest.raises(GraphcTypeError, match="cannot take 6 distinct entries of 5"):
        rng.choice((6,), a=5, replace=False)
    with pytest.raises(GraphcTypeError, match="fewer than 3 entries of p are non-zero"):
        rng.choice((3,), a=3, replace=False, p=[0.5, 0.5, 0.0])
    with pytest.raises(GraphcTypeError, match="sum to 1"):
        rng.choice((1,), a=2, replace=False, p=[0.5, 0.7])
    with pytest.raises(GraphcTypeError, match="size must be ints"):
        rng.choice((G.matrix("x").shape[0],), a=5, replace=False)


def test_permutation_rows_are_independent_and_uniform():
    rng = G.RandomStreams(seed=5)
    f = G.function([], [rng.permutation((3000,), n=3), rng.permutation(n=4)])
    rows, single = f()
    assert rows.shape == (3000, 3) and single.shape == (4,)
    assert (np.sort(rows, axis=1) == np.arange(3)).all()
    perms = list(itertools.permutations(range(3)))
    code = {p: k for k, p in enumerate(perms)}
    ids = np.array([code[tuple(r)] for r in rows.tolist()])
    assert _chi2(np.bincount(ids, minlength=6), [1 / 6] * 6) < CRITICAL[5]
    joint = ids[0::2] * 6 + ids[1::2]  # consecutive rows: independent, so 36 cells alike
    assert _chi2(np.bincount(joint, minlength=36), [1 / 36] * 36) < CRITICAL[35]
    again, _ = f()  # the stream advanced: new permutations
    assert not np.array_equal(rows, again)
