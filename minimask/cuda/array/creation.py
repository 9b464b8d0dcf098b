"""Making CudaArrays and moving data between the host and the GPU.

    asarray(data)    host data (NumPy array, list, number) or a CudaArray -> a new CudaArray
    to_numpy(a)      CudaArray -> a new host NumPy array
    empty / zeros / ones / full / arange    new arrays, NumPy's signatures

Host -> device copies go through ``memory.to_device`` of a contiguous host array, device ->
host through ``memory.to_host`` of the buffer range a contiguous array occupies (a strided
view is first made contiguous on the GPU, by one copy kernel); both are counted
(``minimask.cuda.stats()``). Random numbers are drawn
on the host and moved with ``asarray`` (minimask's factories do that), so CPU and CUDA
runs from one seed see the same numbers.
"""

import numpy as np

from minimask.cuda.array import elementwise, memory
from minimask.cuda.array.cuda_array import CudaArray
from minimask.cuda.array.cuda_array import empty as _empty


def asarray(data, dtype=None):
    """A new CudaArray holding a copy of ``data`` (never sharing the caller's memory, like
    the CPU backend's ``asarray``)."""
    if isinstance(data, CudaArray):
        return elementwise.astype(data, np.dtype(dtype) if dtype is not None else data.dtype)
    host = np.array(data, dtype=dtype, copy=True)
    if host.dtype.kind not in "biuf":
        raise TypeError(f"cannot put an array of dtype {host.dtype} on the GPU (numbers only)")
    buffer = memory.to_device(np.ascontiguousarray(host).reshape(-1))
    return CudaArray(buffer, host.shape)


def to_numpy(array):
    """A host NumPy copy of a CudaArray (of a NumPy array: a copy of it)."""
    if not isinstance(array, CudaArray):
        return np.array(array, copy=True)
    array = array.contiguous()
    flat = array.buffer[array.offset : array.offset + array.size]
    return memory.to_host(flat).reshape(array.shape)


def empty(shape, dtype=None):
    """A new uninitialised array; dtype None is float64, as in NumPy."""
    return _empty(shape, np.dtype(dtype or np.float64))


def full(shape, fill_value, dtype=None):
    """A new array of ``shape`` with every element ``fill_value`` (one copy kernel). The
    dtype defaults to NumPy's choice for ``fill_value``."""
    dtype = np.array(fill_value).dtype if dtype is None else np.dtype(dtype)
    out = _empty(shape, dtype)
    out[...] = fill_value
    return out


def zeros(shape, dtype=None):
    return full(shape, 0, dtype or np.float64)


def ones(shape, dtype=None):
    return full(shape, 1, dtype or np.float64)


def arange(start, stop=None, step=1, dtype=None):
    """NumPy's ``arange`` (computed on the host, where its rounding rules live, then moved)."""
    values = np.arange(start, stop, step) if stop is not None else np.arange(start, step=step)
    return asarray(values if dtype is None else values.astype(dtype))
