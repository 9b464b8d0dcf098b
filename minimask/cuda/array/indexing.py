"""Indexing on the GPU: ``a[index]``, ``a[index] = value`` and its adjoint ``index_add``,
with NumPy's semantics. (The gathers and scatters along one axis are ``along_axis.py``.)

Basic indexing (ints, slices, None, ...) makes a VIEW: each int moves the offset and drops
a dim, each slice ``start:stop:step`` moves the offset by ``start * stride`` and
multiplies the stride by ``step``, None adds a dim of size 1. No kernel runs.

Advanced indexing (integer or bool arrays among the items) runs a GATHER kernel. First the
basic items make a view V, in which each advanced item keeps its dim; bool arrays have
become the integer arrays of their nonzero positions (on the host: the result's size
depends on the data). The integer index arrays broadcast together to a shape B, and the
result has NumPy's shape: B in place of the indexed dims if they are adjacent in V, else
B first, followed by V's other dims. One thread per result element i then does

    position = offset of i's "V dims" in V                 (element_offset, as elementwise)
    b        = i's position in B
    for each index array a:   position += index_a[b] * (V's stride of a's dim)
    out[i]   = V[position]                                  (gather)

and writing uses the same addresses: ``a[idx] = v`` stores ``V[position] = v[i]``, and
``index_add`` (the backward of ``a[idx]``) adds ``V[position] += v[i]`` with an ATOMIC add
(``cuda.atomic.add``), because a repeated index sends several threads to one element at
the same time; a plain ``+=`` would lose some of the additions. (The CPU version uses
``np.add.at``.) Atomic float additions happen in whatever order the threads reach them, so
the last bits of such sums may change from run to run. In an assignment with a repeated
index one of the values wins, which one is not defined (NumPy: the last).

Index values are checked on the GPU (min and max of each index array, two numbers copied
back in one transfer, ``reduction.extrema``) before any kernel reads with them: an index
out of range is an IndexError, as in NumPy, never a read of someone else's memory.
"""

import numpy as np
from numba import cuda

from minimask.cuda.array import elementwise
from minimask.cuda.array.creation import asarray, to_numpy, zeros
from minimask.cuda.array.cuda_array import CudaArray, empty
from minimask.cuda.array.launch import element_offset, grid
from minimask.cuda.array.layout import broadcast_strides, contiguous_strides
from minimask.cuda.array.reduction import extrema

# ---------------------------------------------------------------------------- kernels


@cuda.jit(device=True)
def _source_position(
    i, shape, x_strides, x_offset, b_strides, indices, b_size, index_strides, index_sizes
):
    """Buffer position in V of result element i of an advanced index (module docstring)."""
    position = element_offset(i, shape, x_strides, x_offset)
    b = element_offset(i, shape, b_strides, 0)
    for a in range(len(index_strides)):
        index = indices[a * b_size + b]
        if index < 0:
            index += index_sizes[a]  # negative indices count from the end
        position += index * index_strides[a]
    return position


@cuda.jit
def _gather_kernel(
    out, shape, x, x_strides, x_offset, b_strides, indices, b_size, index_strides, index_sizes
):
    """out[i] = V[position of result element i] (module docstring). A copy: no arithmetic
    on the values."""
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = x[
            _source_position(
                i,
                shape,
                x_strides,
                x_offset,
                b_strides,
                indices,
                b_size,
                index_strides,
                index_sizes,
            )
        ]


@cuda.jit
def _assign_kernel(
    size,
    shape,
    x,
    x_strides,
    x_offset,
    b_strides,
    indices,
    b_size,
    index_strides,
    index_sizes,
    values,
    values_strides,
    values_offset,
):
    """V[position of element i] = values[i]. A copy: no arithmetic on the values."""
    for i in range(cuda.grid(1), size, cuda.gridsize(1)):
        position = _source_position(
            i, shape, x_strides, x_offset, b_strides, indices, b_size, index_strides, index_sizes
        )
        x[position] = values[element_offset(i, shape, values_strides, values_offset)]


@cuda.jit
def _add_kernel(
    size,
    shape,
    x,
    x_strides,
    x_offset,
    b_strides,
    indices,
    b_size,
    index_strides,
    index_sizes,
    values,
    values_strides,
    values_offset,
):
    """V[position of element i] += values[i], with an atomic add (module docstring).
    Accumulates in x's dtype because an element gets one term per repeat of its index
    (usually one), as NumPy's ``np.add.at`` on the CPU does."""
    for i in range(cuda.grid(1), size, cuda.gridsize(1)):
        position = _source_position(
            i, shape, x_strides, x_offset, b_strides, indices, b_size, index_strides, index_sizes
        )
        value = values[element_offset(i, shape, values_strides, values_offset)]
        cuda.atomic.add(x, position, value)  # repeated indices: see the module docstring


