"""Which allocator serves the CUDA backend's device memory, and what it holds.

On a GPU, minimask's caching allocator (``caching_pool.py``, plugged into numba by
``memory_manager.py``) is on by default: freed device arrays leave their blocks in a
cache, and later arrays of the same size class reuse them without calling the driver,
as PyTorch's caching allocator does. Turn it off, back to numba's own allocator (one
``cuMemAlloc`` per array, frees batched by numba), with the environment variable

    MINIMASK_CUDA_ALLOCATOR=default      (the other value, "caching", is the default)

set before ``minimask.cuda`` is imported. It is off in numba's simulator, which has no
memory managers, and when ``NUMBA_CUDA_MEMORY_MANAGER`` names a memory manager of your
own, which minimask then leaves in charge.

``use_configured_allocator`` runs when ``minimask.cuda`` is imported, before any CUDA
context exists (numba creates the context, and with it the memory manager, on first
use); a context that numba.cuda code created before that import keeps numba's allocator.

``memory_stats()`` and ``empty_cache()`` are ``minimask.cuda``'s, as ``torch.cuda``'s.
"""

import os

from numba import cuda
from numba.cuda.core import config

from minimask.cuda.array.caching_pool import STAT_NAMES

ENVIRONMENT_VARIABLE = "MINIMASK_CUDA_ALLOCATOR"
CHOICES = ("caching", "default")

_selected = None  # the allocator in charge: "caching", "numba", "simulator" or a module


def configured_allocator():
    """The allocator the environment asks for: "caching" (the default) or "default"."""
    choice = os.environ.get(ENVIRONMENT_VARIABLE, "caching")
    if choice not in CHOICES:
        raise ValueError(f"{ENVIRONMENT_VARIABLE}={choice!r}: expected one of {', '.join(CHOICES)}")
    return choice


def use_configured_allocator():
    """Install the caching allocator as numba's memory manager unless it is off (module
    docstring). Returns the allocator in charge (as ``memory_stats()["allocator"]``)."""
    global _selected
    choice = configured_allocator()
    if config.ENABLE_CUDASIM:
        _selected = "simulator"
    elif config.CUDA_MEMORY_MANAGER != "default":
        _selected = config.CUDA_MEMORY_MANAGER
    elif choice == "default":
        _selected = "numba"
    else:
        from minimask.cuda.array.memory_manager import CachingMemoryManager

        cuda.set_memory_manager(CachingMemoryManager)
        _selected = "caching"
    return _selected


def _pool():
    """The caching pool of the current context, or None (allocator off, or no context yet)."""
    if _selected != "caching":
        return None
    from minimask.cuda.array import memory_manager

    return memory_manager.active_pool


def memory_stats():
    """What the caching allocator holds, in bytes and counts:

    enabled               whether the caching allocator serves device memory
    allocator             "caching", or who does instead: "numba" (MINIMASK_CUDA_ALLOCATOR
                          =default), "simulator", or NUMBA_CUDA_MEMORY_MANAGER's module
    allocated_bytes       in blocks handed out to arrays (whole blocks: sizes are rounded
                          up to their size class, caching_pool.py)
    cached_bytes          in freed blocks kept for reuse
    peak_allocated_bytes  the most allocated_bytes at any time
    hits, misses          requests served from the cache, and by the driver

    The counts are the caching allocator's: all 0 while it is off, or before the first
    allocation.
    """
    pool = _pool()
    counts = pool.stats() if pool is not None else dict.fromkeys(STAT_NAMES, 0)
    return {"enabled": _selected == "caching", "allocator": _selected, **counts}


def empty_cache():
    """Give the cached blocks back to the driver (live arrays keep theirs), so that other
    programs can use the memory. Does nothing while the caching allocator is off."""
    pool = _pool()
    if pool is not None:
        pool.empty_cache()
