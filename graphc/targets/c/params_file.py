"""The graphc parameter file (<name>.params of an AOT export): writer and a reader that treats
its input as hostile (every length and count is checked against the bytes that are there).

Little-endian throughout: magic "GCPARAMS", u32 version (1), u32 count, then per entry:
u32 name length, the name (UTF-8, no NUL), u32 dtype code, u32 ndim, i64 shape[ndim],
u64 nbytes, zero padding up to the next multiple of 64 bytes from the start of the file,
then the nbytes of data in C order. The C loader in templates/c/aot_wrapper.j2 reads the same.
"""
import os
import struct
from collections import OrderedDict

import numpy as np

from ...errors import GraphcError, GraphcTypeError

PARAMS_MAGIC = b"GCPARAMS"
PARAMS_VERSION = 1
PARAMS_ALIGN = 64
# dtype codes shared by the parameter file and the C header (<NAME>_FLOAT32, ...).
DTYPE_CODES = {"float32": 1, "float64": 2, "int32": 3, "int64": 4, "bool": 5}
_CODE_DTYPES = {v: k for k, v in DTYPE_CODES.items()}
MAX_NDIM = 32  # <NAME>_MAX_NDIM in the header
_MAX_NAME = 1023  # the C loader's name buffer


class ParamsFileError(GraphcError, ValueError):
    """A parameter file that is not a well-formed graphc parameter file."""


def save_params(path, params):
    """Write {name: array} in the graphc parameter format (documented in every exported header)."""
    if not hasattr(params, "items"):
        raise GraphcTypeError(f"save_params: params must be a dict {{name: array}}, got "
                              f"{type(params).__name__}")
    out = bytearray(PARAMS_MAGIC + struct.pack("<II", PARAMS_VERSION, len(params)))
    for name, value in params.items():
        if not isinstance(name, str) or not name or "\0" in name:
            raise GraphcTypeError(f"save_params: parameter name {name!r} must be a non-empty "
                                  "string without NUL; use the shared variable's name")
        raw = name.encode()
        if len(raw) > _MAX_NAME:
            raise GraphcTypeError(f"save_params: parameter name {name[:40]!r}... is "
                                  f"{len(raw)} bytes; at most {_MAX_NAME} are allowed")
        a = np.asarray(value, order="C")  # (ascontiguousarray would make a 0-d array 1-d)
        if a.dtype.name not in DTYPE_CODES:
            raise GraphcTypeError(f"save_params: {name}: unsupported dtype {a.dtype.name} "
                                  f"(supported: {', '.join(DTYPE_CODES)})")
        if a.ndim > MAX_NDIM:
            raise GraphcTypeError(f"save_params: {name}: rank {a.ndim}; at most {MAX_NDIM}")
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        out += struct.pack("<I", len(raw)) + raw
        out += struct.pack("<II", DTYPE_CODES[a.dtype.name], a.ndim)
        out += struct.pack(f"<{a.ndim}q", *a.shape)
        out += struct.pack("<Q", a.nbytes)
        out += b"\0" * (-len(out) % PARAMS_ALIGN)
        out += a.tobytes()
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(out)
    os.replace(tmp, path)


def load_params(path):
    """Read a graphc parameter file: an OrderedDict name -> numpy array. A malformed file raises
    ParamsFileError naming the file, the entry and what is wrong."""
    with open(path, "rb") as fh:
        data = fh.read()
    return parse_params(data, str(path))


def parse_params(data, source="<bytes>"):
    """The entries of a parameter file's bytes (see load_params)."""
    reader = _Reader(data, source)
    if reader.take(8, "the magic") != PARAMS_MAGIC:
        raise ParamsFileError(f"{source}: not a graphc parameter file (no {PARAMS_MAGIC.decode()} "
                              "magic); pass a .params file written by graphc")
    version, count = reader.unpack("<II", "the header")
    if version != PARAMS_VERSION:
        raise ParamsFileError(f"{source}: parameter file version {version}; this graphc reads "
                              f"version {PARAMS_VERSION}")
    out = OrderedDict()
    for e in range(count):
        where = f"entry {e}"
        (n,) = reader.unpack("<I", where)
        if n == 0 or n > _MAX_NAME:
            raise ParamsFileError(f"{source}: {where}: bad name length {n} (1..{_MAX_NAME})")
        raw = reader.take(n, where)
        try:
            name = raw.decode()
        except UnicodeDecodeError:
            raise ParamsFileError(f"{source}: {where}: the name is not UTF-8 ({raw[:40]!r})") \
                from None
        where = f"entry {e} ({name!r})"
        if name in out:
            raise ParamsFileError(f"{source}: parameter {name!r} appears twice")
        code, ndim = reader.unpack("<II", where)
        if code not in _CODE_DTYPES:
            raise ParamsFileError(f"{source}: {where}: unknown dtype code {code} (known: "
                                  f"{', '.join(f'{c} {d}' for c, d in _CODE_DTYPES.items())})")
        if ndim > MAX_NDIM:
            raise ParamsFileError(f"{source}: {where}: bad rank {ndim} (at most {MAX_NDIM})")
        shape = reader.unpack(f"<{ndim}q", where)
        (nbytes,) = reader.unpack("<Q", where)
        dtype = np.dtype(_CODE_DTYPES[code])
        expected = _checked_nbytes(shape, dtype.itemsize)
        if expected is None or expected != nbytes:
            raise ParamsFileError(f"{source}: {where}: shape {list(shape)} of {dtype.name} does "
                                  f"not match its byte count {nbytes}")
        reader.take(-reader.pos % PARAMS_ALIGN, where)
        body = reader.take(nbytes, where)
        out[name] = np.frombuffer(body, dtype.newbyteorder("<")).reshape(shape) \
            .astype(dtype.newbyteorder("="))
    return out


def _checked_nbytes(shape, itemsize):
    """The byte size of an array of `shape`, or None for a negative dim or a shape numpy cannot
    make (the product of the non-zero dims times the item size over int64, even if a dim is 0)."""
    bound = itemsize
    for d in shape:
        if d < 0:
            return None
        bound *= max(d, 1)
        if bound > 2**63 - 1:
            return None
    return 0 if 0 in shape else bound


class _Reader:
    """Bytes read front to back; running off the end is a ParamsFileError, never struct.error."""

    def __init__(self, data, source):
        self.data, self.source, self.pos = data, source, 0

    def take(self, n, where):
        if n > len(self.data) - self.pos:
            raise ParamsFileError(f"{self.source}: the file is truncated (in {where}, at byte "
                                  f"{self.pos} of {len(self.data)}); write it again")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt, where):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), where))