# ---------------------------------------------------------------------------- parsing an index


def _items(index):
    """The index as a list of ints, slices, None, Ellipsis and integer index arrays (host
    NumPy or CudaArray); bool arrays become their nonzero positions."""
    items = []
    for item in index if isinstance(index, tuple) else (index,):
        if isinstance(item, list):
            item = np.asarray(item)
        if isinstance(item, (CudaArray, np.ndarray)) and item.ndim == 0 and item.dtype.kind in "iu":
            item = int(item)
        if isinstance(item, (bool, np.bool_)):
            raise IndexError("a bool scalar as an index is not supported by the CUDA backend")
        if isinstance(item, (CudaArray, np.ndarray)):
            if item.dtype.kind == "b":
                items.append(("bool", item))
                continue
            if item.dtype.kind not in "iu":
                raise IndexError(
                    f"arrays used as indices must be of integer (or boolean) type, got {item.dtype}"
                )
        elif not (item is None or item is Ellipsis or isinstance(item, (slice, int, np.integer))):
            raise IndexError(f"unsupported index item {item!r}")
        items.append(item)
    return items


def _expand(x, items):
    """Bool arrays replaced by integer arrays, the Ellipsis expanded, trailing slices added;
    ints become 0-d index arrays when any item is an array (NumPy's rule)."""
    consumed = sum(
        item[1].ndim if isinstance(item, tuple) else 1
        for item in items
        if item is not None and item is not Ellipsis
    )
    if consumed > x.ndim:
        raise IndexError(
            f"too many indices for array: array is {x.ndim}-dimensional, but "
            f"{consumed} were indexed"
        )
    if sum(item is Ellipsis for item in items) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    # (by identity: `Ellipsis in items` would compare index arrays elementwise)
    at = next((k for k, item in enumerate(items) if item is Ellipsis), len(items))
    items = items[:at] + [slice(None)] * (x.ndim - consumed) + items[at + 1 :]
    expanded, dim = [], 0
    for item in items:
        if isinstance(item, tuple):  # a bool array covering mask.ndim dims
            mask = item[1]
            mask = to_numpy(mask) if isinstance(mask, CudaArray) else mask
            covered = x.shape[dim : dim + mask.ndim]
            if mask.shape != covered:
                raise IndexError(
                    f"boolean index of shape {mask.shape} does not match the "
                    f"indexed dims of shape {covered}"
                )
            expanded += list(np.nonzero(mask))
            dim += mask.ndim
        else:
            expanded.append(item)
            dim += item is not None
    if any(isinstance(item, (CudaArray, np.ndarray)) for item in expanded):
        expanded = [
            np.asarray(item) if isinstance(item, (int, np.integer)) else item for item in expanded
        ]
    return expanded


def _basic_view(x, items):
    """(V, advanced): the view the basic items make, and (dim of V, index array) for each
    advanced item (which keeps its dim in V)."""
    shape, strides, offset, advanced = [], [], x.offset, []
    dim = 0
    for item in items:
        if item is None:
            shape.append(1)
            strides.append(0)
            continue
        size, stride = x.shape[dim], x.strides[dim]
        if isinstance(item, slice):
            start, stop, step = item.indices(size)
            length = len(range(start, stop, step))
            offset += start * stride if length else 0
            shape.append(length)
            strides.append(stride * step)
        elif isinstance(item, (int, np.integer)):
            if not -size <= item < size:
                raise IndexError(f"index {item} is out of bounds for axis {dim} with size {size}")
            offset += (int(item) % size) * stride
        else:
            advanced.append((len(shape), item))
            shape.append(size)
            strides.append(stride)
        dim += 1
    return x._view(tuple(shape), tuple(strides), offset), advanced


