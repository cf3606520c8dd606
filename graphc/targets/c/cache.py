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

from .cache_trust import file_digest, private_dir, read_trusted, write_private
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


def source_key(sources, link=(), key_material=None):
    h = hashlib.sha256()
    for path in link:  # the libraries linked in: a program is tied to the build of each
        h.update(os.path.abspath(path).encode() + b"\0")
    for source in sources:
        h.update(canonical_source(source).encode())
        h.update(b"\0")
    h.update((cache_key_material() if key_material is None else key_material).encode())
    h.update(host_cpu().encode())
    return h.hexdigest()[:32]


def cached_library(sources, name="graphc", link=(), area=(), build=None, key_material=None,
                   suffix=".c"):
    """Path of the library built from `sources` (a list of translation units) and linked with the
    libraries at the paths `link`, building it if needed, in the cache directory `area` (a tuple of
    names below GRAPHC_CACHE_DIR). Returns (path, hit, sha256 of the library). Another toolchain
    (the CUDA target's) passes its `build(source_paths, out_path, link)`, the text its libraries
    depend on besides the source (`key_material`) and its sources' file `suffix`.

    Each library has its hash beside it ({key}.sha256): a library that does not match it (damaged,
    truncated, or left by a graphc before hashes) is rebuilt, never loaded."""
    key = source_key(sources, link, key_material)
    directory = private_dir(*area, key[:2])
    lib_path = os.path.join(directory, f"{key}.so")
    digest = _verified_digest(lib_path)
    if digest is not None:
        return lib_path, True, digest
    with open(os.path.join(directory, f"{key}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            digest = _verified_digest(lib_path)
            if digest is not None:  # another process built it while we waited
                return lib_path, True, digest
            src_paths = [os.path.join(directory, f"{key}{suffix}" if len(sources) == 1 else f"{key}.{i}{suffix}")
                         for i in range(len(sources))]
            for path, source in zip(src_paths, sources):
                write_private(path, source.encode())
            fd, tmp = tempfile.mkstemp(dir=directory, suffix=".so.tmp")
            os.close(fd)
            try:
                (build or build_shared_library)(src_paths, tmp, link)
                # The linker made the file as the umask says; the library is as readable as the
                # cache directory it lives in and writable by this user alone.
                os.chmod(tmp, 0o755 & os.stat(directory).st_mode)
                with open(tmp, "rb") as fh:
                    digest = hashlib.sha256(fh.read()).hexdigest()
                # The hash first: a reader that sees the new library also sees its hash (a reader
                # between the two sees a mismatch, takes the lock and waits for us).
                write_private(_digest_path(lib_path), digest.encode())
                os.replace(tmp, lib_path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return lib_path, False, digest


def _digest_path(lib_path):
    return lib_path[:-len(".so")] + ".sha256"


def _verified_digest(lib_path):
    """The library's hash when the file exists and matches the hash recorded beside it, else
    None (missing or damaged: to be built)."""
    recorded = read_trusted(_digest_path(lib_path))
    if recorded is None:
        return None
    recorded = recorded.decode("ascii", "replace").strip()
    return recorded if file_digest(lib_path) == recorded else None
