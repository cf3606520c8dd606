"""Peer implementations of the benchmark workloads.

Every peer module exposes the same builder functions; each builder does its
setup and returns a zero-argument callable ``step()`` that runs one iteration
and returns something that can be turned into a numpy value (loss or output)
for cross-checking.  A builder raises :class:`PeerUnavailable` when the library
(or the feature the workload needs) is missing, and the runner skips it.

Builders (all optional; a missing one is reported as "n/a"):

    mlp_step(batch=128)          MLP 784-512-512-10, softmax xent, SGD 0.01
    elementwise_chain(n=16M)     tanh(x*a+b)*sigmoid(x)+exp(-x*x)
    tiny_call()                  z = x + y on 10-element float32 vectors
    lenet_step(batch=64)         Caffe LeNet, SGD momentum 0.9 lr 0.01
    lstm_step(batch=32, ...)     LSTM 64->256, 32 steps, fwd+bwd+SGD
    cold_compile_mlp()           build+compile+run-once the MLP step; seconds
                                 (called in a fresh subprocess by the runner)
"""
from __future__ import annotations

import importlib


class PeerUnavailable(Exception):
    """Raised by a builder when its library or feature is not usable."""


# (peer name, module, keyword arguments passed to every builder)
PEERS = [
    ("numpy", "bench.peers.numpy_peer", {}),
    ("torch", "bench.peers.torch_peer", {"compile": False}),
    ("torch.compile", "bench.peers.torch_peer", {"compile": True}),
    ("jax", "bench.peers.jax_peer", {}),
    ("pytensor", "bench.peers.pytensor_peer", {"mode": "NUMBA"}),
    ("pytensor.c", "bench.peers.pytensor_peer", {"mode": "CVM"}),
    ("graphc", "bench.graphc_impl", {}),
    ("graphc-base", "bench.graphc_base", {}),  # another checkout: run.py --baseline PATH
]

PEER_NAMES = [p[0] for p in PEERS]


def load_peer(name):
    """Return (module, kwargs) for a peer, or raise PeerUnavailable."""
    for pname, modname, kw in PEERS:
        if pname == name:
            try:
                mod = importlib.import_module(modname)
            except PeerUnavailable:
                raise
            except Exception as e:  # ImportError or anything raised on import
                raise PeerUnavailable(f"import {modname} failed: {type(e).__name__}: {e}") from e
            return mod, dict(kw)
    raise KeyError(name)


def get_builder(name, workload):
    """Return a callable ``builder(**params)`` for a peer/workload pair."""
    mod, kw = load_peer(name)
    fn = getattr(mod, workload, None)
    if fn is None:
        raise PeerUnavailable(f"{name} has no {workload}")

    def build(**params):
        return fn(**params, **kw)

    return build
