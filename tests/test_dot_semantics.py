"""dot follows numpy.dot for every rank pair (issue 14 item 8: dot of two 3-D tensors used to be a
batched product); the batched product is matmul's and batched_dot's. Values and gradients."""
import itertools

import numpy as np
import pytest

import graphc as G
from graphc.testing import verify_grad

# one shape per rank for each side, chosen so that every rank pair contracts k = 4
A_SHAPES = {1: (4,), 2: (3, 4), 3: (2, 3, 4)}
B_SHAPES = {1: (4,), 2: (4, 5), 3: (2, 4, 5)}
PAIRS = list(itertools.product((1, 2, 3), (1, 2, 3)))


def _inputs(ra, rb, seed=0):
    rng = np.random.RandomState(seed)
    return rng.standard_normal(A_SHAPES[ra]), rng.standard_normal(B_SHAPES[rb])


@pytest.mark.parametrize("ra,rb", PAIRS)
def test_dot_values_match_numpy(ra, rb):
    av, bv = _inputs(ra, rb)
    a, b = G.tensor("a", av.shape, "float64"), G.tensor("b", bv.shape, "float64")
    out = G.dot(a, b)
    expected = np.dot(av, bv)
    assert out.type.shape == expected.shape
    np.testing.assert_allclose(G.function([a, b], out)(av, bv), expected, rtol=1e-12)


@pytest.mark.parametrize("ra,rb", PAIRS)
def test_dot_gradients_match_finite_differences(ra, rb):
    verify_grad(G.dot, list(_inputs(ra, rb, seed=1)), backend="py")


def test_dot_of_two_3d_tensors_is_numpys_tensordot_not_a_batched_product():
    av, bv = np.ones((2, 3, 4)), np.ones((2, 4, 5))
    a, b = G.tensor("a", av.shape, "float64"), G.tensor("b", bv.shape, "float64")
    assert G.dot(a, b).type.shape == (2, 3, 2, 5)
    assert G.matmul(a, b).type.shape == (2, 3, 5)
    assert (a @ b).type.shape == (2, 3, 5)


def test_dot_with_symbolic_dims_compiles_for_the_c_target():
    n = G.dim("n")
    a, b = G.tensor("a", (n, 3, 4), "float32"), G.tensor("b", (2, 4, 5), "float32")
    f = G.function([a, b], G.dot(a, b))
    for rows in (1, 3):
        av = np.random.RandomState(rows).standard_normal((rows, 3, 4)).astype("float32")
        bv = np.random.RandomState(9).standard_normal((2, 4, 5)).astype("float32")
        np.testing.assert_allclose(f(av, bv), np.dot(av, bv), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("ra,rb", PAIRS)
def test_matmul_and_the_operator_match_numpy_matmul(ra, rb):
    av, bv = _inputs(ra, rb, seed=2)
    a, b = G.tensor("a", av.shape, "float64"), G.tensor("b", bv.shape, "float64")
    expected = np.matmul(av, bv)
    f = G.function([a, b], [G.matmul(a, b), a @ b], backend="py")
    for got in f(av, bv):
        np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("ra,rb", [(2, 3), (3, 2), (3, 3)])
def test_matmul_gradients(ra, rb):
    verify_grad(G.matmul, list(_inputs(ra, rb, seed=3)), backend="py")


@pytest.mark.parametrize("a_shape,b_shape", [((2, 4), (2, 4)), ((2, 3, 4), (2, 4)),
                                             ((2, 4), (2, 4, 5)), ((2, 3, 4), (2, 4, 5))])
def test_batched_dot_is_a_dot_per_batch_element(a_shape, b_shape):
    rng = np.random.RandomState(4)
    av, bv = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    a, b = G.tensor("a", a_shape, "float64"), G.tensor("b", b_shape, "float64")
    expected = np.stack([np.dot(x, y) for x, y in zip(av, bv)])
    np.testing.assert_allclose(G.function([a, b], G.batched_dot(a, b), backend="py")(av, bv),
                               expected, rtol=1e-12)
    verify_grad(G.batched_dot, [av, bv], backend="py")


def test_theano_names_dot_and_batched_dot():
    import graphc.theano.tensor as T
    assert T.dot is G.dot and T.batched_dot is G.batched_dot


def test_rank_errors_name_the_operands():
    a, v = G.tensor("a4", (2, 2, 2, 2), "float64"), G.tensor("v", (2,), "float64")
    with pytest.raises(G.GraphcShapeError, match="a4"):
        G.matmul(a, a)
    with pytest.raises(G.GraphcShapeError, match="batched_dot.*v"):
        G.batched_dot(v, v)
    with pytest.raises(G.GraphcShapeError, match=r"dot a4 . b.*\(2\).*second-to-last.*\(3\)"):
        G.dot(a, G.tensor("b", (5, 3, 2), "float64"))
