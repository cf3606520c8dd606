"""The fast call path: a CPython extension (templates/python/gc_dispatch.c) that checks the
arguments, binds the dims, allocates outputs, runs the program and applies the updates in C.

It is built once per machine and Python (cached beside the compiled programs). Any argument it
does not accept returns NotImplemented, and the Python path (runtime.checks) produces the error.
"""
import functools
import hashlib
import importlib.machinery
import importlib.util
import os
import subprocess
import tempfile
import threading

import numpy as np

from ...config import config
from .cache_trust import check_file, private_dir
from .templates_dir import templates_root


_build_lock = threading.Lock()


def prebuild_in_background():
    """Start building the extension while the first program compiles (both run gcc)."""
    if dispatch_module.cache_info().currsize == 0:
        threading.Thread(target=dispatch_module, daemon=True).start()


@functools.lru_cache(maxsize=None)
def _dispatch_module_locked():
    return _build_dispatch()


def dispatch_module():
    """The loaded gc_dispatch extension, or None if it cannot be built (the slow path works)."""
    with _build_lock:
        return _dispatch_module_locked()


dispatch_module.cache_info = _dispatch_module_locked.cache_info


def _build_dispatch():
    src = os.path.join(templates_root(), "python", "gc_dispatch.c")
    try:  # built when graphc was installed (setup.py), unless the source changed since
        from ... import gc_dispatch  # (a compiled extension: may be missing)
        if os.path.getmtime(gc_dispatch.__file__) >= os.path.getmtime(src):
            return gc_dispatch
    except (ImportError, OSError):
        pass
    with open(src, "rb") as fh:
        text = fh.read()
    import sysconfig  # here, not at the top: ~0.6 ms that only a build of the extension needs
    inc_py = sysconfig.get_paths()["include"]
    key = hashlib.sha256(text + inc_py.encode() + np.__version__.encode()).hexdigest()[:16]
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    directory = private_dir("dispatch")
    path = os.path.join(directory, f"gc_dispatch_{key}{suffix}")
    if not check_file(path):
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=suffix)
        os.close(fd)
        cmd = [config.cc, "-O2", "-shared", "-fPIC", f"-I{inc_py}", f"-I{np.get_include()}",
               src, "-o", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            os.unlink(tmp)
            return None
        os.chmod(tmp, 0o700)
        os.replace(tmp, path)
    loader = importlib.machinery.ExtensionFileLoader("gc_dispatch", path)
    spec = importlib.util.spec_from_file_location("gc_dispatch", path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def output_size_expressions(cprogram):
    """The output sizes that are expressions of the dims (a pool's or a conv's output rows of a
    symbolic image: floor((h - 2) / 2) + 1), as functions of the dims, in the order build_spec
    numbers them: the fast path gets their values as extra dims after the program's own, from
    the Caller's prebind (output_sizes_prebind)."""
    return [d[1] for dtype, spec, _ in cprogram.out_specs if dtype is not None
            for d in spec if not isinstance(d, int) and d[0] != "dim"]


def output_sizes_prebind(checker, size_fns):
    """The Caller's prebind for a program with output size expressions: the dims as the checker
    binds them, then each expression's value (None, the checked path runs and words the error,
    where one is negative or cannot be computed). In Python, ~6 us: the checked path it replaces
    took ~70 us a call (a symbolic image's max pool, 1 x 16 x 10 x 10)."""
    def prebind(args):
        dims = checker.prebind(args)
        if dims is None:
            return None
        try:
            sizes = [int(fn(*dims)) for fn in size_fns]
        except Exception:  # noqa: BLE001 - any failure: the checked path raises it
            return None
        if any(v < 0 for v in sizes):
            return None
        return dims + sizes
    return prebind


def build_spec(cprogram, checker, fgraph, single_output):
    """The int64 spec array gc_dispatch reads, or None when the fast path cannot serve."""
    # (dims computed from values, and checks of expressions of the dims, are done in Python
    # first: the Caller's prebind; so are output sizes that are expressions of the dims, given
    # to the fast path as dims numbered after the program's: output_size_expressions)
    syms = checker.symbols
    if len(syms) != cprogram.n_dims:  # same layout checked by the caller
        return None
    sym_index = {s: i for i, s in enumerate(syms)}
    n_sizes = len(output_size_expressions(cprogram))
    words = [len(fgraph.inputs), len(fgraph.shareds), len(cprogram.const_values),
             len(cprogram.out_specs), len(syms) + n_sizes, len(fgraph.update_targets),
             int(single_output)]
    next_size = len(syms)
    for dtype, shape in zip(checker.dtypes, checker.shapes):
        words += [dtype.num, len(shape)]
        for d in shape:
            words.append(d if isinstance(d, int) else -1 - sym_index[d])
    for dtype, spec, _ in cprogram.out_specs:
        if dtype is None:  # written in place into shared variable `spec`
            words += [1, spec, 0]
            continue
        words += [0, dtype.num, len(spec)]
        for d in spec:
            if isinstance(d, int):
                words.append(d)
            elif d[0] == "dim":
                words.append(-1 - d[1])
            else:  # an expression of the dims: the next extra dim (output_size_expressions)
                words.append(-1 - next_size)
                next_size += 1
    n = fgraph.n_user_outputs
    for j, sv in enumerate(fgraph.update_targets):
        words += [n + j, fgraph.shareds.index(sv)]
    return np.array(words, dtype=np.int64)
