"""Reader/writer for the IDX format used by MNIST and Fashion-MNIST.

IDX layout (all integers big-endian):
    magic: 2 zero bytes, 1 dtype-code byte, 1 byte = number of dims
    dims:  one uint32 per dim
    data:  prod(dims) items of the dtype, C order

Files may be gzipped; we detect that from the gzip magic bytes (1f 8b),
never from the file name, because renamed/decompressed copies are common.
"""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

__all__ = ["read_idx", "write_idx", "load_idx_images", "load_idx_labels"]

_GZIP_MAGIC = b"\x1f\x8b"

# IDX dtype codes -> big-endian numpy dtypes.
_CODE_TO_DTYPE = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_DTYPE_TO_CODE = {dt.newbyteorder("="): code for code, dt in _CODE_TO_DTYPE.items()}
_DTYPE_NAMES = {0x08: "uint8", 0x09: "int8", 0x0B: "int16", 0x0C: "int32",
                0x0D: "float32", 0x0E: "float64"}


def _read_bytes(path) -> bytes:
    """Return the file's contents, gunzipped if it starts with the gzip magic."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as e:
        # EOFError is what a cut-off download looks like.
        raise ValueError(f"{path}: corrupt or truncated gzip data ({e})") from e


def _describe_magic(code, ndim) -> str:
    if code is not None and ndim is not None:
        return f"0x{code << 8 | ndim:08x} ({_DTYPE_NAMES[code]}, {ndim} dims)"
    return "0x0000TTNN (TT = dtype code 08/09/0b/0c/0d/0e, NN = number of dims)"


def read_idx(path, expect_code: int | None = None,
             expect_ndim: int | None = None) -> np.ndarray:
    """Read any IDX file (gzipped or raw) into a native-endian numpy array.

    expect_code / expect_ndim, when given, are checked against the header so
    that e.g. passing a labels file where images are expected fails loudly.
    """
    path = os.fspath(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise ValueError(f"{path}: file too short for an IDX header "
                         f"({len(data)} bytes, need at least 4)")
    if data[0] != 0 or data[1] != 0 or data[2] not in _CODE_TO_DTYPE:
        raise ValueError(
            f"{path}: bad IDX magic number 0x{data[:4].hex()}; expected "
            f"{_describe_magic(expect_code, expect_ndim)} "
            "(is this really an MNIST-style idx*-ubyte file?)")
    code, ndim = data[2], data[3]
    want_code = code if expect_code is None else expect_code
    want_ndim = ndim if expect_ndim is None else expect_ndim
    if (code, ndim) != (want_code, want_ndim):
        raise ValueError(
            f"{path}: IDX magic 0x{code << 8 | ndim:08x} "
            f"({_DTYPE_NAMES[code]}, {ndim} dims); expected "
            f"{_describe_magic(want_code, want_ndim)}")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise ValueError(f"{path}: truncated IDX header ({len(data)} bytes, "
                         f"need {header_len} for {ndim} dims)")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, offset=4))
    dtype = _CODE_TO_DTYPE[code]
    n_items = int(np.prod(dims, dtype=np.int64))
    want = header_len + n_items * dtype.itemsize
    if len(data) != want:
        what = "truncated" if len(data) < want else "trailing garbage in"
        raise ValueError(f"{path}: {what} IDX file: header says shape {dims} "
                         f"{_DTYPE_NAMES[code]} = {want} bytes, file has {len(data)}")
    arr = np.frombuffer(data, dtype, n_items, offset=header_len).reshape(dims)
    # astype copies: gives a writable, native-endian array we own.
    return arr.astype(dtype.newbyteorder("="))


def load_idx_images(path) -> np.ndarray:
    """Read an idx3-ubyte image file -> uint8 array of shape (N, rows, cols)."""
    return read_idx(path, expect_code=0x08, expect_ndim=3)


def load_idx_labels(path) -> np.ndarray:
    """Read an idx1-ubyte label file -> uint8 array of shape (N,)."""
    return read_idx(path, expect_code=0x08, expect_ndim=1)


def write_idx(path, array, compress: bool | None = None) -> None:
    """Write `array` as an IDX file. Gzips when compress is True, or when
    compress is None and the path ends in '.gz'. The gzip header carries
    mtime=0 so the output is byte-for-byte reproducible."""
    path = os.fspath(path)
    arr = np.asarray(array)
    code = _DTYPE_TO_CODE.get(arr.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"write_idx: dtype {arr.dtype} has no IDX code; use one of "
                         f"{sorted(_DTYPE_NAMES.values())}")
    if arr.ndim > 255:
        raise ValueError("write_idx: IDX supports at most 255 dims")
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes()
    payload = header + np.ascontiguousarray(arr, _CODE_TO_DTYPE[code]).tobytes()
    if compress is None:
        compress = path.endswith(".gz")
    if compress:
        payload = gzip.compress(payload, compresslevel=9, mtime=0)
    with open(path, "wb") as f:
        f.write(payload)
