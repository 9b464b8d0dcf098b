"""Elementwise operations on the GPU: one thread per output element.

Three kernel shapes cover every elementwise operation:

    map    out = f(a)            exp, log, negative, astype, copy, ...
    zip    out = f(a, b)         add, multiply, less, maximum, ...
    where  out = c ? a : b

Each thread takes its flat output index ``i``, turns it into coordinates of the output
shape and reads every operand at ITS strides (``launch.element_offset``). A broadcast
operand has stride 0 along the dims it is stretched over, a transposed or sliced one has
whatever strides its view has: the kernel never needs a contiguous copy. The output
usually is a new contiguous array; for ``a += b`` or ``a[1:3] = b`` it is ``a`` itself
(or the view), written through its strides.

Which dtype? NumPy's, exactly: before a launch we apply the NumPy ufunc of the same name
to EMPTY host arrays of the operands' dtypes (``np.add(np.empty(0, float32), 2.0)``) and
read the dtype of the result. So float32 with a Python float stays float32, int64 / int64
is float64, a comparison is bool, and an impossible combination raises NumPy's own error.
Inside the kernel the operands are first converted to the "compute" dtype (the result's,
or for a comparison the operands' common dtype), then ``f`` runs, then the value is stored.

How is ``f`` specialised? ``f`` is a plain Python function of ``scalar_ops.py``
(``_add(a, b): return a + b``).
``_zip_kernel("add", float32)`` compiles it as a CUDA device function and builds a
kernel around it, by a closure: the kernel calls ``f`` and ``cast`` (the compute dtype's
numba type), which are constants at compile time, so the compiled kernel has the
operation inlined. The kernel is built once per (operation, compute dtype) and cached
(``functools.cache``); numba then compiles it once per combination of argument types
(the operands' dtypes and number of dims) on first use.

A Python number operand is put on the GPU as a one-element array of the compute dtype
and read with stride 0, so it takes the same path as an array; each distinct number is
copied once and kept (``_scalar_buffer``). A NumPy array is refused:
GPU code must say when it moves data (``minimask.cuda.asarray``).
"""

import functools
import numbers

import numba
import numpy as np
from numba import cuda

from minimask.cuda.array import memory
from minimask.cuda.array.cuda_array import CudaArray, empty
from minimask.cuda.array.launch import element_offset, grid
from minimask.cuda.array.layout import broadcast_strides
from minimask.cuda.array.scalar_ops import BINARY, UNARY

SCALAR_BUFFERS = 1024  # the number operands kept on the GPU (``_scalar_buffer``)

# ---------------------------------------------------------------------------- the kernels


@functools.cache
def _map_kernel(name, compute_dtype):
    """out[i] = f(cast(a[i])) for every output element i (see the module docstring).
    Computes in the compute dtype (float32 for float32) because NumPy does; scalar_ops's
    functions avoid literals that numba would type as float64 (``_sigmoid``)."""
    f = cuda.jit(device=True)(UNARY[name][0])
    cast = numba.from_dtype(compute_dtype)

    @cuda.jit
    def map_kernel(size, shape, out, out_strides, out_offset, a, a_strides, a_offset):
        for i in range(cuda.grid(1), size, cuda.gridsize(1)):
            value = f(cast(a[element_offset(i, shape, a_strides, a_offset)]))
            out[element_offset(i, shape, out_strides, out_offset)] = value

    return map_kernel


@functools.cache
def _zip_kernel(name, compute_dtype):
    """out[i] = f(cast(a[i]), cast(b[i])) for every output element i. Computes in the
    compute dtype (float32 for float32, a Python number included) because NumPy does."""
    f = cuda.jit(device=True)(BINARY[name][0])
    cast = numba.from_dtype(compute_dtype)

    @cuda.jit
    def zip_kernel(
        size, shape, out, out_strides, out_offset, a, a_strides, a_offset, b, b_strides, b_offset
    ):
        for i in range(cuda.grid(1), size, cuda.gridsize(1)):
            a_value = cast(a[element_offset(i, shape, a_strides, a_offset)])
            b_value = cast(b[element_offset(i, shape, b_strides, b_offset)])
            out[element_offset(i, shape, out_strides, out_offset)] = f(a_value, b_value)

    return zip_kernel


