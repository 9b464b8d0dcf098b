"""argsort on the GPU: a stable RANK SORT, one thread per element.

Sorting asks, for each element, "how many elements come before me?". That number is the
element's rank, its position in the sorted order, and every element can answer it on its
own, so one thread per element finds its rank without talking to any other thread:

    for each row r and position j along the axis (one thread):
        rank = number of m with  x[m] < x[j],  or  x[m] == x[j] and m < j
        order[r, rank] = j

The tie rule (equal values: the lower index first) makes the ranks all different and the
sort STABLE, which is what ``kind="stable"`` asks for (and what minimask's sort/topk rely
on). NaN counts as larger than every number and equal to NaN, so NaNs go last, as in
NumPy.

Cost: each thread compares its element with the n elements of its row, n^2 comparisons a
row, all in parallel. That is fine for the rows minimask sorts (scores of a few thousand
boxes); a library sorting millions of keys would use a radix or merge sort instead,
which do O(n log n) work but need several passes that cooperate.
"""

import numpy as np
from numba import cuda

from minimask.cuda.array.cuda_array import empty
from minimask.cuda.array.launch import element_offset, grid
from minimask.cuda.array.layout import normalize_axis


@cuda.jit(device=True)
def _before(a, b):
    """a sorts before b: a < b, with NaN after every number."""
    return a < b or (b != b and a == a)


@cuda.jit
def _rank_sort_kernel(order, size, n, rows_shape, rows_strides, x, axis_stride, offset):
    """order[r * n + rank] = j for each element (r, j); see the module docstring.
    Compares in the input's dtype: no arithmetic on the values, nothing to accumulate."""
    for i in range(cuda.grid(1), size, cuda.gridsize(1)):
        j = i % n
        r = i // n
        base = element_offset(r, rows_shape, rows_strides, offset)
        value = x[base + j * axis_stride]
        rank = 0
        for m in range(n):
            other = x[base + m * axis_stride]
            if _before(other, value) or (m < j and not _before(value, other)):
                rank += 1
        order[r * n + rank] = j


def argsort(a, axis=-1, kind=None):
    """Indices that sort ``a`` along ``axis``; always stable, whatever ``kind`` says (a
    stable order is also a valid answer for NumPy's other kinds)."""
    if a.ndim == 0:  # as NumPy: one element, sorted as a 1-d array
        a = a.reshape(1)
    axis = normalize_axis(axis, a.ndim)
    # the sorted axis last: rows are the other dims, in order
    dims = [d for d in range(a.ndim) if d != axis] + [axis]
    rows_shape = tuple(a.shape[d] for d in dims[:-1])
    rows_strides = tuple(a.strides[d] for d in dims[:-1])
    n = a.shape[axis]
    order = empty(rows_shape + (n,), np.int64)
    if order.size:
        _rank_sort_kernel[grid(order.size)](
            order.buffer,
            order.size,
            n,
            rows_shape or (1,),
            rows_strides or (0,),
            a.buffer,
            a.strides[axis],
            a.offset,
        )
    # put the axis back where it was (a view)
    inverse = [dims.index(d) for d in range(a.ndim)]
    return order.transpose(inverse)
