"""GPU array functions that NumPy does not offer under one name: the twin of
``minimask/cpu/array_ops.py``.

Each function has the CPU one's name and signature, so that an autograd Function can call
``ctx.xp.index_add(...)`` without knowing where its arrays live. Each is one call into the
device-array library (``minimask/cuda/array/``), which holds the kernels; the docstrings
say what happens on the GPU.
"""

import numpy as np

from minimask.cuda.array import along_axis, creation, elementwise, indexing


def asarray(data, dtype=None):
    """A new CudaArray holding a copy of ``data``: host data (a NumPy array, list or number)
    is copied to GPU memory, a CudaArray is copied on the GPU (one copy kernel). The
    caller's buffer is never shared, as on the CPU."""
    return creation.asarray(data, dtype)


def to_numpy(array):
    """A host NumPy copy of a backend array: the device buffer is copied to the host (a
    strided view is first made contiguous on the GPU)."""
    return creation.to_numpy(array)


def shares_memory(a, b):
    """True if the two arrays are views of one device buffer (a view and its base, say):
    a CudaArray is a buffer plus shape, strides and offset, so the buffers tell. Autograd
    uses it to give a view the version counter of the tensor it views."""
    buffer = getattr(a, "buffer", None)
    return buffer is not None and buffer is getattr(b, "buffer", None)


def astype(array, dtype):
    """``array`` converted to ``dtype`` (a new array): one copy kernel whose threads each
    convert one element (C conversion rules: truncation towards 0, as NumPy's)."""
    return elementwise.astype(array, np.dtype(dtype))


def sigmoid(x):
    """1 / (1 + exp(-x)) in x's dtype, computed without overflow: one elementwise kernel
    whose threads compute, with e = exp(-|x|), 1 / (1 + e) for x >= 0 and e / (1 + e)
    for x < 0 (the CPU's formula)."""
    return elementwise.unary("sigmoid", x, dtype=x.dtype)


def index_add(shape, dtype, index, values):
    """The adjoint of ``x[index]``: a zero array of ``shape`` with ``values`` added at
    ``index``. A repeated index adds once per repeat: one thread per value, adding with
    ``cuda.atomic.add`` (the CPU uses ``np.add.at``, or an assignment where no position
    can repeat); basic indexing selects each element once and is a plain copy kernel."""
    return indexing.index_add(shape, dtype, index, values)


def scatter_add_along_axis(shape, index, values, axis):
    """The adjoint of ``take_along_axis(x, index, axis)`` (torch.gather):

    out[..., index[..., j, ...], ...] += values[..., j, ...]   (along ``axis``)

    one thread per value, adding with ``cuda.atomic.add`` (two j can name one element)."""
    return along_axis.scatter_add_along_axis(shape, index, values, axis)
