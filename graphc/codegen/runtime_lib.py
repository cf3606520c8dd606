"""graphc's runtime library: C that every in-process program may call, compiled once per toolchain
into the build cache instead of into each program (templates/c/runtime_lib.c.j2).

Today it holds the parallel gemm (templates/c/_gemm_parallel.j2). gcc spends ~50 ms on that
helper's OpenMP region; compiled into every translation unit that calls the BLAS, it was a quarter
of the MLP step's cold compile. The first compile in a fresh cache builds the library in a
background thread while Python lowers and renders the program, so even that compile rarely
waits for it. AOT libraries do not use it: they carry the helper inline (they must stand alone).
"""
import os
import threading

from ..config import config
from .cache import cached_library
from .toolchain import blas_info

_lock = threading.Lock()
_builds = {}  # (cache dir, compiler, extra flags) -> _Build


class _Build:
    def __init__(self):
        self.done = threading.Event()
        self.path = None
        self.error = None

    def run(self):
        try:
            from .render_c import environment
            source = environment().get_template("c/runtime_lib.c.j2").render(
                blas_prefix=blas_info()[3])
            self.path, _ = cached_library([source], "graphc_rt",
                                          root=os.path.join(config.cache_dir, "runtime"))
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


def prepare_in_background():
    """Start building (or finding) the runtime library; library_path() waits for it."""
    _start()


def library_path():
    """Path of the runtime library for the current cache directory and compiler flags, built if
    needed."""
    build = _start()
    build.done.wait()
    if build.error is not None:
        raise build.error
    return build.path
