"""Watched functions: every call runs the profiling build, and their reports print when the
process exits (GRAPHC_PROFILE=1 for every function compiled; watch(f) for one)."""
import atexit
import sys
import threading

from .session import ProfiledFunction

_watched = []  # every function watch() made, in order (kept: their reports print at exit)
_lock = threading.Lock()
_atexit_registered = False


def watch(fn, at_exit=True):
    """A function that runs `fn`'s profiling build and times every call (the same results and
    updates as `fn`); its report() is the mean per call. at_exit: print that report when the
    process exits (as Theano's profile=True did)."""
    global _atexit_registered
    profiled = ProfiledFunction(fn)
    if at_exit:
        with _lock:
            _watched.append(profiled)
            if not _atexit_registered:
                atexit.register(print_reports)
                _atexit_registered = True
    return profiled


def watched():
    """The functions watch() made for the at-exit summary."""
    with _lock:
        return list(_watched)


def print_reports(file=None):
    """Print the report of every watched function that was called (what GRAPHC_PROFILE=1 prints
    at exit)."""
    file = file or sys.stderr
    for fn in watched():
        try:
            report = fn.report()
        except Exception as e:  # (at exit: one function's failure must not hide the others)
            print(f"graphc profile of {fn.name}: no report ({type(e).__name__}: {e})", file=file)
            continue
        if report is not None:
            print(report, file=file)
            print(file=file)


def _watch_compiled(fn):
    """The compiler's hook under GRAPHC_PROFILE=1: compiled-code functions come back watched."""
    if getattr(fn.program, "profiled", None) is None:
        return fn
    return watch(fn)


def watch_for_profile_keyword(fn):
    """graphc.function(..., profile=True): `fn` watched, its report printed at exit (once: a
    function GRAPHC_PROFILE=1 already watches is handed back as it is)."""
    if isinstance(fn, ProfiledFunction) and any(w is fn for w in watched()):
        return fn
    return watch(fn)


def install_from_environment():
    """Watch every function compiled from now on (GRAPHC_PROFILE=1 calls this at import)."""
    from ..compiler import finish_hooks
    if _watch_compiled not in finish_hooks:
        finish_hooks.append(_watch_compiled)
