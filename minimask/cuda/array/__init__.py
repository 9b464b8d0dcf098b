"""The CUDA backend's device-array library: ``CudaArray`` and the NumPy-like functions on it.

The CPU backend gets its arrays from NumPy; the GPU has no NumPy, so this package is
that part of the CUDA backend: an n-dimensional array in GPU memory with NumPy's
interface (views, operators, reductions, indexing, dtype rules), each operation one or a
few ``numba.cuda`` kernel launches. The files beside it in ``minimask/cuda/`` are the
twins of ``minimask/cpu/`` and use this package as the CPU files use NumPy.

The package is called ``array`` for what it holds; the file that defines the class is
named after the class, ``cuda_array.py``, so that no module reads as ``array.array``.
``from minimask.cuda.array import CudaArray`` gives the class.

Design
------
``cuda_array.py``   ``CudaArray``: a flat device buffer + shape, strides (in elements) and
                    offset. Views (transpose, reshape of a contiguous array, basic slicing,
                    broadcast_to with stride 0) share the buffer and run no kernel. Its
                    operators (``+``, ``<``, ``@``, ``[]``, ``.sum()``, ``+=``, ...) each
                    launch a kernel from the files below.
``layout.py``       shapes and strides on the host: row-major strides, broadcast strides
                    (stride 0 along a stretched dim), axis checks. No GPU memory touched.
``launch.py``       the launch configuration (which counts each launch) and
                    ``element_offset``: flat output index -> coordinates -> buffer
                    position through an operand's strides. Every
                    strided kernel uses it; it is how broadcasting and views cost nothing.
                    Kernels loop over their work items with a grid-stride loop, the twin of
                    the CPU's ``prange``: one thread per item on a GPU, one warp sharing
                    them in the simulator.
``scalar_ops.py``   the operations as plain Python functions (``_add(a, b): return a + b``),
                    each with the NumPy ufunc whose dtype rule its result follows.
``elementwise.py``  map / zip / where kernels, one thread per output element. Each
                    operation of scalar_ops.py is compiled as a device function and wrapped
                    into a kernel by a closure, cached per (operation, compute dtype).
                    Result dtypes are NumPy's, obtained by applying the NumPy ufunc to
                    empty arrays of the same dtypes.
``functions.py``    the backend's elementwise names (exp, abs, maximum, where, ...), each
                    one launch of an elementwise kernel.
``reduction.py``    sum / max / min / argmax / argmin: one thread per output element looping
                    over the reduced elements; a shared-memory tree reduction when
                    everything is reduced to one number.
``matmul.py``       batched matmul with broadcast batch dims: 16 x 16 tiles in shared memory.
``indexing.py``     getitem / setitem (views for basic indices, gather kernels for advanced
                    ones) and index_add (atomic adds).
``along_axis.py``   take_along_axis and its adjoint scatter_add_along_axis (atomic adds),
                    concatenate.
``sorting.py``      argsort: a stable rank sort, one thread per element.
``creation.py``     asarray / to_numpy (host <-> device copies), zeros, ones, full, empty,
                    arange.
``memory.py``       the only calls that allocate device memory, copy to or from it, or wait
                    for the GPU; each is counted.
``counters.py``     the counts: launches (and work items, by launching function),
                    allocations, copies each way, waits (``minimask.cuda.stats()``).
``device_math.py``  exp, log, ... for kernels (NumPy's in the simulator: IEEE results
                    where Python's math module would raise).
``caching_pool.py`` the caching allocator's pool: freed blocks kept by size class and
                    reused (pure Python, over injected driver calls).
``memory_manager.py`` the pool as numba's memory manager (an EMM plugin; GPU only).
``allocator.py``    which allocator serves device memory (MINIMASK_CUDA_ALLOCATOR),
                    ``minimask.cuda.memory_stats()`` and ``empty_cache()``.
"""

from minimask.cuda.array.cuda_array import CudaArray  # noqa: F401
