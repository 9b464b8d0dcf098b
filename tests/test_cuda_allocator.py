"""The CUDA backend's caching allocator (minimask/cuda/array/caching_pool.py,
memory_manager.py, allocator.py), tested without a GPU.

The pool's bookkeeping runs against a fake driver (``FakeDriver``: addresses handed out
in order, every call recorded, an optional capacity): size classes, reuse within a class
and never across, empty_cache, double frees, the out-of-memory retry, finalizer frees,
and the statistics after a sequence of calls, all computed by hand in the comments.

The numba plugin (``CachingMemoryManager``) needs numba's real CUDA driver module, which
the simulator replaces, so those tests run in a fresh interpreter without the simulator;
no GPU is needed there either: the plugin is given the fake driver, and a stand-in
context. They check it against numba's interface (the abstract methods of
``BaseCUDAMemoryManager``, ``set_memory_manager``'s version check) and numba's ownership
rules (a block returns to the pool when the last pointer or view of it is gone). The
choice of allocator is checked in such interpreters too, and in the simulator, where it
is off. On a GPU, the last test checks that freed arrays' blocks are reused.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest
from numba import config

from minimask.cuda.array import allocator
from minimask.cuda.array.caching_pool import CachingPool, size_class

cuda = pytest.importorskip("minimask.cuda")
SIMULATOR = bool(config.ENABLE_CUDASIM)
MiB = 1 << 20


class FakeDriver:
    """raw_allocate / raw_free for a CachingPool: addresses 0x1000, 0x2000, ... in order
    of allocation; ``calls`` records ("allocate", nbytes) and ("free", address); with a
    ``capacity``, an allocation that would hold more bytes than that raises MemoryError."""

    def __init__(self, capacity=None):
        self.capacity = capacity
        self.calls = []
        self.held = {}  # address -> bytes, allocated and not freed
        self._next = 0x1000

    def allocate(self, nbytes):
        if self.capacity is not None and sum(self.held.values()) + nbytes > self.capacity:
            raise MemoryError("fake device full")
        address, self._next = self._next, self._next + 0x1000
        self.held[address] = nbytes
        self.calls.append(("allocate", nbytes))
        return address

    def free(self, address):
        del self.held[address]
        self.calls.append(("free", address))


def pool_and_driver(capacity=None):
    driver = FakeDriver(capacity)
    return CachingPool(driver.allocate, driver.free), driver


def stats(allocated, cached, peak, hits, misses):
    return {
        "allocated_bytes": allocated,
        "cached_bytes": cached,
        "peak_allocated_bytes": peak,
        "hits": hits,
        "misses": misses,
    }


# ---------------------------------------------------------------------------- the pool


@pytest.mark.parametrize(
    "request_bytes, block_bytes",
    [
        (1, 512),
        (512, 512),
        (513, 1024),
        (5000, 5120),  # 10 * 512
        (MiB - 1, MiB),
        (MiB, MiB),  # 1 MiB is still a small request: 2048 * 512
        (MiB + 1, 2 * MiB),  # above 1 MiB: multiples of 2 MiB
        (2 * MiB, 2 * MiB),
        (2 * MiB + 1, 4 * MiB),
        (5 * MiB - 3, 6 * MiB),
    ],
)
def test_size_classes_round_up_to_512_bytes_then_2_mib(request_bytes, block_bytes):
    assert size_class(request_bytes) == block_bytes


@pytest.mark.parametrize("bad", [0, -512, 1.5])
def test_a_request_must_be_a_positive_whole_number_of_bytes(bad):
    pool, driver = pool_and_driver()
    with pytest.raises(ValueError, match="positive whole number of bytes"):
        pool.allocate(bad)
    assert driver.calls == []


def test_a_freed_block_serves_the_next_request_of_its_class():
    pool, driver = pool_and_driver()
    address, block = pool.allocate(1000)  # class 1024
    pool.free(address)
    again, block_again = pool.allocate(600)  # also class 1024: the cached block
    assert (again, block_again) == (address, block) == (0x1000, 1024)
    assert driver.calls == [("allocate", 1024)]  # one driver call for both
    assert pool.stats() == stats(allocated=1024, cached=0, peak=1024, hits=1, misses=1)


def test_a_block_is_never_reused_for_another_class():
    pool, driver = pool_and_driver()
    small, _ = pool.allocate(1000)  # class 1024
    pool.free(small)
    other, block = pool.allocate(1500)  # class 1536: not the cached 1024 block
    assert other != small and block == 1536
    large, _ = pool.allocate(3 * MiB)  # class 4 MiB
    pool.free(large)
    assert pool.allocate(MiB)[0] not in (small, large)  # class 1 MiB: neither
    assert driver.calls == [
        ("allocate", 1024),
        ("allocate", 1536),
        ("allocate", 4 * MiB),
        ("allocate", MiB),
    ]
    # live 1536 + 1 MiB; cached 1024 + 4 MiB; peak 1536 + 4 MiB (before it was freed)
    assert pool.stats() == stats(
        allocated=1536 + MiB, cached=1024 + 4 * MiB, peak=1536 + 4 * MiB, hits=0, misses=4
    )


def test_the_last_block_freed_of_a_class_is_reused_first():
    pool, _ = pool_and_driver()
    first, second = pool.allocate(100)[0], pool.allocate(200)[0]  # both class 512
    pool.free(first)
    pool.free(second)
    assert pool.allocate(300)[0] == second
    assert pool.allocate(400)[0] == first


def test_empty_cache_frees_exactly_the_cached_blocks():
    pool, driver = pool_and_driver()
    a, _ = pool.allocate(100)  # 512
    b, _ = pool.allocate(3000)  # 3072
    c, _ = pool.allocate(3 * MiB)  # 4 MiB
    pool.free(a)
    pool.free(c)
    driver.calls.clear()
    pool.empty_cache()
    assert sorted(driver.calls) == sorted([("free", a), ("free", c)])
    assert driver.held == {b: 3072}  # the live block stays
    assert pool.stats() == stats(
        allocated=3072, cached=0, peak=3072 + 512 + 4 * MiB, hits=0, misses=3
    )
    pool.allocate(100)  # class 512 again: the cache is empty, so the driver serves it
    assert driver.calls[-1] == ("allocate", 512)
    pool.empty_cache()  # nothing cached: no driver call
    assert driver.calls[-1] == ("allocate", 512)


def test_a_double_free_is_an_error_and_changes_nothing():
    pool, driver = pool_and_driver()
    address, _ = pool.allocate(100)
    pool.free(address)
    before = pool.stats()
    with pytest.raises(ValueError, match="0x1000: not a live block of this pool .freed twice"):
        pool.free(address)
    with pytest.raises(ValueError, match="0x9000: not a live block"):
        pool.free(0x9000)  # never allocated
    assert pool.stats() == before == stats(allocated=0, cached=512, peak=512, hits=0, misses=1)
    assert pool.allocate(100)[0] == address  # cached once, handed out once
    assert pool.allocate(100)[0] != address
    assert driver.calls == [("allocate", 512), ("allocate", 512)]


def test_statistics_after_a_sequence_computed_by_hand():
    pool, driver = pool_and_driver()
    a, _ = pool.allocate(100)  # miss, block 512:           allocated 512
    b, _ = pool.allocate(5000)  # miss, block 5120:          allocated 5632 (peak)
    assert pool.stats() == stats(allocated=5632, cached=0, peak=5632, hits=0, misses=2)
    pool.free(a)  # allocated 5120, cached 512
    c, _ = pool.allocate(400)  # hit (class 512):           allocated 5632, cached 0
    assert c == a
    d, _ = pool.allocate(3 * MiB)  # miss, block 4 MiB:     allocated 5632 + 4194304
    assert pool.stats() == stats(allocated=4199936, cached=0, peak=4199936, hits=1, misses=3)
    pool.free(d)  # allocated 5632, cached 4194304
    pool.free(b)  # allocated 512, cached 4194304 + 5120
    assert pool.stats() == stats(allocated=512, cached=4199424, peak=4199936, hits=1, misses=3)
    e, _ = pool.allocate(2 * MiB + 1)  # hit (class 4 MiB): allocated 4194816, cached 5120
    assert e == d
    assert pool.stats() == stats(allocated=4194816, cached=5120, peak=4199936, hits=2, misses=3)
    pool.empty_cache()  # frees b's block: cached 0
    assert pool.stats() == stats(allocated=4194816, cached=0, peak=4199936, hits=2, misses=3)
    assert driver.calls == [
        ("allocate", 512),
        ("allocate", 5120),
        ("allocate", 4 * MiB),
        ("free", b),
    ]


def test_out_of_memory_empties_the_cache_and_tries_once_more():
    pool, driver = pool_and_driver(capacity=8 * MiB)
    cached, _ = pool.allocate(3 * MiB)  # block 4 MiB
    live, _ = pool.allocate(1000)  # block 1024
    pool.free(cached)
    # class 6 MiB: 4 MiB + 1024 + 6 MiB do not fit on the 8 MiB device, so the pool frees
    # the cached block and the second try fits (1024 + 6 MiB)
    new, block = pool.allocate(5 * MiB)
    assert block == 6 * MiB
    # (the fake records only the calls that succeed)
    assert driver.calls == [
        ("allocate", 4 * MiB),
        ("allocate", 1024),
        ("free", cached),
        ("allocate", 6 * MiB),
    ]
    assert pool.stats() == stats(
        allocated=6 * MiB + 1024, cached=0, peak=6 * MiB + 1024, hits=0, misses=3
    )
    # 2 MiB more do not fit, and nothing is cached: the MemoryError reaches the caller
    with pytest.raises(MemoryError, match="fake device full"):
        pool.allocate(2 * MiB)
    assert pool.stats() == stats(
        allocated=6 * MiB + 1024, cached=0, peak=6 * MiB + 1024, hits=0, misses=3
    )
    assert set(driver.held) == {live, new}


def test_a_finalizer_free_waits_for_the_next_pool_call():
    """``defer_free`` only queues: safe while the pool is inside a call (here the driver
    call of an allocation runs a "finalizer"), and counted from the next call on."""
    driver = FakeDriver()
    finalized = []  # addresses whose "finalizer" runs during the next driver call

    def allocate_while_finalizers_run(nbytes):
        while finalized:  # as numba's finalizers may, while the pool holds its lock
            pool.defer_free(finalized.pop())
        return driver.allocate(nbytes)

    pool = CachingPool(allocate_while_finalizers_run, driver.free)
    first, _ = pool.allocate(100)
    finalized.append(first)
    second, _ = pool.allocate(100)  # a miss: first was still live when the pool looked
    assert second != first
    assert pool.stats() == stats(allocated=512, cached=512, peak=1024, hits=0, misses=2)
    assert pool.allocate(100)[0] == first  # the queued block is reused
    pool.defer_free(second)
    with pytest.raises(ValueError, match="freed twice"):
        pool.free(second)  # the queued free counts: this is the second one


# ---------------------------------------------------------------------------- allocator choice


def test_the_allocator_variable_must_name_a_choice(monkeypatch):
    monkeypatch.setenv("MINIMASK_CUDA_ALLOCATOR", "pooled")
    with pytest.raises(
        ValueError, match="MINIMASK_CUDA_ALLOCATOR='pooled': expected one of caching, default"
    ):
        allocator.configured_allocator()
    monkeypatch.setenv("MINIMASK_CUDA_ALLOCATOR", "default")
    assert allocator.configured_allocator() == "default"
    monkeypatch.delenv("MINIMASK_CUDA_ALLOCATOR")
    assert allocator.configured_allocator() == "caching"


@pytest.mark.skipif(not SIMULATOR, reason="the simulator's allocator")
def test_in_the_simulator_the_caching_allocator_is_off():
    array = cuda.zeros((64, 64))  # an allocation, which the caching allocator does not see
    del array
    assert cuda.memory_stats() == {
        "enabled": False,
        "allocator": "simulator",
        **stats(allocated=0, cached=0, peak=0, hits=0, misses=0),
    }
    cuda.empty_cache()  # nothing to give back; no error


def run_without_simulator(program, **environment):
    """Run ``program`` in a new interpreter with numba's real CUDA driver module (no
    simulator; no GPU needed) and the extra ``environment``; return what it prints as JSON."""
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
    for name in ("MINIMASK_CUDA_ALLOCATOR", "NUMBA_CUDA_MEMORY_MANAGER"):
        env.pop(name, None)  # the defaults, unless a test sets them
    env.update(environment)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(program)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


CHOICE_PROGRAM = """
    import json
    import minimask.cuda
    from numba.cuda.cudadrv import driver
    from minimask.cuda.array.memory_manager import CachingMemoryManager
    manager = driver._memory_manager
    print(json.dumps({
        "stats": minimask.cuda.memory_stats(),
        "manager": None if manager is None else manager.__name__,
        "ours": manager is CachingMemoryManager,
    }))
