"""Reductions on the GPU: sum, max, min, argmax, argmin (and mean) over any axes.

General case: ONE THREAD PER OUTPUT ELEMENT. Split the dims of x into the kept dims
(the output's) and the reduced dims. Thread ``i`` finds the position of its output element
among the kept dims, then walks the reduced elements j = 0, 1, ..., count-1 in row-major
order and combines them:

    for each output element i (one thread):           e.g. x (N, C, L), axis=2
        acc = x[kept(i) + reduced(0)]                  acc = x[n, c, 0]
        for j in 1 .. count-1:                         for l in 1 .. L-1:
            acc = combine(acc, x[kept(i) + reduced(j)])    acc = acc + x[n, c, l]
        out[i] = acc

Starting from the first element means no "identity" is needed (0 for a sum, -inf for a
max, which does not exist for integers). argmax/argmin keep the index of the first
extreme element instead, as NumPy does.

Full reduction (every dim reduced, one output): one thread would do all the work alone,
so a TREE REDUCTION in shared memory runs instead, in one block of T threads:

    1. thread t combines x[t], x[t + T], x[t + 2T], ...  into partial[t]   (shared memory)
    2. for step = T/2, T/4, ..., 1:  thread t < step does
           partial[t] = combine(partial[t], partial[t + step]);   then all threads sync
    3. partial[0] is the result

so T threads share the work and the combining takes log2(T) steps. (A large GPU would run
many blocks and combine their partials in a second launch; one block keeps the lesson
short and is plenty for the losses and norms that minimask sums to one number.)

NaN: max and min return NaN if any element is NaN, argmax/argmin the first NaN's index
(NumPy's rules).

Precision: a sum of float32 (or float16) accumulates in float64 and is rounded to the
result dtype once at the end; other sums accumulate in the result dtype. Each thread adds
its elements one after another, so a float32 accumulator would collect one rounding per
element (a bias gradient sums N*H*W of them), where NumPy's pairwise
summation collects about log2(n). float64 makes the GPU's float32 sum the exact sum
rounded once (up to float64's rounding, far below float32's), and costs about nothing:
a reduction does one add per element it reads, so it waits on memory, not on the adder,
even on a GPU whose float64 units run at 1/64 of the float32 rate.
"""

import functools

import numba
import numpy as np
from numba import cuda

from minimask.cuda.array.cuda_array import empty
from minimask.cuda.array.launch import element_offset, grid, tiled
from minimask.cuda.array.layout import normalize_axis

TREE_THREADS = 128  # threads of the one block of a full reduction (a power of two)


def _sum(a, b):
    return a + b


def _max(a, b):
    return a if (a > b or a != a) else b  # a NaN wins


def _min(a, b):
    return a if (a < b or a != a) else b


COMBINE = {"sum": _sum, "max": _max, "min": _min}


def _accumulator(name, dtype):
    """The numba type a reduction combines in: float64 for a sum of a narrower float
    (module docstring, "Precision"), else the result's dtype (a max or min is exact)."""
    if name == "sum" and dtype.kind == "f" and dtype.itemsize < 8:
        return numba.float64
    return numba.from_dtype(dtype)


@functools.cache
def _reduce_kernel(name, dtype):
    """One thread per output element (see the module docstring). Accumulates a float32
    sum in float64 because its terms add up one after another (module docstring)."""
    combine = cuda.jit(device=True)(COMBINE[name])
    cast = _accumulator(name, dtype)

    @cuda.jit
    def reduce_kernel(
        out, kept_shape, kept_strides, reduced_shape, reduced_strides, count, x, offset
    ):
        for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
            base = element_offset(i, kept_shape, kept_strides, offset)
            acc = cast(x[base])  # reduced element 0 sits at the base position
            for j in range(1, count):
                acc = combine(acc, cast(x[element_offset(j, reduced_shape, reduced_strides, base)]))
            out[i] = acc

    return reduce_kernel


@functools.cache
def _tree_reduce_kernel(name, dtype):
    """One block; the threads share the elements, then combine in a tree (module docstring).
    Accumulates a float32 sum in float64 (partials too) because it reads memory, not adds."""
    combine = cuda.jit(device=True)(COMBINE[name])
    cast = _accumulator(name, dtype)

    @cuda.jit
    def tree_reduce_kernel(out, shape, strides, count, x, offset):
        partial = cuda.shared.array(TREE_THREADS, cast)
        t = cuda.threadIdx.x
        threads = cuda.blockDim.x
        # 1. thread t combines elements t, t + threads, t + 2 threads, ...
        if t < count:
            acc = cast(x[element_offset(t, shape, strides, offset)])
            for j in range(t + threads, count, threads):
                acc = combine(acc, cast(x[element_offset(j, shape, strides, offset)]))
            partial[t] = acc
        cuda.syncthreads()
        # 2. the tree: each step halves the number of partial results
        step = threads // 2
        while step > 0:
            if t < step and t + step < count:
                partial[t] = combine(partial[t], partial[t + step])
            cuda.syncthreads()
            step //= 2
        if t == 0:
            out[0] = partial[0]

    return tree_reduce_kernel


@functools.cache
def _arg_reduce_kernel(largest):
    """argmax (largest) / argmin: one thread per output element, first extreme wins.
    Compares in the input's dtype: no arithmetic, so nothing to accumulate."""

    @cuda.jit
    def arg_reduce_kernel(
        out, kept_shape, kept_strides, reduced_shape, reduced_strides, count, x, offset
    ):
        for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
            base = element_offset(i, kept_shape, kept_strides, offset)
            best = x[base]
            best_index = 0
            for j in range(1, count):
                value = x[element_offset(j, reduced_shape, reduced_strides, base)]
                better = value > best if largest else value < best
                if best == best and (better or value != value):  # a first NaN wins for good
                    best = value
                    best_index = j
            out[i] = best_index

    return arg_reduce_kernel


