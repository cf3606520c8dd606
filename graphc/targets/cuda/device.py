"""Device memory for the CUDA target: allocations and copies through graphc's device library
(templates/cuda/device_lib.cu.j2), and DeviceArray, a typed block of device memory.

On a GPU the library runs the CUDA runtime in pycuda's primary context (one context per
process); emulated (GRAPHC_CUDA_EMULATE=1) the same calls move host memory, so the logic of
residency, copies and ownership is exercised without a device."""
import ctypes
import functools
import threading
import weakref

import numpy as np

from ...errors import GraphcError
from . import toolchain


class DeviceError(GraphcError, RuntimeError):
    """A CUDA runtime call failed (out of device memory, a lost device)."""


_lock = threading.Lock()


@functools.lru_cache(maxsize=None)
def _library_for(mode):
    from ..c.cache import cached_library
    from .render_cuda import environment
    source = environment().get_template("cuda/device_lib.cu.j2").render()
    path, _, _ = cached_library([source], "graphc_cuda_device", area=("cuda",),
                                build=_build_one, key_material=toolchain.cache_key_material(),
                                suffix=".cu")
    lib = ctypes.CDLL(path)
    vp, sz, ip = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
    for name, args in (("gc_dev_count", [ctypes.POINTER(ip)]),
                       ("gc_dev_alloc", [ctypes.POINTER(vp), sz]), ("gc_dev_free", [vp]),
                       ("gc_dev_h2d", [vp, vp, sz]), ("gc_dev_d2h", [vp, vp, sz]),
                       ("gc_dev_d2d", [vp, vp, sz]), ("gc_dev_sync", [])):
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, ip
    lib.gc_dev_error_string.argtypes, lib.gc_dev_error_string.restype = [ip], ctypes.c_char_p
    return lib


def _build_one(source_paths, out_path, link):
    toolchain.build(source_paths[0], out_path, link)


def library():
    """The device library for the current mode (emulated or not), built on first use."""
    with _lock:
        return _library_for(toolchain.emulating())


def _check(rc, what):
    if rc != 0:
        text = library().gc_dev_error_string(rc).decode(errors="replace")
        raise DeviceError(f"{what} failed: {text} (CUDA error {rc})")


def sync():
    _check(library().gc_dev_sync(), "cudaDeviceSynchronize")


class DeviceArray:
    """A C-contiguous array in device memory. `get()` copies it to a new numpy array; `ptr` is
    its device address. Freed when the last reference goes (or owned by someone else when made
    with `owner`: a view of memory graphc did not allocate)."""

    __slots__ = ("shape", "dtype", "nbytes", "ptr", "_free", "__weakref__")

    def __init__(self, shape, dtype, ptr=None, owner=None):
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        self.nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        if ptr is None:
            lib = library()
            out = ctypes.c_void_p()
            _check(lib.gc_dev_alloc(ctypes.byref(out), self.nbytes),
                   f"allocating {self.nbytes} bytes of device memory")
            self.ptr = out.value
            self._free = weakref.finalize(self, lib.gc_dev_free, ctypes.c_void_p(self.ptr))
        else:
            self.ptr = int(ptr)
            self._free = owner  # keeps the owner alive; frees nothing

    @classmethod
    def from_host(cls, array):
        array = np.asarray(array, order="C")
        out = cls(array.shape, array.dtype)
        out.set(array)
        return out

    def set(self, array):
        """Copy a host array of this shape and dtype in."""
        # (not ascontiguousarray: it makes a 0-d array 1-d)
        array = np.asarray(array, dtype=self.dtype, order="C")
        if array.shape != self.shape:
            raise ValueError(f"DeviceArray.set: shape {array.shape} != {self.shape}")
        if self.nbytes:
            _check(library().gc_dev_h2d(self.ptr, array.ctypes.data, self.nbytes), "host-to-device copy")

    def copy_from(self, other):
        """Copy another device array of the same size in (on the device)."""
        if other.nbytes != self.nbytes:
            raise ValueError(f"DeviceArray.copy_from: {other.nbytes} bytes != {self.nbytes}")
        if self.nbytes:
            _check(library().gc_dev_d2d(self.ptr, other.ptr, self.nbytes), "device-to-device copy")

    def get(self):
        out = np.empty(self.shape, self.dtype)
        if self.nbytes:
            _check(library().gc_dev_d2h(out.ctypes.data, self.ptr, self.nbytes), "device-to-host copy")
        return out

    @property
    def size(self):
        return self.nbytes // self.dtype.itemsize

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def __cuda_array_interface__(self):
        # (CuPy, PyTorch and Numba read device memory through this; emulated it is host memory)
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self.ptr, False),
                "version": 3, "strides": None}

    def __repr__(self):
        where = "emulated device" if toolchain.emulating() else "device"
        return f"DeviceArray(shape={self.shape}, dtype={self.dtype.name}, {where} 0x{self.ptr:x})"


def device_view(value):
    """A DeviceArray for a device array from elsewhere (pycuda's GPUArray, anything with
    __cuda_array_interface__), or None for a host value. Non-contiguous ones are refused."""
    if isinstance(value, DeviceArray):
        return value
    gpudata = getattr(value, "gpudata", None)
    if gpudata is not None and hasattr(value, "shape") and hasattr(value, "dtype"):
        if not getattr(getattr(value, "flags", None), "c_contiguous", True):
            raise GraphcError("a pycuda GPUArray input must be C-contiguous")
        return DeviceArray(value.shape, value.dtype, ptr=int(gpudata), owner=value)
    iface = getattr(type(value), "__cuda_array_interface__", None) and \
        getattr(value, "__cuda_array_interface__", None)
    if isinstance(iface, dict):
        dtype = np.dtype(iface["typestr"])
        shape = tuple(iface["shape"])
        strides = iface.get("strides")
        if strides is not None and tuple(strides) != _c_strides(shape, dtype.itemsize):
            raise GraphcError("a device array input must be C-contiguous (its "
                              "__cuda_array_interface__ has strides); copy it first")
        return DeviceArray(shape, dtype, ptr=iface["data"][0], owner=value)
    return None


def _c_strides(shape, itemsize):
    strides, step = [], itemsize
    for d in reversed(shape):
        strides.append(step)
        step *= d
    return tuple(reversed(strides))

