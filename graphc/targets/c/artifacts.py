"""Warm compiles: the compiled result of a graph is cached under a signature of the graph as the
user built it, so compiling the same graph again (in any process) skips optimization, lowering
and rendering and only loads the library. Records are JSON (artifact_record.py).

The signature covers the ops and their parameters, the graph structure, the input types, shared
and constant types and values' hashes, the settings that change code, and a hash of graphc's
own compiler sources and templates (a new graphc never reuses an old artifact).
"""
import functools
import hashlib
import os
import re

from ...config import config
from ...ir.graph import Constant, SharedVariable
from ...ir.inner_graph import InnerGraph
from ...passes.manager import pipeline
from . import artifact_record
from .cache_trust import parse_trusted, private_dir, write_private
from .templates_dir import templates_root

_FRESH = re.compile(r"\b_[dslt]\d+\b")  # fresh dims, and value dims (ir/value_dims.py)


@functools.lru_cache(maxsize=None)
def _compiler_fingerprint():
    """What the compiler's own sources are: each file's name, size and modification time (an
    edited file changes them; reading every file cost a warm compile ~5 ms per process)."""
    h = hashlib.sha256()
    pkg = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    roots = [os.path.join(pkg, d) for d in ("ir", "passes", "codegen", "targets", "runtime")]
    roots += [os.path.join(pkg, "grad.py"), os.path.join(pkg, "compiler.py"), templates_root()]
    for root in roots:
        if os.path.isfile(root):
            h.update(_file_stamp(root))
            continue
        for dirpath, _, files in sorted(os.walk(root)):
            for f in sorted(files):
                if f.endswith((".py", ".j2", ".h", ".c")):
                    h.update(_file_stamp(os.path.join(dirpath, f)))
    return h.hexdigest()


def _file_stamp(path):
    st = os.stat(path)
    return f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode()


def graph_signature(fgraph, backend, opt_level):
    text = signature_text(fgraph, backend, opt_level)
    return hashlib.sha256((text + _compiler_fingerprint()).encode()).hexdigest()[:32]


def signature_text(fgraph, backend, opt_level):
    ids, lines = {}, []

    def ref(v):
        if v in ids:
            return ids[v]
        if v in fgraph.inputs:
            ids[v] = f"in{fgraph.inputs.index(v)}"
            lines.append(f"{ids[v]} {v.type}")
        elif isinstance(v, SharedVariable):
            ids[v] = f"sh{len(ids)}"
            lines.append(f"{ids[v]} {v.type}")
        elif isinstance(v, Constant):
            ids[v] = f"c{len(ids)}"
            lines.append(f"{ids[v]} {v.type} {hashlib.sha1(v.data.tobytes()).hexdigest()}")
        else:
            raise KeyError(v)
        return ids[v]

    for k, v in enumerate(fgraph.inputs):
        ref(v)
    for n, node in enumerate(fgraph.nodes):
        args = ",".join(ref(i) for i in node.inputs)
        props = _key(node.op._props())
        lines.append(f"{type(node.op).__name__}{props}({args})")
        for j, o in enumerate(node.outputs):
            ids[o] = f"n{n}.{j}"
    lines.append("outputs " + ",".join(ref(o) for o in fgraph.outputs))
    lines.append("updates " + ",".join(ref(s) for s in fgraph.update_targets))
    lines.append(f"{backend} {opt_level} {config.floatX} {' '.join(config.extra_cflags)} {config.cc}")
    lines.append("passes " + ",".join(pipeline(opt_level, config.disabled_passes)))
    # Settings read from the environment can steer code generation (GRAPHC_CONV_ALGO, ...).
    lines.append(" ".join(f"{k}={v}" for k, v in sorted(os.environ.items())
                          if k.startswith("GRAPHC_") and k not in ("GRAPHC_DUMP", "GRAPHC_CACHE_DIR")))
    text = "\n".join(lines)
    # Fresh dims (and the start/length dims of run-time slices) are numbered by creation order,
    # which differs between processes and between two builds of one graph.
    names = {}
    return _FRESH.sub(lambda m: names.setdefault(m.group(0), f"_f{len(names)}"), text)


def _key(value):
    """A stable text for op parameters. sympy objects are walked by hand: their printers are
    slow to load and the signature is on the warm-compile path."""
    import sympy
    if isinstance(value, InnerGraph):  # by structure: names and object identities differ
        return f"InnerGraph:{value.signature()}"
    if isinstance(value, sympy.Basic):
        return _sympy_key(value)
    if isinstance(value, (tuple, list)):
        return "(" + ",".join(_key(v) for v in value) + ")"
    return repr(value)


@functools.lru_cache(maxsize=65536)
def _sympy_key(value):
    # (remembered: a net's ops repeat the same scalar expressions and sizes, each walked once;
    # equal sympy objects have equal structure, so equal texts)
    if value.is_Symbol:
        return value.name
    if value.is_Rational:  # (p and q: str() of a number runs the printer, ~0.3 ms)
        return f"{type(value).__name__}:{value.p}/{value.q}"
    if value.is_Number:
        return f"{type(value).__name__}:{value}"
    return type(value).__name__ + "(" + ",".join(_key(a) for a in value.args) + ")"


def _path(key):
    return os.path.join(private_dir("artifacts", key[:2]), f"{key}.json")


def save(key, text):
    """Keep the record `text` (artifact_record.encode) under the graph signature `key`."""
    write_private(_path(key), text.encode())


def load(key):
    """The record kept under `key` (artifact_record.decode), or None: missing or not a valid
    record (a damaged one is rebuilt and replaced). A record in a place another user could have
    written raises CacheDirError instead of being believed."""
    return parse_trusted(_path(key), artifact_record.decode)
