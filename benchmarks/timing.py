"""The one timing rule every benchmark uses."""

import statistics
import time


def median_ms(step, repeats, warmup=3):
    """Median wall time of ``step()`` in milliseconds over ``repeats`` runs, after ``warmup``
    runs (which also compile Numba kernels and fill caches)."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)
