"""The four ways the host touches GPU memory, each counted (``counters.py``):

    device_buffer(size, dtype)   a new flat device buffer, uninitialised   (an allocation)
    to_device(host)              a new device buffer holding a copy of a contiguous host
                                 array                              (allocation, H2D, wait)
    to_host(buffer)              a host copy of a flat device buffer        (D2H, wait)
    synchronize()                wait until the GPU has run everything it was given

Everything else in the backend (``empty``, ``asarray``, ``to_numpy``, the scalars an
elementwise operation puts on the GPU) calls these, so the counters see every allocation,
copy and wait. The copies run on the default stream, where numba's copies are synchronous:
both directions wait for the kernels launched before them (counters.py says why).
"""

import numpy as np
from numba import cuda

from minimask.cuda.array import counters


def device_buffer(size, dtype):
    """A new uninitialised 1-d device array of ``size`` elements of ``dtype``."""
    dtype = np.dtype(dtype)
    counters.record_allocation(size * dtype.itemsize)
    return cuda.device_array(size, dtype=dtype)


def to_device(host):
    """A new 1-d device array holding a copy of the contiguous 1-d host array ``host``."""
    counters.record_allocation(host.nbytes)
    counters.record_host_to_device(host.nbytes)
    counters.record_sync()
    return cuda.to_device(host)


def to_host(buffer):
    """A new host array holding a copy of the 1-d device array ``buffer``."""
    counters.record_device_to_host(buffer.size * buffer.dtype.itemsize)
    counters.record_sync()
    return buffer.copy_to_host()


def synchronize():
    """Wait until every kernel launched so far has finished (``cuda.synchronize``): what a
    timing of GPU work must do before it reads the clock, since launches return at once."""
    counters.record_sync()
    cuda.synchronize()
