"""The JAX peer of the CNN workloads (bench/peers/jax_cnn.py) computes what the torch peer does:
a tiny net with every layer kind of bench/peers/cnn_common.py (grouped conv with bias, batch
norm, LRN, ceil-mode max and average pools whose last windows hang over the edge, ResNet blocks
with and without a projection, fc), two momentum + weight-decay steps, the same losses; and the
same logits in inference; and `cnn_run.py --threads 1` really leaves JAX one working thread.
Skipped where jax or torch is not installed (they are bench extras)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.peers import cnn_common as CC  # noqa: E402
from bench.peers.threads import thread_env  # noqa: E402

NO_JAX = "jax is a bench extra (pip install jax): the JAX peer needs it"

# 8x8 input: maxpool 3/2 -> 4x4 (overhang 1), avgpool 3/2 -> 2x2 (overhang 1, partial windows)
TINY = [("conv", 6, 3, 1, 1, 2, True), ("bn",), ("relu",), ("lrn", 5, 0.5, 0.75, 1.0),
        ("maxpool", 3, 2), ("avgpool", 3, 2), ("res", 8, 2), ("res", 8, 1),
        ("flatten",), ("fc", 7), ("relu",), ("fc", 5)]


def _values(step, n):
    from bench.peers import common
    return np.concatenate([np.ravel(np.asarray(common.to_numpy(step()), np.float64))
                           for _ in range(n)])


@pytest.mark.parametrize("train", [True, False], ids=["train", "infer"])
def test_jax_peer_matches_torch_on_a_tiny_net(monkeypatch, train):
    pytest.importorskip("jax", reason=NO_JAX)
    pytest.importorskip("torch", reason="torch is a bench extra: the JAX peer is checked against it")
    from bench.peers import jax_cnn, torch_peer
    monkeypatch.setitem(CC.NETS, "tiny", (TINY, (4, 8, 8), 5, 3, train, 0.1, 0.9, 1e-3))
    steps = 2 if train else 1
    ours = _values(jax_cnn.cnn_step("tiny"), steps)
    ref = _values(torch_peer.cnn_step("tiny", compile=False), steps)
    assert ours.shape == ref.shape == ((2,) if train else (3 * 5,))
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5)
    if train:
        assert ours[1] != ours[0]  # the second loss saw the update


# A jitted product in a child process: the CPU ticks of its busiest threads while it runs.
_BUSY_THREADS = """
import os, json, jax, jax.numpy as jnp
def ticks():
    out = []
    for t in os.listdir('/proc/self/task'):
        try:
            f = open(f'/proc/self/task/{t}/stat').read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        out.append((t, int(f[11]) + int(f[12])))
    return dict(out)
a = jnp.ones((768, 768), jnp.float32)
f = jax.jit(lambda a: (a @ a @ a @ a).sum())
f(a).block_until_ready()
t0 = ticks()
for _ in range(6):
    f(a).block_until_ready()
t1 = ticks()
print(json.dumps(sorted((v - t0.get(k, 0) for k, v in t1.items()), reverse=True)[:3]))
"""


def test_thread_env_caps_every_pool_and_keeps_xla_flags():
    env = thread_env(1, "--xla_dump_to=/tmp/x")
    assert env["OMP_NUM_THREADS"] == env["NPROC"] == env["OPENBLAS_NUM_THREADS"] == "1"
    assert env["XLA_FLAGS"] == "--xla_dump_to=/tmp/x --xla_cpu_multi_thread_eigen=false"
    assert "XLA_FLAGS" not in thread_env(2) and thread_env(2)["NPROC"] == "2"
    with pytest.raises(ValueError, match="got 0"):
        thread_env(0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/task")
def test_one_thread_env_leaves_jax_one_working_thread():
    pytest.importorskip("jax", reason=NO_JAX)
    env = dict(os.environ, **thread_env(1, os.environ.get("XLA_FLAGS", "")))
    out = subprocess.run([sys.executable, "-c", _BUSY_THREADS], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    busiest = json.loads(out.stdout.strip().splitlines()[-1])
    assert busiest[0] >= 10, busiest  # the work took >= 0.1 s CPU: enough to see the threads
    assert busiest[1] <= 0.1 * busiest[0], f"CPU ticks per thread {busiest}: JAX ran on several"


def test_torch_compile_peers_window_mean_pool_is_ceil_mode_avg_pool():
    """The torch.compile peer's stand-in for nn.AvgPool2d(ceil_mode=True) (whose compiled backward
    miscounts overhanging windows in torch 2.13) computes the same values and gradients eagerly."""
    torch = pytest.importorskip("torch", reason="torch is a bench extra")
    from bench.peers.torch_cnn import _WindowMeanPool
    x = torch.randn(2, 3, 10, 8, generator=torch.Generator().manual_seed(0))
    outs = []
    for pool in (torch.nn.AvgPool2d(3, 2, ceil_mode=True), _WindowMeanPool(3, 2)):
        t = x.clone().requires_grad_()
        y = pool(t)
        (y * torch.arange(y.numel(), dtype=y.dtype).reshape(y.shape)).sum().backward()
        outs.append((y.detach().numpy(), t.grad.numpy()))
    assert outs[0][0].shape == (2, 3, 5, 4)  # both dims have a window over the edge
    for ref, ours in zip(*outs):
        np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-6)
