"""graphc's runtime library: C that every in-process program may call, compiled once per toolchain
into the build cache instead of into each program (templates/c/runtime_lib.c.j2).

It holds the parallel gemm (templates/c/_gemm_parallel.j2) and the choice of each call's
thread count from the machine's load (templates/c/_thread_choice.j2). gcc spends ~50 ms on that
helper's OpenMP region; compiled into every translation unit that calls the BLAS, it was a quarter
of the MLP step's cold compile. setup.py builds it at install into the package
(runtime_build.py); without that copy (a source checkout, other flags in GRAPHC_CFLAGS, another
CPU) the first compile in a cache builds it in a background thread while Python optimizes,
lowers and renders. AOT libraries do not use it: they carry the helper inline (they must stand
alone).
"""
import os
import subprocess
import threading

from ...config import config
from . import runtime_build
from .cache import cached_library
from .templates_dir import templates_root
from .toolchain import blas_info

SHIPPED_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                           runtime_build.SHIPPED_DIR_NAME)

_lock = threading.Lock()
_builds = {}  # (cache dir, compiler, extra flags) -> _Build


class _Build:
    def __init__(self):
        self.done = threading.Event()
        self.path = None
        self.error = None

    def run(self):
        try:
            from .render_c import environment  # (compiled templates: no parse in a cold process)
            source = runtime_build.render_source(templates_root(), environment())
            try:
                shipped = os.path.join(SHIPPED_DIR, runtime_build.library_name(
                    source, config.cc, config.extra_cflags))
            except (OSError, subprocess.CalledProcessError):
                shipped = None  # the compiler does not run: the build below says so clearly
            if shipped and os.path.exists(shipped):  # built at install for these flags, this CPU
                self.path = shipped
                return
            blas_info()  # a clear error when the BLAS is missing
            self.path, _, _ = cached_library([source], "graphc_rt", area=("runtime",))
        except BaseException as e:  # re-raised in the thread that needs the library
            self.error = e
        finally:
            self.done.set()


def _start():
    key = (config.cache_dir, config.cc, tuple(config.extra_cflags))
    with _lock:
        build = _builds.get(key)
        if build is None or build.error is not None:  # a failed build is retried
            build = _builds[key] = _Build()
            threading.Thread(target=build.run, name="graphc-runtime-build", daemon=True).start()
        return build


def prepare_for(fgraph):
    """Start finding or building the library (library_path() waits for it) before the graph is
    optimized: every in-process program links it (its calls choose their thread count there), and
    on a fresh cache gcc then works while Python optimizes, lowers and renders (~0.1 s)."""
    _start()


def library_path():
    """Path of the runtime library for the current cache directory and compiler flags, built if
    needed."""
    build = _start()
    build.done.wait()
    if build.error is not None:
        raise build.error
    return build.path
