"""dtypes: NumPy's dtype objects under PyTorch's names, and PyTorch's promotion rule.

float32 is the default for floating data; float64 works everywhere so that ``gradcheck``
can use central differences with small errors.
"""

import numpy as np

float16 = np.dtype(np.float16)
float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
uint8 = np.dtype(np.uint8)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)

default_float = float32


def as_dtype(dtype):
    """``dtype`` as a NumPy dtype (accepts a name such as ``"float32"``, a type or a dtype)."""
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"not a dtype: {dtype!r}") from None


def is_floating(dtype):
    return np.dtype(dtype).kind == "f"


def promote_types(a, b):
    """The result dtype of a binary op, as in PyTorch: a floating operand wins over an
    integer one and keeps its own width (int64 + float32 -> float32, unlike NumPy's float64);
    two floats or two integers give the wider one."""
    a, b = np.dtype(a), np.dtype(b)
    if is_floating(a) != is_floating(b):
        return a if is_floating(a) else b
    return np.promote_types(a, b)
