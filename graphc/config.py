"""Process-wide settings, read once from the environment and changeable at run time."""
import os
import warnings
from dataclasses import dataclass, field


def _default_cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "graphc")


def _env_count(name):
    """A non-negative integer setting; anything else is ignored with a warning naming it (a
    mistyped thread count must not make `import graphc` fail)."""
    text = os.environ.get(name) or "0"
    try:
        value = int(text)
        if value >= 0:
            return value
    except ValueError:
        pass
    warnings.warn(f"{name}={text!r} is not a non-negative integer; using the default (0: as many "
                  "as this process has CPUs)", stacklevel=2)
    return 0


@dataclass
class Config:
    floatX: str = os.environ.get("GRAPHC_FLOATX", "float32")
    # Where compiled libraries are kept, keyed by the hash of their source and flags.
    cache_dir: str = os.environ.get("GRAPHC_CACHE_DIR") or _default_cache_dir()
    # Directory to write dumps of every compiled function to (None: no dumps).
    dump_dir: str | None = os.environ.get("GRAPHC_DUMP") or None
    # The target a function compiles for: GRAPHC_TARGET (cpu, c, cuda, py), or its older name.
    backend: str = os.environ.get("GRAPHC_TARGET") or os.environ.get("GRAPHC_BACKEND", "c")
    opt_level: str = os.environ.get("GRAPHC_OPT", "O3")
    # Validate every memory plan with the independent checker (the tests turn this on).
    check_plans: bool = os.environ.get("GRAPHC_CHECK_PLANS", "") not in ("", "0")
    # Check the graph after every optimization pass (graphc.ir.verify; the tests turn this on).
    verify_graphs: bool = os.environ.get("GRAPHC_VERIFY_GRAPHS", "") not in ("", "0")
    # Passes left out of every pipeline, by name (GRAPHC_DISABLE_PASSES=fuse_gemm,fuse_siblings).
    disabled_passes: list = field(default_factory=lambda: [
        p.strip() for p in os.environ.get("GRAPHC_DISABLE_PASSES", "").split(",") if p.strip()])
    cc: str = os.environ.get("CC", "gcc")
    # Translation units compiled at once (0: as many as this process has CPUs).
    compile_jobs: int = _env_count("GRAPHC_COMPILE_JOBS")
    extra_cflags: list = field(default_factory=lambda: os.environ.get("GRAPHC_CFLAGS", "").split())


config = Config()