@functools.cache
def _where_kernel(compute_dtype):
    """out[i] = cast(a[i]) if c[i] else cast(b[i]). A copy: no arithmetic on the values."""
    cast = numba.from_dtype(compute_dtype)

    @cuda.jit
    def where_kernel(
        size,
        shape,
        out,
        out_strides,
        out_offset,
        c,
        c_strides,
        c_offset,
        a,
        a_strides,
        a_offset,
        b,
        b_strides,
        b_offset,
    ):
        for i in range(cuda.grid(1), size, cuda.gridsize(1)):
            if c[element_offset(i, shape, c_strides, c_offset)]:
                value = cast(a[element_offset(i, shape, a_strides, a_offset)])
            else:
                value = cast(b[element_offset(i, shape, b_strides, b_offset)])
            out[element_offset(i, shape, out_strides, out_offset)] = value

    return where_kernel


# ---------------------------------------------------------------------------- launching


def _dtype_probe(operand):
    """What NumPy's dtype rules should see for ``operand``: an empty host array of its
    dtype, or the Python/NumPy number itself (NumPy treats a Python number as "weak")."""
    if isinstance(operand, CudaArray):
        return np.empty(0, operand.dtype)
    if isinstance(operand, (numbers.Number, np.generic)):
        return operand
    if isinstance(operand, np.ndarray):
        raise TypeError(
            "a NumPy (host) array cannot be an operand of a GPU operation; move it first with "
            "minimask.cuda.asarray(array)"
        )
    raise TypeError(f"unsupported operand type for a GPU operation: {type(operand).__name__}")


def _dtypes(ufunc, operands):
    """(compute dtype, output dtype) of ``ufunc`` on ``operands``, by NumPy's rules."""
    probes = [_dtype_probe(op) for op in operands]
    out_dtype = ufunc(*probes).dtype
    compute_dtype = out_dtype if out_dtype != np.bool_ else np.result_type(*probes)
    return compute_dtype, out_dtype


def _padded(shape, strides):
    """Kernels take at least 1 dim: a 0-d array is read as shape (1,) with stride 0."""
    return (shape, strides) if shape else ((1,), (0,))


def _layout(operand, shape, compute_dtype, out):
    """(buffer, strides, offset) that read ``operand`` as an array of ``shape``.

    A number becomes a one-element array of the compute dtype. An operand that shares
    ``out``'s memory in a different layout (``a += a.T``) is copied first: threads would
    otherwise read elements that other threads have already overwritten.
    """
    if not isinstance(operand, CudaArray):
        operand = _scalar(operand, compute_dtype)
    strides = broadcast_strides(operand, shape)
    if (
        out is not None
        and operand.buffer is out.buffer
        and (strides, operand.offset) != (out.strides, out.offset)
    ):
        operand = operand.copy()
        strides = broadcast_strides(operand, shape)
    return operand.buffer, _padded(shape, strides)[1], operand.offset


def _scalar(value, dtype):
    """A 0-d CudaArray holding ``value`` as ``dtype``, from ``_scalar_buffer``."""
    host = np.array([value], dtype=dtype)
    return CudaArray(_scalar_buffer(host.dtype.str, host.tobytes()), ())


@functools.lru_cache(maxsize=SCALAR_BUFFERS)
def _scalar_buffer(dtype, bits):
    """The one-element device buffer of the number with these bytes as ``dtype``, copied
    to the GPU on first use and kept: the numbers of a model (an epsilon, the 0 of
    ``zeros``, a mean's count) come back every step, and each copy would be a
    synchronous transfer. Keyed by the bytes, so -0.0 and 0.0 (equal as numbers) and NaN
    (equal to nothing) get buffers of their own. Shared buffers are safe because a
    number operand is only ever read: it is never an operation's output."""
    return memory.to_device(np.frombuffer(bits, dtype=np.dtype(dtype)).copy())