"""


@pytest.mark.parametrize(
    "environment, allocator_name, installed",
    [
        ({}, "caching", True),  # the default
        ({"MINIMASK_CUDA_ALLOCATOR": "caching"}, "caching", True),
        ({"MINIMASK_CUDA_ALLOCATOR": "default"}, "numba", False),
        # a memory manager of the user's own stays in charge (numba loads it on first use)
        ({"NUMBA_CUDA_MEMORY_MANAGER": "their_plugin"}, "their_plugin", False),
    ],
)
def test_importing_minimask_cuda_installs_the_configured_allocator(
    environment, allocator_name, installed
):
    result = run_without_simulator(CHOICE_PROGRAM, **environment)
    assert result["ours"] is installed
    assert result["manager"] == ("CachingMemoryManager" if installed else None)
    assert result["stats"] == {
        "enabled": installed,
        "allocator": allocator_name,
        **stats(allocated=0, cached=0, peak=0, hits=0, misses=0),  # no context yet
    }


# ---------------------------------------------------------------------------- numba plugin


PLUGIN_PROGRAM = """
    import json
    from numba import cuda
    from minimask.cuda.array import memory_manager
    from minimask.cuda.array.memory_manager import CachingMemoryManager

    base = cuda.BaseCUDAMemoryManager
    report = {
        "is_plugin": issubclass(CachingMemoryManager, base),
        "still_abstract": sorted(CachingMemoryManager.__abstractmethods__),
        "interface": sorted(base.__abstractmethods__),
        "implemented_here_or_by_numba": sorted(
            name for name in base.__abstractmethods__
            if getattr(CachingMemoryManager, name) is not getattr(base, name)
        ),
    }
    cuda.set_memory_manager(CachingMemoryManager)  # numba checks the interface version

    calls = []
    addresses = iter(range(0x1000, 0x10000, 0x1000))
    class FakeDriverManager(CachingMemoryManager):
        # the driver calls replaced: addresses 0x1000, 0x2000, ... in order
        raw_allocate = staticmethod(lambda n: calls.append(("allocate", n)) or next(addresses))
        raw_free = staticmethod(lambda address: calls.append(("free", address)))

    class Context:  # numba gives the manager its context, held through a weak proxy
        pass

    context = Context()
    manager = FakeDriverManager(context=context)
    manager.initialize()
    pool = memory_manager.active_pool
    steps = {}
    first = manager.memalloc(1000)
    steps["pointer"] = [first.device_pointer_value, first.size]
    steps["live"] = pool.stats()
    del first  # the last reference: numba's finalizer returns the block
    steps["freed"] = pool.stats()
    second = manager.memalloc(700)  # the same size class: the same block
    view = second.view(100)  # a view of it keeps the block alive
    steps["view"] = [second.device_pointer_value, view.device_pointer_value]
    del second
    steps["view_alive"] = pool.stats()
    del view
    steps["view_gone"] = pool.stats()
    kept = manager.memalloc(5000)
    manager.reset()  # numba closes the context: everything goes back to the driver
    steps["reset"] = pool.stats()
    report.update(steps=steps, calls=calls)
    print(json.dumps(report))
