"""A caching pool of device memory: PyTorch's CUDA caching allocator in miniature.

Asking the CUDA driver for memory (``cuMemAlloc``) and giving it back (``cuMemFree``)
is slow, and ``cuMemFree`` waits for the GPU to finish its work first. A training step
allocates and frees the same sizes over and over (activations, gradients, im2col
matrices), so the pool keeps every freed block and hands it out again:

    allocate(n):  size = size_class(n)
                  a cached block of that size?  take it        (a hit)
                  else                          raw_allocate(size)   (a miss)
    free(block):  keep it in the cache under its size          (no driver call)
    empty_cache(): raw_free every cached block                 (back to the driver)

Size classes. A request is rounded up to a multiple of 512 bytes up to 1 MiB, and to a
multiple of 2 MiB above (PyTorch's two boundaries: its small blocks are multiples of 512
bytes, its large requests get 2 MiB-granular segments). The rounding lets requests of
nearby sizes share blocks (a batch of images of slightly different sizes); a block is
reused only for a request of exactly its class, never split or merged (PyTorch splits
large blocks; minimask keeps the lesson short), so the waste is below 512 bytes for a
small block and below 2 MiB, a small share of a request over 1 MiB, for a large one.

When the driver is out of memory, the pool gives the whole cache back and tries once
more (PyTorch does the same), so cached blocks never cause an out-of-memory error.

The pool itself touches no GPU: it is given the two driver calls, ``raw_allocate(nbytes)
-> address`` (raising ``MemoryError`` when the device is full) and ``raw_free(address)``,
so its bookkeeping is tested with a fake pair (tests/test_cuda_allocator.py), and
``memory_manager.py`` plugs it into numba with the real ones.

Finalizers. numba frees a device array in a finalizer, which the garbage collector can
run at any moment, also in the middle of a pool call. ``defer_free`` (what the finalizer
calls) only appends the address to a queue (safe anywhere); every pool call first moves
the queued blocks into the cache, so the counters are never changed by two calls at once.
"""

import collections
import threading

SMALL_BLOCK_LIMIT = 1 << 20  # requests up to 1 MiB are "small"
SMALL_GRANULE = 512  # small requests round up to a multiple of 512 bytes
LARGE_GRANULE = 2 << 20  # larger ones to a multiple of 2 MiB

# what CachingPool.stats reports
STAT_NAMES = ("allocated_bytes", "cached_bytes", "peak_allocated_bytes", "hits", "misses")


def size_class(nbytes):
    """The size of the block that serves a request of ``nbytes`` (module docstring)."""
    if int(nbytes) != nbytes or nbytes <= 0:
        raise ValueError(
            f"a device allocation takes a positive whole number of bytes, not {nbytes!r}"
        )
    granule = SMALL_GRANULE if nbytes <= SMALL_BLOCK_LIMIT else LARGE_GRANULE
    return -(-int(nbytes) // granule) * granule


class CachingPool:
    """Blocks of device memory, live (handed out) or cached (freed, kept for reuse).

    ``raw_allocate(nbytes)`` returns the integer address of a new block of ``nbytes`` or
    raises ``MemoryError``; ``raw_free(address)`` gives a block back to the driver.
    """

    def __init__(self, raw_allocate, raw_free):
        self._raw_allocate = raw_allocate
        self._raw_free = raw_free
        self._lock = threading.Lock()
        self._live = {}  # address -> block size
        self._cached = {}  # block size -> addresses, the last one freed at the end
        self._deferred = collections.deque()  # addresses freed by finalizers, not yet cached
        self._counts = dict.fromkeys(STAT_NAMES, 0)

    def allocate(self, nbytes):
        """(address, block size) of a block of at least ``nbytes``: a cached block of the
        request's size class (a hit) or a new one from the driver (a miss)."""
        size = size_class(nbytes)
        with self._lock:
            self._take_deferred()
            blocks = self._cached.get(size)
            if blocks:
                address = blocks.pop()
                self._counts["cached_bytes"] -= size
                self._counts["hits"] += 1
            else:
                address = self._new_block(size)
                self._counts["misses"] += 1
            self._live[address] = size
            self._counts["allocated_bytes"] += size
            self._counts["peak_allocated_bytes"] = max(
                self._counts["peak_allocated_bytes"], self._counts["allocated_bytes"]
            )
        return address, size

    def free(self, address):
        """Put the live block at ``address`` into the cache (no driver call). A block
        that is not live (freed twice, or not from this pool) is an error."""
        with self._lock:
            self._take_deferred()
            self._cache(address)

    def defer_free(self, address):
        """``free`` from a finalizer: queue the block; the next pool call caches it."""
        self._deferred.append(address)

    def empty_cache(self):
        """Give every cached block back to the driver; live blocks stay."""
        with self._lock:
            self._take_deferred()
            self._release_cached()

    def stats(self):
        """{allocated_bytes, cached_bytes, peak_allocated_bytes, hits, misses}: bytes in
        live blocks and in cached ones (whole blocks, of their size class), the most bytes
        live at once, and how many requests a cached block served or the driver did."""
        with self._lock:
            self._take_deferred()
            return dict(self._counts)

    # the helpers below run with the lock held

    def _new_block(self, size):
        try:
            return self._raw_allocate(size)
        except MemoryError:
            self._release_cached()  # the cache must never be why memory runs out
            return self._raw_allocate(size)

    def _cache(self, address):
        size = self._live.pop(address, None)
        if size is None:
            raise ValueError(
                f"free of device address {address:#x}: not a live block of this pool "
                "(freed twice, or allocated elsewhere)"
            )
        self._counts["allocated_bytes"] -= size
        self._cached.setdefault(size, []).append(address)
        self._counts["cached_bytes"] += size

    def _take_deferred(self):
        while self._deferred:
            self._cache(self._deferred.popleft())

    def _release_cached(self):
        for size in list(self._cached):
            blocks = self._cached[size]
            while blocks:
                self._raw_free(blocks[-1])  # dropped from the cache only once it is freed
                blocks.pop()
                self._counts["cached_bytes"] -= size
            del self._cached[size]
