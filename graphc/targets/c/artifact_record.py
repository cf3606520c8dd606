"""The artifact record as data: JSON, read as hostile input (never unpickled, never eval'd).

A record says how to run a cached library: which library (its key and sha256, and those of the
libraries it links), the runtime layout (output shapes as numbers, dim positions or expression
trees of a few sympy heads; constants as dtype, shape and base64 bytes), how arguments bind dims,
and which shared variables the program uses. It holds no names and no kernel Program: what shows
names (dumps, the source, AOT export) is rebuilt from the function's own graph when asked for.
"""
import base64
import json
import keyword
import re

import numpy as np
import sympy

FORMAT = 1
_HEX32 = re.compile(r"[0-9a-f]{32}\Z")
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_INT_LIMIT = 1 << 62
_MAX_DEPTH = 64
# Libraries the loader makes available before a cached program runs (the CUDA target's cuBLAS,
# which its programs look up by name): names from this set only.
LOADS = frozenset({"cublas"})
_HEADS = {"Add": sympy.Add, "Mul": sympy.Mul, "Pow": sympy.Pow, "floor": sympy.floor,
          "ceiling": sympy.ceiling, "Max": sympy.Max, "Min": sympy.Min, "Mod": sympy.Mod}


class Unencodable(Exception):
    """The record cannot be written as data (an expression head the codec does not know)."""


class _Invalid(Exception):
    pass


def encode_expr(expr):
    if expr.is_Integer:
        return ["int", int(expr)]
    if expr.is_Rational:
        return ["rat", int(expr.p), int(expr.q)]
    if expr.is_Symbol:
        return ["sym", expr.name]
    head = type(expr).__name__
    if head not in _HEADS:
        raise Unencodable(head)
    return [head] + [encode_expr(a) for a in expr.args]


def decode_expr(tree, depth=0):
    _require(isinstance(tree, list) and tree and depth < _MAX_DEPTH)
    head, args = tree[0], tree[1:]
    if head in ("int", "rat"):
        _require(len(args) == (1 if head == "int" else 2) and all(_is_int(a) for a in args))
        return sympy.Integer(args[0]) if head == "int" else sympy.Rational(args[0], args[1] or 1)
    if head == "sym":  # an identifier: sizes are compiled to Python by sympy.lambdify
        _require(len(args) == 1 and _is_name(args[0]))
        return sympy.Symbol(args[0], integer=True, positive=True)
    _require(head in _HEADS and args)
    if head == "Pow":  # a small exponent: a huge one is work, not a shape
        _require(len(args) == 2 and args[1][:1] == ["int"] and abs(args[1][1]) <= 64)
    return _HEADS[head](*[decode_expr(a, depth + 1) for a in args])


def _is_name(value):
    return isinstance(value, str) and value.isidentifier() and not keyword.iskeyword(value)


def _is_int(value):
    return type(value) is int and -_INT_LIMIT < value < _INT_LIMIT


def _require(condition):
    if not condition:
        raise _Invalid


def _dtype(text):
    _require(isinstance(text, str) and len(text) < 16)
    try:
        dtype = np.dtype(text)
    except TypeError:
        raise _Invalid from None
    _require(dtype.kind in "biufc" and not dtype.hasobject)
    return dtype


def encode(layout, lib_key, lib_sha256, links, arg_layout, shared_index, loads=()):
    """The record as JSON text (raises Unencodable)."""
    specs = []
    for dtype, spec in layout["out_specs"]:
        if dtype is None:
            specs.append([None, spec])
            continue
        specs.append([str(dtype), [s if isinstance(s, int) else
                                   ["dim", s[1]] if s[0] == "dim" else ["expr", encode_expr(s[1])]
                                   for s in spec]])
    consts = [{"dtype": v.dtype.str, "shape": list(v.shape),
               "data": base64.b64encode(np.ascontiguousarray(v).tobytes()).decode("ascii")}
              for v in layout["const_values"]]
    return json.dumps({"format": FORMAT, "lib_key": lib_key, "lib_sha256": lib_sha256,
                       "links": [list(link) for link in links], "arg_layout": arg_layout,
                       "shared_index": list(shared_index), "loads": sorted(loads),
                       "layout": {"n_externals": layout["n_externals"],
                                  "dim_names": list(layout["dim_names"]),
                                  "const_values": consts, "out_specs": specs}})


def decode(text):
    """The record in `text` (bytes), checked field by field; None when it is not a valid one."""
    try:
        record = json.loads(text)
        return _decode(record)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError, _Invalid):
        return None


def _decode(record):
    _require(isinstance(record, dict) and record.get("format") == FORMAT)
    lib_key, lib_sha = record["lib_key"], record["lib_sha256"]
    _require(isinstance(lib_key, str) and _HEX32.match(lib_key) is not None)
    _require(isinstance(lib_sha, str) and _HEX64.match(lib_sha) is not None)
    links = record["links"]
    _require(isinstance(links, list) and all(
        isinstance(l, list) and len(l) == 2 and isinstance(l[0], str) and isinstance(l[1], str)
        and _HEX64.match(l[1]) is not None for l in links))
    shared_index = record["shared_index"]
    _require(isinstance(shared_index, list) and all(_is_int(i) and i >= 0 for i in shared_index))
    loads = record.get("loads", [])
    _require(isinstance(loads, list) and all(isinstance(n, str) and n in LOADS for n in loads))
    layout = record["layout"]
    n_externals, dim_names = layout["n_externals"], layout["dim_names"]
    _require(_is_int(n_externals) and 0 <= n_externals < 1 << 20)
    _require(isinstance(dim_names, list) and all(_is_name(n) for n in dim_names))
    consts = [_decode_const(c) for c in layout["const_values"]]
    specs = [_decode_spec(s, len(dim_names)) for s in layout["out_specs"]]
    return {"lib_key": lib_key, "lib_sha256": lib_sha, "links": [tuple(l) for l in links],
            "arg_layout": record["arg_layout"], "shared_index": shared_index,
            "loads": loads,
            "layout": {"n_externals": n_externals, "dim_names": dim_names,
                       "const_values": consts, "out_specs": specs}}


def _decode_const(entry):
    dtype, shape = _dtype(entry["dtype"]), entry["shape"]
    _require(isinstance(shape, list) and len(shape) <= 32 and all(_is_int(d) and d >= 0
                                                                   for d in shape))
    data = base64.b64decode(entry["data"].encode("ascii"), validate=True)
    _require(len(data) == int(np.prod(shape, dtype=object)) * dtype.itemsize)
    return np.frombuffer(data, dtype).reshape(shape).copy()


def _decode_spec(entry, n_dims):
    _require(isinstance(entry, list) and len(entry) == 2)
    dtype, spec = entry
    if dtype is None:
        _require(_is_int(spec) and spec >= 0)
        return (None, spec)
    _require(isinstance(spec, list) and len(spec) <= 32)
    out = []
    for s in spec:
        if _is_int(s):
            _require(s >= 0)
            out.append(s)
        elif s[0] == "dim":
            _require(len(s) == 2 and _is_int(s[1]) and 0 <= s[1] < n_dims)
            out.append(("dim", s[1]))
        else:
            _require(s[0] == "expr" and len(s) == 2)
            out.append(("expr", decode_expr(s[1])))
    return (_dtype(dtype).name, tuple(out))