def _axes(axis, ndim):
    """``axis`` (None, an int or a tuple) as a sorted tuple of non-negative dims."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    axes = tuple(sorted(normalize_axis(int(a), ndim) for a in axes))
    if len(set(axes)) != len(axes):
        raise ValueError("duplicate value in 'axis'")
    return axes


def _split(x, axes):
    """(kept shape, kept strides, reduced shape, reduced strides), each at least 1-d."""
    kept = [d for d in range(x.ndim) if d not in axes]
    kept_shape = tuple(x.shape[d] for d in kept) or (1,)
    kept_strides = tuple(x.strides[d] for d in kept) or (0,)
    reduced_shape = tuple(x.shape[d] for d in axes) or (1,)
    reduced_strides = tuple(x.strides[d] for d in axes) or (0,)
    return kept_shape, kept_strides, reduced_shape, reduced_strides


def _result_shape(x, axes, keepdims):
    if keepdims:
        return tuple(1 if d in axes else n for d, n in enumerate(x.shape))
    return tuple(n for d, n in enumerate(x.shape) if d not in axes)


def _tree_threads(count):
    """Threads of the tree reduction of ``count`` elements: a power of two, no more than
    the elements (or TREE_THREADS)."""
    return TREE_THREADS if count >= TREE_THREADS else 1 << (count - 1).bit_length()


def _reduce(name, x, axis, keepdims, dtype):
    """sum / max / min of ``x`` over ``axis``, accumulated and returned in ``dtype``."""
    axes = _axes(axis, x.ndim)
    shape = _result_shape(x, axes, keepdims)
    count = int(np.prod([x.shape[d] for d in axes], dtype=np.int64))
    out = empty(shape, dtype)
    if out.size == 0:
        return out
    if count == 0:
        if name != "sum":
            raise ValueError(
                f"zero-size array to reduction operation {name}imum which has no identity"
            )
        out[...] = 0
        return out
    if not axes:  # nothing to reduce: each element is its own result
        out[...] = x
        return out
    if len(axes) == x.ndim:
        _tree_reduce_kernel(name, dtype)[tiled(1, _tree_threads(count), count)](
            out.buffer, x.shape, x.strides, count, x.buffer, x.offset
        )
        return out
    kept_shape, kept_strides, reduced_shape, reduced_strides = _split(x, axes)
    _reduce_kernel(name, dtype)[grid(out.size)](
        out.buffer,
        kept_shape,
        kept_strides,
        reduced_shape,
        reduced_strides,
        count,
        x.buffer,
        x.offset,
    )
    return out


def extrema(x):
    """[min, max] of all the elements of a non-empty ``x``, as one (2,) array: two launches
    of the tree reduction, each writing one of its elements, so that the host reads both
    numbers with one copy (one wait for the GPU instead of two)."""
    if x.size == 0:
        raise ValueError("zero-size array to reduction operation extrema which has no identity")
    shape, strides = (x.shape, x.strides) if x.ndim else ((1,), (0,))
    out = empty((2,), x.dtype)
    for position, name in enumerate(("min", "max")):
        _tree_reduce_kernel(name, x.dtype)[tiled(1, _tree_threads(x.size), x.size)](
            out.buffer[position : position + 1], shape, strides, x.size, x.buffer, x.offset
        )
    return out


def sum(x, axis=None, keepdims=False, dtype=None):
    """NumPy's sum: bools and small integers sum as int64, floats in their own dtype."""
    if dtype is None:
        dtype = np.sum(np.zeros(1, x.dtype)).dtype
    return _reduce("sum", x, axis, keepdims, np.dtype(dtype))


def mean(x, axis=None, keepdims=False):
    """sum / count, in NumPy's mean dtype (float64 for integers, else the float's own)."""
    dtype = np.mean(np.zeros(1, x.dtype)).dtype
    axes = _axes(axis, x.ndim)
    count = int(np.prod([x.shape[d] for d in axes], dtype=np.int64))
    return _reduce("sum", x, axes, keepdims, dtype) / count


def max(x, axis=None, keepdims=False):
    return _reduce("max", x, axis, keepdims, x.dtype)


def min(x, axis=None, keepdims=False):
    return _reduce("min", x, axis, keepdims, x.dtype)


def _arg_reduce(largest, x, axis, out, keepdims):
    if out is not None:
        raise TypeError("the CUDA backend's argmax/argmin do not take out=")
    name = "argmax" if largest else "argmin"
    if axis is None:
        flat = x.reshape(-1)
        result = _arg_reduce(largest, flat, 0, None, False)
        return result.reshape((1,) * x.ndim) if keepdims else result
    axes = _axes(axis, x.ndim)
    if x.shape[axes[0]] == 0:
        raise ValueError(f"attempt to get {name} of an empty sequence")
    shape = _result_shape(x, axes, keepdims)
    out = empty(shape, np.int64)
    if out.size:
        kept_shape, kept_strides, reduced_shape, reduced_strides = _split(x, axes)
        _arg_reduce_kernel(largest)[grid(out.size)](
            out.buffer,
            kept_shape,
            kept_strides,
            reduced_shape,
            reduced_strides,
            x.shape[axes[0]],
            x.buffer,
            x.offset,
        )
    return out


def argmax(a, axis=None, out=None, *, keepdims=False):
    """Index of the first maximum along ``axis`` (of the flattened array for None)."""
    return _arg_reduce(True, a, axis, out, keepdims)


def argmin(a, axis=None, out=None, *, keepdims=False):
    return _arg_reduce(False, a, axis, out, keepdims)
