"""The JAX peer of the CNN workloads (bench/peers/jax_cnn.py) computes what the torch peer does:
a tiny net with every layer kind of bench/peers/cnn_common.py (grouped conv with bias, batch
norm, LRN, ceil-mode max and average pools whose last windows hang over the edge, ResNet blocks
with and without a projection, fc), two momentum + weight-decay steps, the same losses; and the
same logits in inference. Skipped where jax or torch is not installed (they are bench extras)."""
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

pytest.importorskip("jax", reason="jax is a bench extra (pip install jax): the JAX peer needs it")
pytest.importorskip("torch", reason="torch is a bench extra: the JAX peer is checked against it")

from bench.peers import cnn_common as CC  # noqa: E402
from bench.peers import jax_cnn, torch_peer  # noqa: E402

# 8x8 input: maxpool 3/2 -> 4x4 (overhang 1), avgpool 3/2 -> 2x2 (overhang 1, partial windows)
TINY = [("conv", 6, 3, 1, 1, 2, True), ("bn",), ("relu",), ("lrn", 5, 0.5, 0.75, 1.0),
        ("maxpool", 3, 2), ("avgpool", 3, 2), ("res", 8, 2), ("res", 8, 1),
        ("flatten",), ("fc", 7), ("relu",), ("fc", 5)]


def _values(step, n):
    return np.concatenate([np.ravel(np.asarray(torch_peer.C.to_numpy(step()), np.float64))
                           for _ in range(n)])


@pytest.mark.parametrize("train", [True, False], ids=["train", "infer"])
def test_jax_peer_matches_torch_on_a_tiny_net(monkeypatch, train):
    monkeypatch.setitem(CC.NETS, "tiny", (TINY, (4, 8, 8), 5, 3, train, 0.1, 0.9, 1e-3))
    steps = 2 if train else 1
    ours = _values(jax_cnn.cnn_step("tiny"), steps)
    ref = _values(torch_peer.cnn_step("tiny", compile=False), steps)
    assert ours.shape == ref.shape == ((2,) if train else (3 * 5,))
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5)
    if train:
        assert ours[1] != ours[0]  # the second loss saw the update
