"""How the CPU backend's parallel kernels share the process's threads.

Numba's ``parallel=True`` kernels run on a threading layer. Its default here is OpenMP,
whose idle workers busy-wait after each kernel and take the cores from the BLAS matrix
product that usually comes next (conv2d's im2col, then its GEMM, which runs slower for it:
``benchmarks/bench_conv.py`` shows the difference when run with NUMBA_THREADING_LAYER=omp).
Unless the user chose a layer (NUMBA_THREADING_LAYER), minimask selects "workqueue", whose
workers sleep when idle.

The workqueue layer's one limit: it aborts the whole process if parallel kernels are
launched from two Python threads at once. So every entry point of the CPU backend that
launches one (``conv2d_forward``, ``roi_align_forward``, ``nms``, ...) is decorated with
``one_thread_at_a_time``, which holds one process-wide lock while it runs: two threads
that run inference with one model take turns on the kernels, and each gets the result it
would get alone. A kernel already uses every core, so taking turns costs little.
"""

import functools
import threading

import numba

if numba.config.THREADING_LAYER == "default":
    numba.config.THREADING_LAYER = "workqueue"

_PARALLEL_KERNELS_LOCK = threading.RLock()  # re-entrant: an entry point may call another


def one_thread_at_a_time(entry_point):
    """Run ``entry_point`` (a function that launches parallel kernels) under the process-wide
    lock of the CPU backend's parallel kernels; see the module docstring."""

    @functools.wraps(entry_point)
    def locked(*args, **kwargs):
        with _PARALLEL_KERNELS_LOCK:
            return entry_point(*args, **kwargs)

    return locked
