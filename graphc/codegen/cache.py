"""Content-addressed build cache: the key is a hash of the source and the toolchain.

A second compile of the same graph (in any process) loads the cached library. Two processes
compiling the same graph at once take a file lock: one builds, the other waits and reuses, and
the library appears by an atomic rename, so nobody ever loads a half-written file.
"""
import fcntl
import hashlib
import os
import tempfile

from ..config import config
from .toolchain import build_shared_library, cache_key_material


def source_key(source):
    h = hashlib.sha256()
    h.update(source.encode())
    h.update(cache_key_material().encode())
    return h.hexdigest()[:32]


def cached_library(source, name="graphc"):
    """Path of the built library for `source`, building it if needed. Returns (path, hit)."""
    key = source_key(source)
    directory = os.path.join(config.cache_dir, key[:2])
    os.makedirs(directory, exist_ok=True)
    lib_path = os.path.join(directory, f"{key}.so")
    if os.path.exists(lib_path):
        return lib_path, True
    with open(os.path.join(directory, f"{key}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if os.path.exists(lib_path):  # another process built it while we waited
                return lib_path, True
            src_path = os.path.join(directory, f"{key}.c")
            with open(src_path, "w") as fh:
                fh.write(source)
            fd, tmp = tempfile.mkstemp(dir=directory, suffix=".so.tmp")
            os.close(fd)
            try:
                build_shared_library(src_path, tmp)
                os.replace(tmp, lib_path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return lib_path, False
