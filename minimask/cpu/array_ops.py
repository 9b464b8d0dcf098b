"""CPU array functions that NumPy does not offer under one name.

Each one has a twin of the same name and signature in ``minimask/cuda/array_ops.py``, so
that an autograd Function can call ``ctx.xp.index_add(...)`` without knowing where its
arrays live.
"""

import numpy as np


def asarray(data, dtype=None):
    """A NumPy array holding ``data`` (copied, so the caller's buffer is never shared)."""
    return np.array(data, dtype=dtype, copy=True)


def to_numpy(array):
    """A host NumPy copy of a backend array."""
    return np.array(array, copy=True)


def shares_memory(a, b):
    """True if the two arrays may share memory (a view and its base, say): NumPy's bounds
    check, which never misses a shared buffer and costs O(1). Autograd uses it to give a
    view the version counter of the tensor it views (``minimask/autograd/version.py``)."""
    return bool(np.may_share_memory(a, b))


def astype(array, dtype):
    """``array`` converted to ``dtype`` (a new array)."""
    return array.astype(dtype, copy=True)


def sigmoid(x):
    """1 / (1 + exp(-x)), computed without overflow: with e = exp(-|x|),
    sigmoid(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def index_add(shape, dtype, index, values):
    """The adjoint of ``x[index]``: a zero array of ``shape`` with ``values`` added at ``index``.

    Integer-array indices may repeat a position (``x[[0, 0]]``); each repeat adds its own
    gradient, which is why this is an add (``np.add.at``) and not an assignment. But
    ``np.add.at`` is slow (an unbuffered loop), so where no position can repeat (basic
    indexing, a boolean mask, or one integer array without repeats: the models' row
    selections) a plain assignment does the same job.
    """
    out = np.zeros(shape, dtype=dtype)
    if _selects_each_position_once(shape, index):
        out[index] = values
    else:
        np.add.at(out, index, values)
    return out


def _selects_each_position_once(shape, index):
    items = index if isinstance(index, tuple) else (index,)
    arrays = [item for item in items if isinstance(item, np.ndarray)]
    if not arrays:
        return True  # basic indexing
    if len(items) != 1:
        return False
    (array,) = items
    if array.dtype == np.bool_:
        return True
    rows = np.where(array < 0, array + shape[0], array).reshape(-1)  # -1 and n-1 are one row
    return np.unique(rows).size == rows.size


def scatter_add_along_axis(shape, index, values, axis):
    """The adjoint of ``np.take_along_axis(x, index, axis)`` (torch.gather):

    out[..., index[..., j, ...], ...] += values[..., j, ...]   (along ``axis``)
    """
    out = np.zeros(shape, dtype=values.dtype)
    grids = list(np.indices(index.shape, sparse=True))
    grids[axis] = index
    np.add.at(out, tuple(grids), values)
    return out
