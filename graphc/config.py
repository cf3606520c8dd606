"""Process-wide settings, read once from the environment and changeable at run time."""
import os
from dataclasses import dataclass, field


def _default_cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "graphc")


@dataclass
class Config:
    floatX: str = os.environ.get("GRAPHC_FLOATX", "float32")
    # Where compiled libraries are kept, keyed by the hash of their source and flags.
    cache_dir: str = os.environ.get("GRAPHC_CACHE_DIR") or _default_cache_dir()
    # Directory to write dumps of every compiled function to (None: no dumps).
    dump_dir: str | None = os.environ.get("GRAPHC_DUMP") or None
    backend: str = os.environ.get("GRAPHC_BACKEND", "c")
    opt_level: str = os.environ.get("GRAPHC_OPT", "O3")
    # Validate every memory plan with the independent checker (the tests turn this on).
    check_plans: bool = os.environ.get("GRAPHC_CHECK_PLANS", "") not in ("", "0")
    cc: str = os.environ.get("CC", "gcc")
    # Translation units compiled at once (0: as many as this process has CPUs).
    compile_jobs: int = int(os.environ.get("GRAPHC_COMPILE_JOBS") or 0)
    extra_cflags: list = field(default_factory=lambda: os.environ.get("GRAPHC_CFLAGS", "").split())


config = Config()
