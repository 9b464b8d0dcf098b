"""Counters of what the CUDA backend asks of the GPU: ``minimask.cuda.stats()``.

    launches         kernel launches, and the work items they were given (the ``n`` of a
                     grid-stride loop: usually the output's elements)
    allocations      new device buffers, and their bytes
    h2d, d2h         copies host -> device and device -> host, and their bytes
    syncs            times the host waited for the GPU to finish what it was given

Each is counted at the one place of the library where it happens, so nothing escapes:
every launch is configured by ``launch.grid`` or ``launch.tiled``, and every allocation,
copy and wait goes through ``memory.py``. A copy is a wait too: numba's copies on the
default stream are CUDA's synchronous ``cuMemcpyHtoD`` / ``cuMemcpyDtoH``; a copy to the
host returns once the kernels before it and the copy are done, and a copy from pageable
host memory first waits for the kernels before it (CUDA's "API synchronization
behavior"). So ``syncs`` = ``h2d`` + ``d2h`` + the calls of ``minimask.cuda.synchronize()``.
Freeing is not counted: numba defers it and frees in batches.

Launches are also counted by the host function that launched them (``stats(by_kernel=True)``):
``"conv._im2col_matrix"``, ``"array.elementwise._launch"``, ... (module under
``minimask.cuda``, then the function), each with its launches and work items. A launching
function launches one kernel (or, where ``minimask.use_deterministic_algorithms`` chooses,
one of two), so the name says which; in numba's simulator, whose cost is about one unit per
work item, the work items say where the time goes.

    minimask.cuda.stats()                  totals since the start (or the last reset)
    minimask.cuda.reset_stats()            totals back to zero
    with minimask.cuda.count() as c:       what the block asked for: c.launches, c.h2d,
        ...                                ..., c.as_dict(); blocks may nest

The counts are the whole process's, from every thread: a block also counts what another
thread launches meanwhile.
"""

import contextlib
import threading

FIELDS = (
    "launches",
    "work_items",
    "allocations",
    "allocated_bytes",
    "h2d",
    "h2d_bytes",
    "d2h",
    "d2h_bytes",
    "syncs",
)


class Counts:
    """One set of counters (the fields of ``FIELDS``) and the launches by launching
    function, ``by_kernel``: {name: [launches, work items]}."""

    def __init__(self):
        for field in FIELDS:
            setattr(self, field, 0)
        self.by_kernel = {}

    def as_dict(self, by_kernel=False):
        """{field: value}; with ``by_kernel``, also "by_kernel": {name: {"launches",
        "work_items"}}, names in decreasing order of work items."""
        out = {field: getattr(self, field) for field in FIELDS}
        if by_kernel:
            ranked = sorted(self.by_kernel.items(), key=lambda item: (-item[1][1], item[0]))
            out["by_kernel"] = {
                name: {"launches": launches, "work_items": items}
                for name, (launches, items) in ranked
            }
        return out

    def __repr__(self):
        return "Counts(" + ", ".join(f"{f}={getattr(self, f)}" for f in FIELDS) + ")"


_lock = threading.Lock()
_totals = Counts()
_open = []  # the Counts of the count() blocks open now


def _add(**amounts):
    with _lock:
        for counts in (_totals, *_open):
            for field, amount in amounts.items():
                setattr(counts, field, getattr(counts, field) + amount)


def record_launch(name, work_items):
    """One kernel launch of ``work_items`` items by the host function ``name``."""
    with _lock:
        for counts in (_totals, *_open):
            counts.launches += 1
            counts.work_items += work_items
            entry = counts.by_kernel.setdefault(name, [0, 0])
            entry[0] += 1
            entry[1] += work_items


def record_allocation(nbytes):
    _add(allocations=1, allocated_bytes=nbytes)


def record_host_to_device(nbytes):
    _add(h2d=1, h2d_bytes=nbytes)


def record_device_to_host(nbytes):
    _add(d2h=1, d2h_bytes=nbytes)


def record_sync():
    _add(syncs=1)


def stats(by_kernel=False):
    """The totals since the process started or ``reset_stats()`` was last called, as a
    dict (``Counts.as_dict``)."""
    with _lock:
        return _totals.as_dict(by_kernel)


def reset_stats():
    """Set the totals back to zero (the open ``count()`` blocks keep counting)."""
    global _totals
    with _lock:
        _totals = Counts()


@contextlib.contextmanager
def count():
    """``with count() as c:``: ``c`` (a ``Counts``) counts what the block asks of the GPU,
    from zero; it keeps its values after the block. Blocks may nest: each counts its own."""
    counts = Counts()
    with _lock:
        _open.append(counts)
    try:
        yield counts
    finally:
        with _lock:
            _open.remove(counts)
