"""The CUDA backend: arrays in GPU memory and ``numba.cuda`` kernels.

A backend is a module that offers the array functions the autograd Functions call as
``ctx.xp.<name>``; this one offers every name of ``minimask/cpu/`` with the same signature
and semantics, for ``CudaArray`` instead of NumPy arrays, so that a whole training step
(forward, backward, optimizer) runs on the GPU with no copy to the host.

Reading cpu/ and cuda/ side by side
-----------------------------------
The files of this folder are the twins of ``minimask/cpu/``, file for file and name for
name: ``array_ops.py``, ``conv.py``, ``interpolate.py``, ``nms.py``, ``pooling.py``,
``roi_align.py``, ``roi_pool.py``. Open the two files of a pair next to each other; each
module docstring says what changes on the GPU (mostly who does which part of the loop
nest: the CPU gives a work item a row or a plane, the GPU gives a thread one element).
What NumPy is to the CPU files, ``minimask/cuda/array/`` is to these: the device-array
library (``CudaArray``, elementwise, reductions, matmul, indexing, ...), described in its
own package docstring.

The rules that keep the pairs comparable (tests/test_cuda_backend.py checks them):

- every function of a CPU file has a function of the same name in its CUDA twin (the few
  CPU-only helpers, speed devices such as the conv workspace or the channels-last copy,
  are listed in that test with the reason);
- same name, same contract: a host function takes the same parameters, with the same
  meaning, as its CPU twin. Where one backend ignores a parameter, its docstring says why;
- a kernel (``*_kernel``, ``im2col``, ``col2im``, the other ``@njit`` / ``@cuda.jit``
  twins) keeps its CPU twin's name and parameters, in the same order, with one
  difference: a CUDA kernel cannot return an array, so the arrays the CPU kernel returns
  are output parameters of the CUDA kernel, after the others, and the parameters that only
  gave their shape (``output_hw``, ``input_shape``, ...) may go, since the output array
  carries it (so may the CPU's channel block width, ``block``: a GPU thread has one
  channel). A kernel that writes into an array it is given (``im2col``, ``col2im``) has
  the same parameters in both. Each kernel's docstring gives its loop nest.

No GPU? Set ``NUMBA_ENABLE_CUDASIM=1`` before numba is first imported: numba then runs
every kernel in its simulator, one Python thread per GPU thread (slow, so keep arrays
tiny), and ``is_available()`` is true. Random numbers are drawn on the host and copied
(``minimask``'s factories do that), so a CPU and a CUDA run from one seed agree.

What a computation asks of the GPU (kernel launches and their work items, allocations,
copies each way, waits) is counted: ``minimask.cuda.stats()``, ``reset_stats()``, and
``with minimask.cuda.count() as c:`` for one block (``minimask/cuda/array/counters.py``).
Freed device memory is cached for reuse, as in PyTorch: ``memory_stats()``, ``empty_cache()``
(``minimask/cuda/array/allocator.py``; ``MINIMASK_CUDA_ALLOCATOR=default`` turns it off).
"""

from numba import cuda as _numba_cuda

from minimask.cuda.array import CudaArray  # noqa: F401
from minimask.cuda.array.allocator import empty_cache, memory_stats  # noqa: F401
from minimask.cuda.array.allocator import use_configured_allocator as _use_configured_allocator
from minimask.cuda.array.along_axis import concatenate, take_along_axis  # noqa: F401
from minimask.cuda.array.counters import count, reset_stats, stats  # noqa: F401
from minimask.cuda.array.creation import arange, empty, full, ones, zeros  # noqa: F401
from minimask.cuda.array.cuda_array import broadcast_to, expand_dims  # noqa: F401
from minimask.cuda.array.functions import (  # noqa: F401
    abs,
    equal,
    exp,
    greater,
    greater_equal,
    less,
    less_equal,
    log,
    log1p,
    logical_and,
    logical_not,
    logical_or,
    maximum,
    minimum,
    not_equal,
    sign,
    sqrt,
    tanh,
    where,
)
from minimask.cuda.array.matmul import matmul  # noqa: F401
from minimask.cuda.array.memory import synchronize  # noqa: F401
from minimask.cuda.array.reduction import argmax, argmin  # noqa: F401
from minimask.cuda.array.sorting import argsort  # noqa: F401

# isort: split
# the twins of minimask/cpu/
from minimask.cuda.array_ops import (  # noqa: F401
    asarray,
    astype,
    index_add,
    scatter_add_along_axis,
    shares_memory,
    sigmoid,
    to_numpy,
)
from minimask.cuda.conv import (  # noqa: F401
    conv2d_backward,
    conv2d_forward,
    conv_transpose2d_backward,
    conv_transpose2d_forward,
)
from minimask.cuda.interpolate import (  # noqa: F401
    interpolate_bilinear2d,
    interpolate_bilinear2d_backward,
    interpolate_nearest2d,
    interpolate_nearest2d_backward,
)
from minimask.cuda.nms import nms  # noqa: F401
from minimask.cuda.pooling import max_pool2d_backward, max_pool2d_forward  # noqa: F401
from minimask.cuda.roi_align import roi_align_backward, roi_align_forward  # noqa: F401
from minimask.cuda.roi_pool import roi_pool_backward, roi_pool_forward  # noqa: F401

_use_configured_allocator()  # before numba creates a CUDA context (on first use)


def is_available():
    """True if numba finds a CUDA GPU, or runs its simulator (NUMBA_ENABLE_CUDASIM=1)."""
    return _numba_cuda.is_available()
