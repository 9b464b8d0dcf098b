"""``CudaArray``: an n-dimensional array in GPU memory, with NumPy's interface.

A CudaArray is four things:

    buffer   a flat (1-d) numba device array: the GPU memory that holds the elements
    shape    a tuple of sizes, as NumPy's
    strides  a tuple of steps, one per dim, counted in ELEMENTS (NumPy counts bytes)
    offset   where element (0, 0, ..., 0) sits in the buffer

so the element at coordinates (c0, c1, ...) is ``buffer[offset + c0*strides[0] + ...]``.

Views cost nothing. Transposing swaps strides; a basic slice ``a[1:5:2]`` moves the offset
and multiplies a stride; ``broadcast_to`` gives a stretched dim stride 0; reshaping a
contiguous array computes new strides. All of them share the buffer, exactly like NumPy
views, and no kernel runs.

Everything else launches a kernel. ``a + b`` calls ``CudaArray.__add__``, which calls
``elementwise.binary("add", a, b)``: NumPy decides the result's shape (broadcasting) and
dtype, a new buffer is allocated, and ONE kernel launch runs one GPU thread per output
element, each reading its two operands through their strides (``minimask/cuda/array/launch.py``).
Reductions (``a.sum(axis=1)``), indexing (``a[idx]``) and ``a @ b`` work the same way,
each in its own file.

The array never leaves the GPU by itself: ``to_numpy`` copies it to the host, and so do
the few methods that must hand Python a value (``bool(a)``, ``float(a)``, ``a.item()``,
printing). NumPy functions refuse a CudaArray (``np.exp(a)`` is a TypeError that says
what to call instead), so a host computation cannot hide in GPU code.
"""

import numpy as np

from minimask.cuda.array import memory
from minimask.cuda.array.layout import (
    broadcast_strides,
    contiguous_strides,
    normalize_axis,
    shape_tuple,
)


def empty(shape, dtype=np.float64):
    """A new contiguous CudaArray of ``shape`` and ``dtype``, uninitialised."""
    shape = shape_tuple(shape)
    size = int(np.prod(shape, dtype=np.int64))
    return CudaArray(memory.device_buffer(size, dtype), shape)


