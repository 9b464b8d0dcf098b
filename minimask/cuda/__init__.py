"""The CUDA backend: arrays in GPU memory and ``numba.cuda`` kernels.

A backend is a module that offers the array functions the autograd Functions call as
``ctx.xp.<name>``; this one offers every name of ``minimask/cpu/`` with the same signature
and semantics, for ``CudaArray`` instead of NumPy arrays, so that a whole training step
(forward, backward, optimizer) runs on the GPU with no copy to the host. Compare the
files side by side: ``cpu/conv.py`` and ``cuda/conv.py`` have the same functions and
kernel names, and each kernel's docstring gives its loop nest.

Design
------
``array.py``        ``CudaArray``: a flat device buffer + shape, strides (in elements) and
                    offset. Views (transpose, reshape of a contiguous array, basic slicing,
                    broadcast_to with stride 0) share the buffer and run no kernel. Its
                    operators (``+``, ``<``, ``@``, ``[]``, ``.sum()``, ``+=``, ...) each
                    launch a kernel from the files below.
``launch.py``       the launch configuration and ``element_offset``: flat output index ->
                    coordinates -> buffer position through an operand's strides. Every
                    strided kernel uses it; it is how broadcasting and views cost nothing.
                    Kernels loop over their work items with a grid-stride loop, the twin of
                    the CPU's ``prange``: one thread per item on a GPU, one warp sharing
                    them in the simulator.
``elementwise.py``  map / zip / where kernels, one thread per output element. Each
                    operation is a plain Python function (``_add(a, b): return a + b``),
                    compiled as a device function and wrapped into a kernel by a closure,
                    cached per (operation, compute dtype). Result dtypes are NumPy's,
                    obtained by applying the NumPy ufunc to empty arrays of the same dtypes.
``functions.py``    the backend's elementwise names (exp, abs, maximum, where, ...), each
                    one launch of an elementwise kernel.
``reduction.py``    sum / max / min / argmax / argmin: one thread per output element looping
                    over the reduced elements; a shared-memory tree reduction when
                    everything is reduced to one number.
``matmul.py``       batched matmul with broadcast batch dims: 16 x 16 tiles in shared memory.
``indexing.py``     getitem / setitem (views for basic indices, gather kernels for advanced
                    ones), index_add and scatter_add_along_axis (atomic adds),
                    take_along_axis, concatenate.
``sorting.py``      argsort: a stable rank sort, one thread per element.
``creation.py``     asarray / to_numpy (host <-> device copies), zeros, ones, full, empty,
                    arange, astype.
``conv.py``, ``pooling.py``, ``interpolate.py``
                    twins of the CPU files: the same lowering and names, one thread per
                    output element; the backward scatters use atomic adds where the CPU
                    version gives a work item a whole plane (see each file).
``roi_align.py``, ``roi_pool.py``, ``nms.py``
                    the detection ops' kernels (minimask/ops/), twins of the CPU files.
``device_math.py``  exp, log, ... for kernels (NumPy's in the simulator: IEEE results
                    where Python's math module would raise).

No GPU? Set ``NUMBA_ENABLE_CUDASIM=1`` before numba is first imported: numba then runs
every kernel in its simulator, one Python thread per GPU thread (slow, so keep arrays
tiny), and ``is_available()`` is true. Random numbers are drawn on the host and copied
(``minimask``'s factories do that), so a CPU and a CUDA run from one seed agree.
"""

from numba import cuda as _numba_cuda

from minimask.cuda.array import CudaArray, broadcast_to, expand_dims  # noqa: F401
from minimask.cuda.creation import (  # noqa: F401
    arange,
    asarray,
    astype,
    empty,
    full,
    ones,
    to_numpy,
    zeros,
)
from minimask.cuda.functions import (  # noqa: F401
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
    sigmoid,
    sign,
    sqrt,
    tanh,
    where,
)
from minimask.cuda.indexing import (  # noqa: F401
    concatenate,
    index_add,
    scatter_add_along_axis,
    take_along_axis,
)
from minimask.cuda.matmul import matmul  # noqa: F401
from minimask.cuda.reduction import argmax, argmin  # noqa: F401
from minimask.cuda.sorting import argsort  # noqa: F401

# isort: split
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
from minimask.cuda.pooling import max_pool2d_backward, max_pool2d_forward  # noqa: F401

# isort: split
# detection ops (minimask/ops/): RoIAlign, RoIPool, NMS
from minimask.cuda.nms import nms  # noqa: F401
from minimask.cuda.roi_align import roi_align_backward, roi_align_forward  # noqa: F401
from minimask.cuda.roi_pool import roi_pool_backward, roi_pool_forward  # noqa: F401


def is_available():
    """True if numba finds a CUDA GPU, or runs its simulator (NUMBA_ENABLE_CUDASIM=1)."""
    return _numba_cuda.is_available()
