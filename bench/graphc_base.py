"""graphc from another checkout, as a peer: `bench/run.py --baseline PATH` times the graphc at
PATH (e.g. a `git worktree` of the commit before a change) interleaved with this one, so a change
is judged against its own baseline on the same drifting machine.

PATH needs its build products (`python setup.py build_ext --inplace` there) to be a fair peer.
"""
import os
import sys

from bench.peers import PeerUnavailable

_BASE = os.environ.get("GRAPHC_BENCH_BASELINE", "")
if not _BASE or not os.path.isdir(os.path.join(_BASE, "graphc")):
    raise PeerUnavailable("no baseline checkout: pass --baseline PATH")
if "graphc" in sys.modules:
    raise PeerUnavailable("graphc was imported before the baseline could be put first")
sys.path.insert(0, os.path.abspath(_BASE))

from bench.graphc_impl import *  # noqa: E402,F401,F403  (the same builders, on the baseline)
from bench.graphc_impl import G  # noqa: E402

if G is None or not os.path.abspath(G.__file__).startswith(os.path.abspath(_BASE)):
    raise PeerUnavailable(f"graphc did not come from {_BASE}")
