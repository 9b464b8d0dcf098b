"""The caching pool as numba's device memory manager: an EMM plugin (External Memory
Management, numba-cuda's interface for memory managers of other libraries).

numba creates one memory manager per CUDA context, of the class given to
``numba.cuda.set_memory_manager``, and asks it for every device allocation:

    memalloc(nbytes)   -> a MemoryPointer that owns the memory; numba calls its finalizer
                          when the last array (or view) using it is gone
    initialize()       once the context is ready (may be called more than once)
    reset()            when the context is closed: free everything
    get_memory_info()  (free, total) bytes of the device
    get_ipc_handle(m)  for sharing an allocation with another process
    interface_version  1, the version of the interface this class implements

``CachingMemoryManager`` answers ``memalloc`` from a ``CachingPool`` (caching_pool.py)
over ``cuMemAlloc`` / ``cuMemFree``, and its finalizers give the block back to the pool,
not to the driver. It follows numba's own manager (``NumbaCUDAMemoryManager``) in the
rest: an ``AutoFreePointer`` (freed when its reference count drops to 0) kept alive in
``self.allocations`` until its finalizer runs, ``own()`` handed to numba, and the pinned
and mapped host memory left to numba's ``HostOnlyCUDAMemoryManager`` base class.

Why reuse is safe: a block returns to the pool while kernels queued before may still
read it, and the next allocation may hand it to new work at once. minimask queues every
kernel and every copy on the default stream, which runs them in order, so the new work
starts only after the old is done. (Work on other streams would need the pool to wait
for them first, as PyTorch's allocator does with events.)

Only importable with numba's real CUDA driver: the simulator has no EMM interface
(``allocator.py`` chooses the allocator and never imports this file there).
"""

import ctypes
import weakref

from numba import cuda
from numba.cuda.cudadrv.driver import AutoFreePointer, CudaAPIError, binding, driver

from minimask.cuda.array.caching_pool import CachingPool

_EMM_INTERFACE_VERSION = 1  # the EMM plugin interface this class implements

# the pool of the most recently initialised context (minimask uses one GPU), for
# allocator.memory_stats and allocator.empty_cache
active_pool = None


def driver_allocate(nbytes):
    """The integer address of ``nbytes`` of new device memory (``cuMemAlloc``); the
    driver's out-of-memory error becomes ``MemoryError``, which ``CachingPool`` handles."""
    try:
        return int(driver.cuMemAlloc(nbytes))
    except CudaAPIError as error:
        if error.code == binding.CUresult.CUDA_ERROR_OUT_OF_MEMORY:
            raise MemoryError(
                f"CUDA out of memory: {nbytes} bytes more do not fit on the GPU, even with "
                "minimask's cache of freed blocks emptied"
            ) from error
        raise


def driver_free(address):
    """Give the device memory at ``address`` back to the driver (``cuMemFree``)."""
    driver.cuMemFree(binding.CUdeviceptr(address))


class CachingMemoryManager(cuda.GetIpcHandleMixin, cuda.HostOnlyCUDAMemoryManager):
    """numba's device memory manager for one context, served by a ``CachingPool``.

    ``raw_allocate`` and ``raw_free`` are the driver calls the pool is given (a subclass
    may give others). ``get_ipc_handle`` is numba's (``GetIpcHandleMixin``): a pool block
    is a whole driver allocation, which is what it expects.
    """

    raw_allocate = staticmethod(driver_allocate)
    raw_free = staticmethod(driver_free)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)  # numba's host memory bookkeeping
        self.pool = CachingPool(self.raw_allocate, self.raw_free)

    def initialize(self):
        """Make this context's pool the one ``minimask.cuda.memory_stats`` reports."""
        global active_pool
        active_pool = self.pool

    def memalloc(self, size):
        """A pointer to ``size`` bytes of device memory, from the pool. Its finalizer
        (run by numba when no array uses the memory any more) returns it to the pool."""
        address, _ = self.pool.allocate(size)
        memory = AutoFreePointer(
            weakref.proxy(self.context),
            ctypes.c_void_p(address),
            size,
            finalizer=_return_to_pool(self.allocations, self.pool, address),
        )
        self.allocations[address] = memory
        return memory.own()

    def get_memory_info(self):
        """(free, total) bytes of the device, as the driver sees them: blocks in the
        pool's cache count as used."""
        free, total = driver.cuMemGetInfo()
        return cuda.MemoryInfo(free=free, total=total)

    def reset(self):
        """Free all memory of the context, which numba is closing: the live blocks go to
        the cache (their finalizers run as ``allocations`` is cleared), then the cache
        goes back to the driver."""
        super().reset()
        self.pool.empty_cache()

    @property
    def interface_version(self):
        return _EMM_INTERFACE_VERSION


def _return_to_pool(allocations, pool, address):
    """The finalizer of the block at ``address``. It holds the two containers, not the
    manager, as numba's own finalizers do (no reference cycle through the manager)."""

    def finalize():
        allocations.pop(address, None)
        pool.defer_free(address)  # a finalizer may run in the middle of a pool call

    return finalize
