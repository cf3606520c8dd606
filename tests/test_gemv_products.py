"""Products with one row or one column run as BLAS gemv (templates/c/_gemm_parallel.j2): every
transpose flag, a batch, a strided output column, and an accumulating (beta = 1) gradient, against
numpy. One compile covers them all."""
import numpy as np

import graphc as G
from graphc.ir.ops.blas import Matmul


def test_row_and_column_products_match_numpy():
    rng = np.random.default_rng(0)
    K, N, M = 7, 5, 4
    row = G.matrix("row", shape=(1, K))        # x as op(A) = row
    col = G.matrix("col", shape=(K, 1))        # x as op(A) = col^T, or op(B) = col
    W = G.matrix("W", shape=(K, N))
    Wt = G.matrix("Wt", shape=(N, K))
    A = G.matrix("A", shape=(M, K))
    At = G.matrix("At", shape=(K, M))
    b3 = G.tensor3("b3", shape=(3, 1, K))
    W3 = G.tensor3("W3", shape=(3, K, N))
    outs = [Matmul()(row, W), Matmul(False, True)(row, Wt), Matmul(True, False)(col, W),
            Matmul(True, True)(col, Wt),                       # M == 1
            Matmul()(A, col), Matmul(True, False)(At, col), Matmul(False, True)(A, row),
            Matmul(True, True)(At, row),                       # N == 1
            Matmul()(b3, W3),                                  # a batch of rows
            G.concatenate([Matmul()(A, col), A], axis=1)]      # a column of a wider buffer
    loss = (Matmul(False, True)(row, Wt) ** 2).sum()
    outs.append(G.grad(loss, row))                             # gy @ Wt: M == 1 in the backward
    f = G.function([row, col, W, Wt, A, At, b3, W3], outs)
    v = {n: rng.standard_normal(s).astype("float32") for n, s in
         [("row", (1, K)), ("col", (K, 1)), ("W", (K, N)), ("Wt", (N, K)), ("A", (M, K)),
          ("At", (K, M)), ("b3", (3, 1, K)), ("W3", (3, K, N))]}
    got = f(*v.values())
    r, c = v["row"], v["col"]
    want = [r @ v["W"], r @ v["Wt"].T, c.T @ v["W"], c.T @ v["Wt"].T,
            v["A"] @ c, v["At"].T @ c, v["A"] @ r.T, v["At"].T @ r.T,
            v["b3"] @ v["W3"], np.concatenate([v["A"] @ c, v["A"]], axis=1),
            2 * (r @ v["Wt"].T) @ v["Wt"]]
    for k, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5, err_msg=f"output {k}")