class _AdvancedIndex:
    """The addressing of an advanced index into V (see the module docstring)."""

    def __init__(self, view, advanced):
        dims = [d for d, _ in advanced]
        arrays = [a if isinstance(a, CudaArray) else asarray(a) for _, a in advanced]
        b_shape = np.broadcast_shapes(*(a.shape for a in arrays))
        rest = [d for d in range(view.ndim) if d not in dims]
        if dims == list(range(dims[0], dims[0] + len(dims))):  # adjacent: B in their place
            layout = (
                [("v", d) for d in rest if d < dims[0]]
                + [("b", j) for j in range(len(b_shape))]
                + [("v", d) for d in rest if d > dims[-1]]
            )
        else:
            layout = [("b", j) for j in range(len(b_shape))] + [("v", d) for d in rest]
        b_contiguous = contiguous_strides(b_shape)
        self.shape = tuple(view.shape[d] if kind == "v" else b_shape[d] for kind, d in layout)
        self.x_strides = tuple(view.strides[d] if kind == "v" else 0 for kind, d in layout)
        self.b_strides = tuple(b_contiguous[d] if kind == "b" else 0 for kind, d in layout)
        self.b_size = int(np.prod(b_shape, dtype=np.int64))
        self.index_strides = tuple(view.strides[d] for d in dims)
        self.index_sizes = tuple(view.shape[d] for d in dims)
        self.view = view
        self.indices = _stacked_indices(arrays, b_shape)
        for a, size in enumerate(self.index_sizes):
            check_bounds(self.indices[a], size, dims[a])

    def arguments(self):
        """The kernel arguments after the output/size ones: shape and addressing."""
        shape, x_strides, b_strides = self.shape, self.x_strides, self.b_strides
        if not shape:
            shape, x_strides, b_strides = (1,), (0,), (0,)
        return (
            shape,
            self.view.buffer,
            x_strides,
            self.view.offset,
            b_strides,
            self.indices.buffer,
            self.b_size,
            self.index_strides,
            self.index_sizes,
        )


def _stacked_indices(arrays, b_shape):
    """The index arrays broadcast to B, side by side in one int64 array (indices[a *
    b_size + b], as the kernels read them): a new array that a copy kernel per index array
    fills, or, for one int64 index array that already lies so in its buffer (row-major
    from the buffer's start), that array itself."""
    single = arrays[0]
    if len(arrays) == 1 and single.dtype == np.int64 and single.offset == 0:
        if single.is_contiguous():
            return single.reshape((1,) + b_shape)
    indices = empty((len(arrays),) + b_shape, np.int64)
    for a, array in enumerate(arrays):
        indices[a] = array
    return indices


def check_bounds(index, size, axis):
    """IndexError unless every value of ``index`` lies in [-size, size)."""
    if index.size == 0:
        return
    low, high = (int(v) for v in to_numpy(extrema(index)))
    if low < -size or high >= size:
        bad = low if low < -size else high
        raise IndexError(f"index {bad} is out of bounds for axis {axis} with size {size}")


def _parse(x, index):
    return _basic_view(x, _expand(x, _items(index)))


def _values(value, dtype, shape, target):
    """``value`` as a CudaArray of ``dtype`` and its (buffer, strides, offset) over
    ``shape``; a copy if it shares memory with ``target`` (``a[idx] = a``)."""
    if not isinstance(value, CudaArray):
        elementwise._dtype_probe(value)  # refuses host NumPy arrays with a clear message
        value = asarray(np.array(value, dtype=dtype))
    if value.dtype != dtype or value.buffer is target.buffer:
        value = value.astype(dtype)
    return value.buffer, broadcast_strides(value, shape) or (0,), value.offset


# ---------------------------------------------------------------------------- the backend names


def getitem(x, index):
    """``x[index]``: a view for basic indices, a gather kernel for advanced ones."""
    view, advanced = _parse(x, index)
    if not advanced:
        return view
    plan = _AdvancedIndex(view, advanced)
    out = empty(plan.shape, x.dtype)
    if out.size:
        _gather_kernel[grid(out.size)](out.buffer, *plan.arguments())
    return out


def setitem(x, index, value):
    """``x[index] = value`` (value broadcast to the indexed shape, converted to x's dtype)."""
    view, advanced = _parse(x, index)
    if not advanced:
        elementwise.copy_into(view, value)
        return
    plan = _AdvancedIndex(view, advanced)
    size = int(np.prod(plan.shape, dtype=np.int64))
    if size:
        values = _values(value, x.dtype, plan.shape, x)
        _assign_kernel[grid(size)](size, *plan.arguments(), *values)


def index_add(shape, dtype, index, values):
    """The adjoint of ``x[index]``: a zero array of ``shape`` with ``values`` added at
    ``index``; a repeated index adds once per repeat (atomic adds, module docstring)."""
    out = zeros(shape, dtype)
    view, advanced = _parse(out, index)
    if not advanced:
        elementwise.copy_into(view, values)  # basic indexing selects each element once
        return out
    plan = _AdvancedIndex(view, advanced)
    size = int(np.prod(plan.shape, dtype=np.int64))
    if size:
        _add_kernel[grid(size)](
            size, *plan.arguments(), *_values(values, out.dtype, plan.shape, out)
        )
    return out
