"""A forked child runs compiled code on one thread.

GNU OpenMP's thread pool does not survive fork(): a child that enters a parallel region waits
forever for the parent's worker threads (data loaders and process pools fork all the time).
After a fork, the child's OpenMP runtime is told to use one thread, which needs no pool.
"""
import ctypes
import os

_registered = False


def _one_thread_in_child():
    try:
        ctypes.CDLL("libgomp.so.1").omp_set_num_threads(1)
    except (OSError, AttributeError):  # another OpenMP runtime (LLVM's handles fork itself)
        pass


def protect_children():
    """Install the after-fork handler once per process (when the first program is loaded)."""
    global _registered
    if not _registered and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_one_thread_in_child)
        _registered = True
