"""Turning the operands of an operation into Tensors of one dtype, as PyTorch does.

A Python number next to a tensor takes the tensor's dtype (``x * 2.0`` stays float32),
except that a float number next to an integer tensor gives the default float dtype.
Two tensors of different dtypes are both cast to ``promote_types(a, b)`` (float32 and
float64 give float64) through the differentiable ``cast``, so every Function sees inputs
of one dtype and returns gradients of that dtype.
"""

import numbers

import numpy as np

from minimask.autograd.device import backend_for
from minimask.autograd.dtypes import default_float, is_floating, promote_types
from minimask.autograd.ops.cast import cast


def as_tensor(value, device, dtype=None):
    """``value`` (a Tensor, a number, a list or a NumPy array) as a Tensor on ``device``."""
    from minimask.autograd.tensor import Tensor

    if isinstance(value, Tensor):
        return value
    array = np.asarray(value, dtype=dtype)
    return Tensor(backend_for(device).asarray(array), device)


def scalar_dtype(number, tensor_dtype):
    """The dtype a Python number takes beside a tensor of ``tensor_dtype``."""
    if isinstance(number, bool):
        return tensor_dtype
    if isinstance(number, numbers.Integral) or is_floating(tensor_dtype):
        return tensor_dtype if tensor_dtype.kind != "b" else np.dtype(np.int64)
    return default_float


def common_operands(*values):
    """Tensors of one dtype and device from a mix of Tensors and numbers."""
    from minimask.autograd.tensor import Tensor

    tensors = [v for v in values if isinstance(v, Tensor)]
    if not tensors:
        raise TypeError("expected at least one Tensor operand")
    device = tensors[0].device
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = promote_types(dtype, t.dtype)
    converted = []
    for v in values:
        if isinstance(v, numbers.Number):
            number_dtype = scalar_dtype(v, dtype)
            dtype = promote_types(dtype, number_dtype)
            converted.append(as_tensor(v, device, number_dtype))
        else:
            converted.append(as_tensor(v, device))
    for t in converted:
        if t.device != device:
            raise RuntimeError(f"expected all operands on {device}, got one on {t.device}")
    return tuple(t if t.dtype == dtype else cast(t, dtype) for t in converted)


def check_broadcast(name, *tensors):
    """``tensors`` unchanged if their shapes broadcast together; else an error that names the
    operation and every shape (NumPy's own error would name neither)."""
    shapes = [t.shape for t in tensors]
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        raise RuntimeError(
            f"{name}: shapes {' and '.join(map(str, shapes))} do not broadcast (aligned from "
            "the right, each pair of sizes must be equal or one of them 1)"
        ) from None
    return tensors
