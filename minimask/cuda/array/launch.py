"""What every kernel of the CUDA backend shares: the launch configuration (with the
grid-stride loop), the launch counter and the strided addressing of an element.

Launch configuration. A kernel launch ``kernel[blocks, threads](...)`` starts
``blocks * threads`` GPU threads. Each kernel works on ``n`` work items (usually the
elements of its output) in a GRID-STRIDE LOOP:

    for item in range(cuda.grid(1), n, cuda.gridsize(1)):      (CUDA)
        ...work on item...
    for item in numba.prange(n):                                (the CPU twin)
        ...work on item...

Thread t (``cuda.grid(1)``) handles items t, t + T, t + 2T, ... where T
(``cuda.gridsize(1)``) is the number of threads launched. ``grid(n)`` launches one thread
per item on a GPU (blocks of 128 threads, a multiple of the 32-thread warp), so each
thread runs the loop body once. In numba's simulator, which starts one Python thread per
GPU thread (starting one costs far more than the work of one item), ``grid(n)`` launches
at most one warp, 32 threads, that share the items: the same kernel, the same results,
many times faster to simulate. The few kernels that choose their own blocks (the matmul's
tiles, NMS's tiles, the one block of a full reduction) take theirs from ``tiled``.

Counting. Every launch is configured by ``grid`` or ``tiled`` right before it starts, so
these two count it (``minimask.cuda.stats()``, counters.py): one launch of ``n`` work
items, under the name of the host function that configured it.

Strided addressing. A ``CudaArray`` is a flat device buffer plus ``shape``, ``strides``
(in elements, not bytes) and ``offset``. The element at coordinates (c0, ..., c_{d-1})
lives at ``offset + c0 * strides[0] + ... + c_{d-1} * strides[d-1]``. A kernel that works
on the elements of an output of shape ``shape`` turns each flat (row-major) index into
coordinates, last dimension fastest, and from them the buffer position of each operand
(``element_offset``). A broadcast operand simply has stride 0 along the dims it is
stretched over, so broadcasting costs nothing.
"""

import math
import sys

from numba import config, cuda

from minimask.cuda.array import counters

THREADS_PER_BLOCK = 128
SIMULATOR_THREADS = 32  # one warp: the most threads a simulated launch starts


def grid(n):
    """(blocks, threads per block) for a grid-stride loop over ``n`` work items; counts
    the launch it configures."""
    counters.record_launch(_launcher(), n)
    if config.ENABLE_CUDASIM:
        return 1, max(1, min(n, SIMULATOR_THREADS))
    threads = max(1, min(n, THREADS_PER_BLOCK))
    return math.ceil(n / threads), threads


def tiled(blocks, threads, work_items):
    """(blocks, threads) as given, for a kernel that chooses its own blocks (tiles, one
    block); counts the launch as one of ``work_items`` items (its output elements, or the
    elements a reduction reads)."""
    counters.record_launch(_launcher(), work_items)
    return blocks, threads


def _launcher():
    """Name of the host function that configures the launch, "module.function" with the
    module under minimask.cuda ("conv._im2col_matrix", "array.elementwise._launch"): the
    caller of ``grid`` / ``tiled``, or, if a wrapper from outside minimask stands between,
    the first minimask function above it."""
    caller = frame = sys._getframe(2)
    while frame is not None and not frame.f_globals.get("__name__", "").startswith("minimask."):
        frame = frame.f_back
    frame = frame or caller
    module = frame.f_globals.get("__name__", "").removeprefix("minimask.cuda.")
    return f"{module}.{frame.f_code.co_name}"


@cuda.jit(device=True)
def element_offset(flat_index, shape, strides, offset):
    """Buffer position of the element with row-major index ``flat_index`` in an array of
    ``shape``, laid out with ``strides`` from ``offset``:

        for d = ndim-1 down to 0:   c_d = flat_index % shape[d];  flat_index //= shape[d]
        position = offset + sum over d of c_d * strides[d]
    """
    position = offset
    for d in range(len(shape) - 1, -1, -1):
        position += (flat_index % shape[d]) * strides[d]
        flat_index //= shape[d]
    return position
