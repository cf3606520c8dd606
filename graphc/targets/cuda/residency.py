"""Where a shared variable's current value lives, for variables that CUDA functions use.

A shared variable is plain host state (`_value`, a numpy array) until a CUDA function is made
with it; then its class becomes DeviceResident, which keeps up to two copies: the host array and a
DeviceArray, each marked current or stale. A CUDA call uses (and updates) the device copy and
uploads only a stale one; a CPU function, get_value() and pickling read `_value`, which downloads
a stale host copy. So a variable used by CPU and CUDA functions has one value, and each side sees
the other's updates, with a copy only when the side that changed changes.

Every CPU access to `_value` may write in place (compiled CPU updates do), so it marks the device
copy stale; get_value() reads without doing so. All of this runs under the variable's lock (the
callers hold it: Function calls, get_value, set_value)."""
import numpy as np

from ...ir.graph import SharedVariable
from .device import DeviceArray


class DeviceResident(SharedVariable):
    """A shared variable whose value may live on the device (see the module doc)."""

    @property
    def _value(self):
        d = self.__dict__
        if not d["_host_current"]:
            d["_host"] = d["_dev"].get()
            d["_host_current"] = True
        d["_dev_current"] = False  # the caller may write the host array in place
        return d["_host"]

    @_value.setter
    def _value(self, value):
        d = self.__dict__
        d["_host"], d["_host_current"], d["_dev_current"] = value, True, False

    def get_value(self, borrow=False):
        with self._lock:
            host = self._host_copy()
            return host if borrow else host.copy()

    def _host_copy(self):
        """The current value on the host, leaving the device copy current too."""
        d = self.__dict__
        if not d["_host_current"]:
            d["_host"] = d["_dev"].get()
            d["_host_current"] = True
        return d["_host"]

    def device_value(self):
        """The current value as a DeviceArray (uploaded when stale); the caller holds the lock."""
        d = self.__dict__
        if not d["_dev_current"]:
            dev = d["_dev"]
            if dev is None:
                dev = d["_dev"] = DeviceArray(self.type.shape, self.dtype)
            dev.set(d["_host"])
            d["_dev_current"] = True
        return d["_dev"]

    def device_written(self, new=None):
        """After a CUDA call updated the value on the device: in place, or into `new` (which the
        variable now owns). Returns the DeviceArray it gave up (None for in place)."""
        d = self.__dict__
        old = None
        if new is not None:
            old, d["_dev"] = d["_dev"], new
        d["_dev_current"], d["_host_current"] = True, False
        return old

    def where(self):
        """'host', 'device' or 'both': where the current value is (for tests and users)."""
        d = self.__dict__
        return {(True, False): "host", (False, True): "device"}.get(
            (d["_host_current"], d["_dev_current"]), "both")

    def __getstate__(self):
        state = super().__getstate__()
        state["_value"] = self._host_copy()
        for key in ("_host", "_dev", "_host_current", "_dev_current"):
            state.pop(key, None)
        return state

    def __reduce_ex__(self, protocol):
        # Pickled as a plain shared variable: its device copy belongs to this process.
        return _plain_shared, (), self.__getstate__()


def _plain_shared():
    return SharedVariable.__new__(SharedVariable)


def make_resident(sv):
    """Let `sv` live on the device from now on (idempotent)."""
    if isinstance(sv, DeviceResident):
        return sv
    with sv._lock:
        host = sv.__dict__.pop("_value")
        sv.__class__ = DeviceResident
        sv.__dict__.update(_host=np.asarray(host), _dev=None, _host_current=True,
                           _dev_current=False)
    return sv