class CudaArray:
    # NumPy functions and operators give way to ours: `np.float32(2) * a` calls
    # a.__rmul__, and `np.exp(a)` raises a TypeError instead of converting `a`.
    __array_ufunc__ = None

    def __init__(self, buffer, shape, strides=None, offset=0):
        self.buffer = buffer
        self.shape = shape_tuple(shape)
        self.strides = contiguous_strides(self.shape) if strides is None else tuple(strides)
        self.offset = int(offset)

    # ------------------------------------------------------------ properties
    @property
    def dtype(self):
        return np.dtype(self.buffer.dtype)

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def T(self):
        return self.transpose()

    def is_contiguous(self):
        """Row-major with no gaps (dims of size 1 may have any stride)."""
        expected = contiguous_strides(self.shape)
        return all(n == 1 or s == e for n, s, e in zip(self.shape, self.strides, expected))

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    # ------------------------------------------------------------ views (no kernel)
    def _view(self, shape, strides, offset):
        return CudaArray(self.buffer, shape, strides, offset)

    def reshape(self, *shape, order="C"):
        """A view with a new shape (one dim may be -1); a contiguous copy first when the
        elements are not laid out row-major."""
        if order != "C":
            raise ValueError("CudaArray.reshape supports order='C' only")
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = shape[0]
        shape = shape_tuple(shape)
        if shape.count(-1) > 1:
            raise ValueError("can only specify one unknown dimension")
        if -1 in shape:
            known = int(np.prod([n for n in shape if n != -1], dtype=np.int64))
            if known == 0 or self.size % known:
                raise ValueError(f"cannot reshape array of size {self.size} into shape {shape}")
            shape = tuple(self.size // known if n == -1 else n for n in shape)
        if int(np.prod(shape, dtype=np.int64)) != self.size:
            raise ValueError(f"cannot reshape array of size {self.size} into shape {shape}")
        source = self if self.is_contiguous() else self.copy()
        return source._view(shape, contiguous_strides(shape), source.offset)

    def ravel(self):
        return self.reshape(-1)

    def transpose(self, *axes):
        """A view with the dims reordered: dim d of the result is dim ``axes[d]`` of self."""
        if not axes or axes == (None,):
            axes = tuple(reversed(range(self.ndim)))
        elif len(axes) == 1 and not isinstance(axes[0], int):
            axes = tuple(axes[0])
        axes = tuple(normalize_axis(a, self.ndim) for a in axes)
        if sorted(axes) != list(range(self.ndim)):
            raise ValueError(f"axes {axes} don't match array of {self.ndim} dims")
        return self._view(
            tuple(self.shape[a] for a in axes), tuple(self.strides[a] for a in axes), self.offset
        )

    def swapaxes(self, axis1, axis2):
        axes = list(range(self.ndim))
        axis1, axis2 = normalize_axis(axis1, self.ndim), normalize_axis(axis2, self.ndim)
        axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
        return self.transpose(axes)

    def squeeze(self, axis=None):
        if axis is None:
            axes = tuple(d for d, n in enumerate(self.shape) if n == 1)
        else:
            axes = (axis,) if isinstance(axis, int) else tuple(axis)
            axes = tuple(normalize_axis(a, self.ndim) for a in axes)
            if any(self.shape[a] != 1 for a in axes):
                raise ValueError("cannot select an axis to squeeze out which has size not one")
        keep = [d for d in range(self.ndim) if d not in axes]
        return self._view(
            tuple(self.shape[d] for d in keep), tuple(self.strides[d] for d in keep), self.offset
        )

    def contiguous(self):
        """Self if already row-major, else a row-major copy (NumPy's ascontiguousarray)."""
        return self if self.is_contiguous() else self.copy()

    def device_ndarray(self):
        """The elements as an n-d numba device array of ``shape`` (a view, no copy), for
        kernels that index ``x[n, c, h, w]`` directly. Needs a contiguous array."""
        if not self.is_contiguous():
            raise ValueError("device_ndarray() needs a contiguous array; call .contiguous()")
        flat = self.buffer[self.offset : self.offset + self.size]
        return flat.reshape(self.shape) if self.shape else flat

    # ------------------------------------------------------------ copies and casts
    def copy(self):
        """A new contiguous array with the same elements."""
        return elementwise.astype(self, self.dtype)

    def astype(self, dtype, copy=True):
        dtype = np.dtype(dtype)
        if dtype == self.dtype and not copy:
            return self
        return elementwise.astype(self, dtype)

    def fill(self, value):
        self[...] = value

    # ------------------------------------------------------------ host values
    def item(self):
        if self.size != 1:
            raise ValueError("can only convert an array of size 1 to a Python scalar")
        return creation.to_numpy(self).reshape(()).item()

    def tolist(self):
        return creation.to_numpy(self).tolist()

    def __bool__(self):
        if self.size != 1:
            raise ValueError(
                "The truth value of an array with more than one element is ambiguous. "
                "Use a.any() or a.all()"
            )
        return bool(self.item())

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.dtype.kind not in "iu":
            raise TypeError(f"only integer arrays can be used as an index, not {self.dtype}")
        return int(self.item())

    def __repr__(self):
        return f"CudaArray({np.array2string(creation.to_numpy(self), separator=', ')}, " + (
            f"dtype={self.dtype})"
        )

    def __str__(self):
        return str(creation.to_numpy(self))

    def __format__(self, spec):
        return format(creation.to_numpy(self), spec)

    def __array__(self, dtype=None, copy=None):
        raise TypeError(
            "a CudaArray lives in GPU memory and NumPy cannot read it; copy it to the host "
            "with minimask.cuda.to_numpy(array) (or Tensor.numpy()), or use the backend's "
            "own function (minimask.cuda.exp, ...)"
        )

    # ------------------------------------------------------------ indexing
    def __getitem__(self, index):
        return indexing.getitem(self, index)

    def __setitem__(self, index, value):
        indexing.setitem(self, index, value)

    # ------------------------------------------------------------ reductions
    def sum(self, axis=None, keepdims=False, dtype=None):
        return reduction.sum(self, axis, keepdims, dtype)

    def mean(self, axis=None, keepdims=False):
        return reduction.mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return reduction.max(self, axis, keepdims)

    def min(self, axis=None, keepdims=False):
        return reduction.min(self, axis, keepdims)

    def argmax(self, axis=None, keepdims=False):
        return reduction.argmax(self, axis, keepdims=keepdims)

    def argmin(self, axis=None, keepdims=False):
        return reduction.argmin(self, axis, keepdims=keepdims)

    def any(self, axis=None, keepdims=False):
        return reduction.max(self.astype(np.bool_, copy=False), axis, keepdims)

    def all(self, axis=None, keepdims=False):
        return reduction.min(self.astype(np.bool_, copy=False), axis, keepdims)

    # ------------------------------------------------------------ operators
    # Each one is a single elementwise kernel launch (minimask/cuda/array/elementwise.py).
    def __add__(self, other):
        return elementwise.binary("add", self, other)

    def __radd__(self, other):
        return elementwise.binary("add", other, self)

    def __sub__(self, other):
        return elementwise.binary("subtract", self, other)

    def __rsub__(self, other):
        return elementwise.binary("subtract", other, self)

    def __mul__(self, other):
        return elementwise.binary("multiply", self, other)

    def __rmul__(self, other):
        return elementwise.binary("multiply", other, self)

    def __truediv__(self, other):
        return elementwise.binary("true_divide", self, other)

    def __rtruediv__(self, other):
        return elementwise.binary("true_divide", other, self)

    def __floordiv__(self, other):
        return elementwise.binary("floor_divide", self, other)

    def __rfloordiv__(self, other):
        return elementwise.binary("floor_divide", other, self)

    def __mod__(self, other):
        return elementwise.binary("remainder", self, other)

    def __rmod__(self, other):
        return elementwise.binary("remainder", other, self)

    def __pow__(self, other):
        return elementwise.binary("power", self, other)

    def __rpow__(self, other):
        return elementwise.binary("power", other, self)

    def __neg__(self):
        return elementwise.unary("negative", self)

    def __pos__(self):
        return self.copy()

    def __abs__(self):
        return elementwise.unary("absolute", self)

    def __invert__(self):
        # NumPy's ~ is "not" for bools; numba's would be the integer ~ (~True == -2)
        name = "logical_not" if self.dtype == np.bool_ else "invert"
        return elementwise.unary(name, self)

    def __and__(self, other):
        return elementwise.binary("bitwise_and", self, other)

    def __rand__(self, other):
        return elementwise.binary("bitwise_and", other, self)

    def __or__(self, other):
        return elementwise.binary("bitwise_or", self, other)

    def __ror__(self, other):
        return elementwise.binary("bitwise_or", other, self)

    def __xor__(self, other):
        return elementwise.binary("bitwise_xor", self, other)

    def __rxor__(self, other):
        return elementwise.binary("bitwise_xor", other, self)

    def __eq__(self, other):
        return elementwise.binary("equal", self, other)

    def __ne__(self, other):
        return elementwise.binary("not_equal", self, other)

    def __lt__(self, other):
        return elementwise.binary("less", self, other)

    def __le__(self, other):
        return elementwise.binary("less_equal", self, other)

    def __gt__(self, other):
        return elementwise.binary("greater", self, other)

    def __ge__(self, other):
        return elementwise.binary("greater_equal", self, other)

    __hash__ = None  # == is elementwise, as for NumPy arrays

    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(other, self)

    # In place: the same kernel, writing into self's own elements (out=self).
    def __iadd__(self, other):
        return elementwise.binary("add", self, other, out=self)

    def __isub__(self, other):
        return elementwise.binary("subtract", self, other, out=self)

    def __imul__(self, other):
        return elementwise.binary("multiply", self, other, out=self)

    def __itruediv__(self, other):
        return elementwise.binary("true_divide", self, other, out=self)


def broadcast_to(array, shape):
    """A read-only-in-spirit view of ``array`` stretched to ``shape``: NumPy's broadcasting
    rule (align from the right; a dim of size 1 may stretch, with stride 0)."""
    shape = shape_tuple(shape)
    return array._view(shape, broadcast_strides(array, shape), array.offset)


def expand_dims(a, axis):
    """A view with new dims of size 1 at ``axis`` (an int or a tuple of ints), as NumPy."""
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    ndim = a.ndim + len(axes)
    axes = {normalize_axis(d, ndim) for d in axes}
    shape, strides, source = [], [], iter(zip(a.shape, a.strides))
    for d in range(ndim):
        shape_d, stride_d = (1, 0) if d in axes else next(source)
        shape.append(shape_d)
        strides.append(stride_d)
    return a._view(tuple(shape), tuple(strides), a.offset)


# The operations build on CudaArray, so they are imported after it (as Tensor does ops).
from minimask.cuda.array import creation, elementwise, indexing, reduction  # noqa: E402
from minimask.cuda.array.matmul import matmul  # noqa: E402