"""


def test_the_numba_plugin_implements_the_interface_and_returns_blocks_to_the_pool():
    report = run_without_simulator(PLUGIN_PROGRAM)
    assert report["is_plugin"] and report["still_abstract"] == []
    assert report["implemented_here_or_by_numba"] == report["interface"]
    assert set(report["interface"]) >= {"memalloc", "initialize", "reset", "get_memory_info"}
    steps = report["steps"]
    assert steps["pointer"] == [0x1000, 1000]  # the block's address, the size numba asked for
    assert steps["live"] == stats(allocated=1024, cached=0, peak=1024, hits=0, misses=1)
    assert steps["freed"] == stats(allocated=0, cached=1024, peak=1024, hits=0, misses=1)
    assert steps["view"] == [0x1000, 0x1000 + 100]
    assert steps["view_alive"] == stats(allocated=1024, cached=0, peak=1024, hits=1, misses=1)
    assert steps["view_gone"] == stats(allocated=0, cached=1024, peak=1024, hits=1, misses=1)
    # reset: the live 5120-byte block (the peak: alone) and the cached 1024-byte one are freed
    assert steps["reset"] == stats(allocated=0, cached=0, peak=5120, hits=1, misses=2)
    assert sorted(map(tuple, report["calls"])) == sorted(
        [("allocate", 1024), ("allocate", 5120), ("free", 0x1000), ("free", 0x2000)]
    )


# ---------------------------------------------------------------------------- on a GPU


@pytest.mark.skipif(SIMULATOR or not cuda.is_available(), reason="needs a GPU")
def test_on_a_gpu_a_freed_array_leaves_its_block_for_the_next():
    """``empty`` allocates and launches nothing else, so each call is one request."""
    if not cuda.memory_stats()["enabled"]:
        pytest.skip("the caching allocator is off (MINIMASK_CUDA_ALLOCATOR=default)")
    cuda.empty_cache()
    first = cuda.empty(1000)  # 8000 bytes: class 8192
    before = cuda.memory_stats()
    del first
    freed = cuda.memory_stats()
    assert freed["cached_bytes"] == before["cached_bytes"] + 8192 == 8192
    assert freed["allocated_bytes"] == before["allocated_bytes"] - 8192
    other = cuda.empty(900)  # 7200 bytes: class 7680, a miss (nothing of it cached)
    same = cuda.empty(1024)  # 8192 bytes: the freed block, a hit
    after = cuda.memory_stats()
    assert (after["hits"], after["misses"]) == (freed["hits"] + 1, freed["misses"] + 1)
    assert after["cached_bytes"] == 0
    del other, same
    cuda.empty_cache()
    assert cuda.memory_stats()["cached_bytes"] == 0