def _output(shape, dtype, out):
    """A new array for the result, or ``out`` (checked) for an in-place operation."""
    if out is None:
        return empty(shape, dtype)
    if out.shape != shape:
        raise ValueError(
            f"non-broadcastable output operand with shape {out.shape} "
            f"doesn't match the broadcast shape {shape}"
        )
    if not np.can_cast(dtype, out.dtype, casting="same_kind"):
        raise TypeError(
            f"Cannot cast ufunc output from {dtype} to {out.dtype} in place "
            "(casting rule 'same_kind')"
        )
    return out


def _launch(kernel, shape, out, operands, compute_dtype):
    """One launch of ``kernel``: one thread per element of ``shape``."""
    size = int(np.prod(shape, dtype=np.int64))
    if size == 0:
        return out
    arguments = []
    for operand in operands:
        arguments += _layout(operand, shape, compute_dtype, out)
    kernel_shape, out_strides = _padded(shape, out.strides)
    kernel[grid(size)](size, kernel_shape, out.buffer, out_strides, out.offset, *arguments)
    return out


def _shape_of(operand):
    return operand.shape if isinstance(operand, CudaArray) else ()


def unary(name, a, out=None, dtype=None):
    """``f(a)`` for the operation ``name`` of ``UNARY``, NumPy's dtype rule (or, for the
    result, ``dtype`` if given: ``sigmoid`` keeps the input's dtype, as on the CPU)."""
    compute_dtype, out_dtype = _dtypes(UNARY[name][1], [a])
    out_dtype = out_dtype if dtype is None else np.dtype(dtype)
    out = _output(_shape_of(a), out_dtype, out)
    return _launch(_map_kernel(name, compute_dtype), out.shape, out, [a], compute_dtype)


def binary(name, a, b, out=None):
    """``f(a, b)`` for the operation ``name`` of ``BINARY``, broadcasting as NumPy."""
    compute_dtype, out_dtype = _dtypes(BINARY[name][1], [a, b])
    shape = np.broadcast_shapes(_shape_of(a), _shape_of(b))
    out = _output(shape, out_dtype, out)
    return _launch(_zip_kernel(name, compute_dtype), shape, out, [a, b], compute_dtype)


def where(condition, x, y, out=None):
    """Elements of ``x`` where ``condition`` holds, else of ``y`` (all three broadcast)."""
    compute_dtype = np.result_type(_dtype_probe(x), _dtype_probe(y))
    _dtype_probe(condition)
    shape = np.broadcast_shapes(_shape_of(condition), _shape_of(x), _shape_of(y))
    out = _output(shape, compute_dtype, out)
    if not isinstance(condition, CudaArray):
        condition = _scalar(condition, np.bool_)
    return _launch(_where_kernel(compute_dtype), shape, out, [condition, x, y], compute_dtype)


def astype(a, dtype):
    """A new contiguous array: ``a``'s elements converted to ``dtype`` (the copy kernel
    with ``dtype`` as its compute dtype: C conversion rules, truncation towards 0)."""
    out = empty(a.shape, dtype)
    return _launch(_map_kernel("copy", np.dtype(dtype)), a.shape, out, [a], np.dtype(dtype))


def copy_into(out, value):
    """``out[...] = value``: ``value`` (an array or a number) broadcast and converted to
    ``out``'s dtype, written through ``out``'s strides (``out`` may be a view)."""
    _dtype_probe(value)
    shape = np.broadcast_shapes(_shape_of(value), out.shape)
    if shape != out.shape:
        raise ValueError(
            f"could not broadcast input array from shape {_shape_of(value)} into shape {out.shape}"
        )
    return _launch(_map_kernel("copy", out.dtype), out.shape, out, [value], out.dtype)
