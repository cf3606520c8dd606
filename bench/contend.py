"""A busy loop beside a measurement (`--contended`): another process keeping one core busy, as a
laptop's browser or a CI runner's neighbour does. OpenMP pools that spin at barriers suffer most."""
from __future__ import annotations

import contextlib
import subprocess
import sys

_SPIN = "import os\nos.nice(0)\nwhile True:\n    pass\n"


@contextlib.contextmanager
def busy_loop(enabled=True):
    """Run a one-core busy loop (a plain Python process) while the block runs."""
    if not enabled:
        yield None
        return
    proc = subprocess.Popen([sys.executable, "-c", _SPIN])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()
