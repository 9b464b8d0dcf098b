"""Making tensors: ``tensor``, ``zeros``, ``ones``, ``full``, ``arange``, ``randn``, ``rand``
and their ``*_like`` forms, with PyTorch's dtype inference: Python floats give float32,
Python ints int64, bools bool; a NumPy array or NumPy scalar keeps its dtype."""

import numbers

import numpy as np

from minimask.autograd.device import backend_for, normalize_device
from minimask.autograd.dtypes import as_dtype, default_float
from minimask.autograd.random import default_generator
from minimask.autograd.tensor import Tensor


def _finish(array, dtype, device, requires_grad):
    if dtype is not None:
        array = array.astype(as_dtype(dtype), copy=False)
    device = normalize_device(device)
    out = Tensor(backend_for(device).asarray(array), device)
    out.requires_grad = requires_grad
    return out


def _size(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        return tuple(size[0])
    return tuple(size)


def tensor(data, dtype=None, device="cpu", requires_grad=False):
    """A new tensor holding a copy of ``data`` (a number, nested lists, a NumPy array or
    a Tensor)."""
    if isinstance(data, Tensor):
        data = data.numpy()
    array = np.array(data)
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"cannot make a tensor from {type(data).__name__} holding {array.dtype} "
            "(only numbers and bools)"
        )
    if dtype is None and array.dtype.kind == "f" and not isinstance(data, (np.ndarray, np.generic)):
        dtype = default_float
    return _finish(array, dtype, device, requires_grad)


def zeros(*size, dtype=None, device="cpu", requires_grad=False):
    return _finish(np.zeros(_size(size), dtype=dtype or default_float), None, device, requires_grad)


def ones(*size, dtype=None, device="cpu", requires_grad=False):
    return _finish(np.ones(_size(size), dtype=dtype or default_float), None, device, requires_grad)


def full(size, fill_value, dtype=None, device="cpu", requires_grad=False):
    if dtype is None:
        if isinstance(fill_value, bool):
            dtype = np.bool_
        elif isinstance(fill_value, numbers.Integral):
            dtype = np.int64
        else:
            dtype = default_float
    return _finish(np.full(_size((size,)), fill_value, dtype=dtype), None, device, requires_grad)


def arange(start, end=None, step=1, dtype=None, device="cpu", requires_grad=False):
    """[start, end) in steps of ``step``; int64 for integer arguments, else float32."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        integral = all(isinstance(v, numbers.Integral) for v in (start, end, step))
        dtype = np.int64 if integral else default_float
    return _finish(np.arange(start, end, step).astype(dtype), None, device, requires_grad)


def randn(*size, dtype=None, device="cpu", requires_grad=False):
    """Samples of the standard normal distribution."""
    array = default_generator().standard_normal(_size(size))
    return _finish(array.astype(dtype or default_float), None, device, requires_grad)


def rand(*size, dtype=None, device="cpu", requires_grad=False):
    """Samples of the uniform distribution on [0, 1)."""
    array = default_generator().random(_size(size))
    return _finish(array.astype(dtype or default_float), None, device, requires_grad)


def zeros_like(t, dtype=None, device=None, requires_grad=False):
    return zeros(
        t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad
    )


def ones_like(t, dtype=None, device=None, requires_grad=False):
    return ones(
        t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad
    )
