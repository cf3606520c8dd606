"""Content-addressed build cache: the key is a hash of the source and the toolchain.

A second compile of the same graph (in any process) loads the cached library. Two processes
compiling the same graph at once take a file lock: one builds, the other waits and reuses, and
the library appears by an atomic rename, so nobody ever loads a half-written file.
"""
import fcntl
import hashlib
import os
import re
import tempfile

from ...config import config
from .runtime_build import host_cpu
from .toolchain import build_shared_library, cache_key_material


_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_FRESH_DIM = re.compile(r"\bd__d\d+\b")  # C name of a fresh dim (`None` in a shape): _d<counter>


def canonical_source(source):
    """The source with what does not change the machine code made canonical: comments (they
    carry variable ids and the function name) are dropped, and fresh dims, whose names come from
    a process-wide counter, are renamed in order of first use. The same graph built twice, in this
    process or another, then has the same key."""
    source = _COMMENT.sub("", source)
    names = {}
    return _FRESH_DIM.sub(lambda m: names.setdefault(m.group(0), f"d__gcfresh{len(names)}"), source)


def source_key(sources, link=()):
    h = hashlib.sha256()
    for path in link:  # the libraries linked in: a program is tied to the build of each
        h.update(os.path.abspath(path).encode() + b"\0")
    for source in sources:
        h.update(canonical_source(source).encode())
        h.update(b"\0")
    h.update(cache_key_material().encode())
    h.update(host_cpu().encode())
    return h.hexdigest()[:32]


def cached_library(sources, name="graphc", link=(), root=None):
    """Path of the library built from `sources` (a list of translation units) and linked with the
    libraries at the paths `link`, building it if needed, under `root` (default: the cache
    directory). Returns (path, hit)."""
    key = source_key(sources, link)
    directory = os.path.join(root or config.cache_dir, key[:2])
    os.makedirs(directory, exist_ok=True)
    lib_path = os.path.join(directory, f"{key}.so")
    if os.path.exists(lib_path):
        return lib_path, True
    with open(os.path.join(directory, f"{key}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if os.path.exists(lib_path):  # another process built it while we waited
                return lib_path, True
            src_paths = [os.path.join(directory, f"{key}.c" if len(sources) == 1 else f"{key}.{i}.c")
                         for i in range(len(sources))]
            for path, source in zip(src_paths, sources):
                with open(path, "w") as fh:
                    fh.write(source)
            fd, tmp = tempfile.mkstemp(dir=directory, suffix=".so.tmp")
            os.close(fd)
            try:
                build_shared_library(src_paths, tmp, link)
                # mkstemp made the file private (0600); the library is as readable as the
                # cache directory it lives in.
                os.chmod(tmp, 0o755 & os.stat(directory).st_mode)
                os.replace(tmp, lib_path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return lib_path, False
