"""Gathers and scatters along one axis on the GPU: ``take_along_axis``, its adjoint
``scatter_add_along_axis`` and ``concatenate``, with NumPy's semantics.

``take_along_axis(x, index, axis)`` (torch.gather) reads, for every element j of
``index``, the element of x at j's coordinates with ``index[j]`` in place of the ``axis``
coordinate. One thread per result element computes that position through x's strides,
with x's stride along ``axis`` set to 0 and ``index[j] * stride`` added instead:

    out[j] = x[offset of j's other coordinates + index[j] * x.strides[axis]]

Its adjoint sends each value back to the position it was read from; two j may name the
same element, so the adds are ATOMIC (``cuda.atomic.add``, see ``indexing.py``), and their
order, hence the last bits of a float sum, may change from run to run. Index values are
checked first (``indexing.check_bounds``), as for ``a[index]``.

``concatenate`` allocates the result and copies each input into its slice of it (one copy
kernel per input, ``a[..., start:stop, ...] = piece``).
"""

import numpy as np
from numba import cuda

from minimask.cuda.array.creation import zeros
from minimask.cuda.array.cuda_array import empty
from minimask.cuda.array.indexing import check_bounds
from minimask.cuda.array.launch import element_offset, grid
from minimask.cuda.array.layout import broadcast_strides, normalize_axis


@cuda.jit
def _take_along_axis_kernel(
    out, shape, x, x_strides, x_offset, axis_stride, axis_size, index, index_strides, index_offset
):
    """out[i] = x[i's coordinates, with index[i] along the axis] (x's stride there is 0).
    A copy: no arithmetic on the values."""
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        k = index[element_offset(i, shape, index_strides, index_offset)]
        if k < 0:
            k += axis_size
        out[i] = x[element_offset(i, shape, x_strides, x_offset) + k * axis_stride]


@cuda.jit
def _scatter_add_along_axis_kernel(
    size,
    shape,
    out,
    out_strides,
    axis_stride,
    axis_size,
    index,
    index_strides,
    index_offset,
    values,
    values_strides,
    values_offset,
):
    """out[j's coordinates, with index[j] along the axis] += values[j], one thread per j.
    Accumulates in the values' dtype because an element gets one term per j that names it
    (few: the gathers minimask differentiates rarely repeat an index), as on the CPU."""
    for j in range(cuda.grid(1), size, cuda.gridsize(1)):
        k = index[element_offset(j, shape, index_strides, index_offset)]
        if k < 0:
            k += axis_size
        position = element_offset(j, shape, out_strides, 0) + k * axis_stride
        cuda.atomic.add(
            out, position, values[element_offset(j, shape, values_strides, values_offset)]
        )


def take_along_axis(arr, indices, axis=-1):
    """NumPy's ``take_along_axis``: out[..., j, ...] = arr[..., indices[..., j, ...], ...]
    along ``axis``, arr and indices broadcast against each other in the other dims."""
    if axis is None:
        arr, axis = arr.reshape(-1), 0
    axis = normalize_axis(axis, arr.ndim)
    if indices.ndim != arr.ndim:
        raise ValueError("`indices` and `arr` must have the same number of dimensions")
    if indices.dtype.kind not in "iu":
        raise IndexError("`indices` must be an integer array")
    one = (1,)
    shape = list(
        np.broadcast_shapes(
            arr.shape[:axis] + one + arr.shape[axis + 1 :],
            indices.shape[:axis] + one + indices.shape[axis + 1 :],
        )
    )
    shape[axis] = indices.shape[axis]
    shape = tuple(shape)
    out = empty(shape, arr.dtype)
    if out.size == 0:
        return out
    check_bounds(indices, arr.shape[axis], axis)
    squeezed = arr._view(arr.shape[:axis] + one + arr.shape[axis + 1 :], arr.strides, arr.offset)
    x_strides = list(broadcast_strides(squeezed, shape))
    x_strides[axis] = 0  # the position along the axis comes from the index
    _take_along_axis_kernel[grid(out.size)](
        out.buffer,
        shape,
        arr.buffer,
        tuple(x_strides),
        arr.offset,
        arr.strides[axis],
        arr.shape[axis],
        indices.buffer,
        broadcast_strides(indices, shape),
        indices.offset,
    )
    return out


def scatter_add_along_axis(shape, index, values, axis):
    """The adjoint of ``take_along_axis(x, index, axis)`` (torch.gather): a zero array of
    ``shape`` with out[..., index[..., j, ...], ...] += values[..., j, ...] along ``axis``
    (atomic adds: two j can name the same element)."""
    out = zeros(shape, values.dtype)
    if index.size == 0:
        return out
    axis = normalize_axis(axis, len(shape))
    check_bounds(index, shape[axis], axis)
    out_strides = list(out.strides)
    axis_stride = out_strides[axis]
    out_strides[axis] = 0
    _scatter_add_along_axis_kernel[grid(index.size)](
        index.size,
        index.shape,
        out.buffer,
        tuple(out_strides),
        axis_stride,
        shape[axis],
        index.buffer,
        index.strides,
        index.offset,
        values.buffer,
        broadcast_strides(values, index.shape),
        values.offset,
    )
    return out


def concatenate(arrays, axis=0):
    """Join arrays along ``axis``: a new array, each input copied into its slice of it."""
    arrays = list(arrays)
    if not arrays:
        raise ValueError("need at least one array to concatenate")
    first = arrays[0]
    if first.ndim == 0:
        raise ValueError("zero-dimensional arrays cannot be concatenated")
    axis = normalize_axis(axis, first.ndim)
    for position, a in enumerate(arrays):
        if a.ndim != first.ndim or any(
            n != m for d, (n, m) in enumerate(zip(a.shape, first.shape)) if d != axis
        ):
            raise ValueError(
                f"concatenate: array {position} has shape {a.shape}, which does "
                f"not match array 0's shape {first.shape} outside axis {axis}"
            )
    shape = list(first.shape)
    shape[axis] = sum(a.shape[axis] for a in arrays)
    out = empty(tuple(shape), np.result_type(*(a.dtype for a in arrays)))
    start = 0
    for a in arrays:
        piece = [slice(None)] * out.ndim
        piece[axis] = slice(start, start + a.shape[axis])
        out[tuple(piece)] = a
        start += a.shape[axis]
    return out
