"""The build cache holds code graphc runs (libraries, compiled templates, the cffi module) and
records it believes: only a place that no one but this user can write is trusted with them.

Every directory graphc uses in the cache comes from private_dir(): created 0700, and refused with
a CacheDirError (naming GRAPHC_CACHE_DIR and what to do) when it is not a directory, belongs to
another user, or group/others can write it. A file read from the cache is checked the same way
(read_trusted, check_file) before its content is used.
"""
import hashlib
import os
import stat
import tempfile

from ...config import config
from ...errors import GraphcError


class CacheDirError(GraphcError, OSError):
    """The build cache directory (GRAPHC_CACHE_DIR) or a file in it cannot be trusted or used."""


_checked = set()  # directories checked in full in this process (later: one stat each)


def _advice(root):
    return (f"graphc keeps compiled code in GRAPHC_CACHE_DIR (now {root!r}); set GRAPHC_CACHE_DIR "
            "to a directory of your own that only you can write")


def _check_dir(path, root):
    try:
        st = os.stat(path)
    except OSError as e:
        raise CacheDirError(f"cache directory {path!r} cannot be used: {e.strerror}. "
                            + _advice(root)) from None
    if not stat.S_ISDIR(st.st_mode):
        raise CacheDirError(f"cache directory {path!r} is not a directory. " + _advice(root))
    _check_owner(path, st, root, "directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise CacheDirError(f"cache directory {path!r} is not writable by this user. "
                            + _advice(root))


def _check_owner(path, st, root, what):
    if st.st_uid != os.geteuid():
        raise CacheDirError(f"cache {what} {path!r} belongs to another user (uid {st.st_uid}); "
                            "graphc would run code from it. " + _advice(root))
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise CacheDirError(f"cache {what} {path!r} can be written by group or others (mode "
                            f"{stat.S_IMODE(st.st_mode):o}); graphc would run code from it. "
                            f"Run `chmod go-w {path}`, or: " + _advice(root))


def _make(path, root):
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as e:
        raise CacheDirError(f"cannot create the cache directory {path!r}: {e.strerror}. "
                            + _advice(root)) from None


def private_dir(*parts):
    """The cache directory `parts` below GRAPHC_CACHE_DIR, created (0700) and checked."""
    root = config.cache_dir
    path = os.path.join(root, *parts)
    key = (root,) + parts
    if key in _checked:  # a stat or two: it may have been removed or opened up since
        for directory in ((root, path) if parts else (root,)):
            try:
                st = os.stat(directory)
            except FileNotFoundError:  # removed since: made again
                _checked.discard(key)
                return private_dir(*parts)
            if not stat.S_ISDIR(st.st_mode):
                _check_dir(directory, root)  # raises the full message
            _check_owner(directory, st, root, "directory")
        return path
    if "$" in root:
        # The dynamic loader expands $ORIGIN, $LIB and $PLATFORM in the library paths that a
        # program records for the libraries it links.
        raise CacheDirError(f"cache directory {root!r} contains '$', which the dynamic loader "
                            "would expand in library paths. " + _advice(root))
    parent = os.path.dirname(os.path.abspath(root))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise CacheDirError(f"cannot create {parent!r}: {e.strerror}. " + _advice(root)) from None
    current = root
    _make(current, root)
    _check_dir(current, root)
    for part in parts:
        current = os.path.join(current, part)
        _make(current, root)
        _check_dir(current, root)
    _checked.add(key)
    return path


def check_file(path):
    """Raise CacheDirError when the file at `path` is not one this user alone could have written;
    False when there is no such file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    _check_owner(path, st, config.cache_dir, "file")
    return True


def _open_trusted(path):
    """(open file, its stat) for the cache file at `path`, or None when it is missing or not a
    regular file; raises CacheDirError when another user could have written it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    fh = os.fdopen(fd, "rb")
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        fh.close()
        return None
    try:
        _check_owner(path, st, config.cache_dir, "file")
    except CacheDirError:
        fh.close()
        raise
    return fh, st


def read_trusted(path):
    """The bytes of the cache file at `path` (None when missing), checked as check_file does on
    the opened file itself."""
    opened = _open_trusted(path)
    if opened is None:
        return None
    with opened[0] as fh:
        return fh.read()


# (what, device, inode, size, mtime, ctime) -> result: a file is hashed or parsed once per
# process while it stays the same file (ctime cannot be set back by a user).
_memo = {}


def _memoized(path, what, compute):
    opened = _open_trusted(path)
    if opened is None:
        return None
    fh, st = opened
    with fh:
        key = (what, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if key not in _memo:
            if len(_memo) > 4096:
                _memo.clear()
            _memo[key] = compute(fh.read())
        return _memo[key]


def file_digest(path):
    """sha256 (hex) of the cache file at `path`, or None when it is missing."""
    return _memoized(path, "sha256", lambda data: hashlib.sha256(data).hexdigest())


def parse_trusted(path, parse):
    """parse(bytes of the cache file at `path`), or None when it is missing; checked as
    read_trusted does, and parsed once per process while the file stays the same."""
    return _memoized(path, parse, parse)


def write_private(path, data):
    """Write `data` (bytes) to `path` atomically, readable and writable by this user only."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
