"""Shapes and strides on the host: the arithmetic behind every view and every launch.

A ``CudaArray`` reads element (c0, c1, ...) at ``offset + c0*strides[0] + c1*strides[1] + ...``
of its buffer (strides in ELEMENTS, not bytes). These functions compute such strides and
check axes; they touch no GPU memory and run no kernel, so the array class, the kernels'
launchers and the views all share them.
"""

import numpy as np


def shape_tuple(shape):
    """``shape`` (an int or a sequence of ints) as a tuple of Python ints."""
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(int(n) for n in shape)


def contiguous_strides(shape):
    """Row-major strides (in elements) of ``shape``: the last dim has stride 1."""
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


def broadcast_strides(array, shape):
    """The strides that read ``array`` as if it had ``shape`` (0 along stretched dims),
    by NumPy's broadcasting rule: align from the right; a dim of size 1 may stretch."""
    extra = len(shape) - array.ndim
    if extra < 0:
        raise ValueError(f"cannot broadcast an array of shape {array.shape} to {shape}")
    strides = [0] * extra
    for n, m, s in zip(array.shape, shape[extra:], array.strides):
        if n == m:
            strides.append(s)
        elif n == 1:
            strides.append(0)
        else:
            raise ValueError(f"cannot broadcast an array of shape {array.shape} to {shape}")
    return tuple(strides)


def normalize_axis(axis, ndim):
    """``axis`` as a non-negative int (negative axes count from the end)."""
    if not -ndim <= axis < ndim:
        raise np.exceptions.AxisError(axis, ndim)
    return axis % ndim
