"""Matrix product on the GPU: a tiled kernel with shared memory, batched, NumPy semantics.

out[..., i, j] = sum over k of a[..., i, k] * b[..., k, j], with the batch dims "..." of
a and b broadcast against each other (NumPy's ``matmul``); a 1-d ``a`` is a row vector
and a 1-d ``b`` a column vector, and that dim is dropped from the result.

The tiled kernel. Each block of TILE x TILE threads (TILE = 16) computes one TILE x TILE
tile of ``out``, thread (ty, tx) one element (row, col). Walking along k one tile at a
time, the block

    1. copies the TILE x TILE tile of a (rows of its output tile, columns k0..k0+TILE)
       and the tile of b (rows k0..k0+TILE, columns of its output tile) into SHARED
       memory, each thread one element of each (0 past the edges of a and b);
    2. waits for all its threads (cuda.syncthreads), so both tiles are complete;
    3. each thread adds its TILE products  a_tile[ty, kk] * b_tile[kk, tx];
    4. waits again before the tiles are overwritten by the next step.

Every element of a and b is then read from (slow) global memory once per tile instead of
once per product: TILE times fewer reads than the naive "one thread, one dot product".
The grid is (column tiles, row tiles, batch): ``cuda.blockIdx.z`` is the batch index,
whose position in a and b comes from the broadcast batch strides (stride 0 where an
operand is broadcast), so a (B, M, K) @ (K, N) product reads b's one matrix B times
without copying it. a and b are read through their strides: a transposed operand
(``a.swapaxes(-1, -2)``, as in the backward of a matmul) needs no copy.
Sums accumulate in the result dtype, in k order (BLAS orders them differently: float32
results differ from NumPy's by rounding). A float32 product accumulates in float32, as
cuBLAS's and PyTorch's float32 GEMMs do: the multiply-add of step 3 is the inner loop of
every convolution and linear layer, K per output element, and float64 units run at 1/32
to 1/64 of float32's rate on consumer GPUs, so a float64 accumulator could make the
GEMMs, most of the network's arithmetic, up to that much slower.
"""

import functools

import numba
import numpy as np
from numba import cuda

from minimask.cuda.array.cuda_array import CudaArray, empty
from minimask.cuda.array.launch import element_offset, tiled
from minimask.cuda.array.layout import broadcast_strides

TILE = 16
MAX_BATCH = 65535  # the grid's z dimension (the batch) may not be larger


@functools.cache
def _matmul_kernel(dtype):
    """The tiled kernel for results of ``dtype`` (shared memory needs the type).
    Accumulates in ``dtype`` (float32 for float32) because it is the network's inner loop."""
    real = numba.from_dtype(dtype)

    @cuda.jit
    def matmul_kernel(
        out,
        m,
        n,
        k,
        batch_shape,
        a,
        a_batch_strides,
        a_row_stride,
        a_col_stride,
        a_offset,
        b,
        b_batch_strides,
        b_row_stride,
        b_col_stride,
        b_offset,
    ):
        a_tile = cuda.shared.array((TILE, TILE), real)
        b_tile = cuda.shared.array((TILE, TILE), real)
        ty, tx = cuda.threadIdx.y, cuda.threadIdx.x
        row = cuda.blockIdx.y * TILE + ty
        col = cuda.blockIdx.x * TILE + tx
        batch = cuda.blockIdx.z
        a_base = element_offset(batch, batch_shape, a_batch_strides, a_offset)
        b_base = element_offset(batch, batch_shape, b_batch_strides, b_offset)
        acc = real(0)
        for k0 in range(0, k, TILE):
            # 1. one element of each tile per thread (0 outside the matrices)
            a_k, b_k = k0 + tx, k0 + ty
            if row < m and a_k < k:
                a_tile[ty, tx] = a[a_base + row * a_row_stride + a_k * a_col_stride]
            else:
                a_tile[ty, tx] = 0
            if b_k < k and col < n:
                b_tile[ty, tx] = b[b_base + b_k * b_row_stride + col * b_col_stride]
            else:
                b_tile[ty, tx] = 0
            cuda.syncthreads()  # 2. both tiles complete
            for kk in range(TILE):  # 3. this thread's TILE products
                acc += a_tile[ty, kk] * b_tile[kk, tx]
            cuda.syncthreads()  # 4. everyone is done with the tiles
        if row < m and col < n:
            out[(batch * m + row) * n + col] = acc

    return matmul_kernel


def matmul(a, b):
    """NumPy's ``matmul`` of two CudaArrays (see the module docstring)."""
    if not (isinstance(a, CudaArray) and isinstance(b, CudaArray)):
        raise TypeError("matmul: both operands must be CudaArrays")
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul: Input operand does not have enough dimensions")
    if a.ndim == 1:
        return matmul(a.reshape(1, -1), b)[..., 0, :] if b.ndim > 1 else _vector_dot(a, b)
    if b.ndim == 1:
        return matmul(a, b.reshape(-1, 1))[..., 0]
    m, k = a.shape[-2:]
    k_b, n = b.shape[-2:]
    if k != k_b:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape}: {k} columns against {k_b} rows")
    batch_shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    dtype = np.result_type(a.dtype, b.dtype)
    out = empty(batch_shape + (m, n), dtype)
    batch = int(np.prod(batch_shape, dtype=np.int64))
    if out.size == 0:
        return out
    if batch > MAX_BATCH:
        raise ValueError(f"matmul: batch of {batch} matrices exceeds the grid's {MAX_BATCH}")
    a_batch = broadcast_strides(CudaArray(a.buffer, a.shape[:-2], a.strides[:-2]), batch_shape)
    b_batch = broadcast_strides(CudaArray(b.buffer, b.shape[:-2], b.strides[:-2]), batch_shape)
    blocks = ((n + TILE - 1) // TILE, (m + TILE - 1) // TILE, batch)
    _matmul_kernel(dtype)[tiled(blocks, (TILE, TILE), out.size)](
        out.buffer,
        m,
        n,
        k,
        batch_shape or (1,),
        a.buffer,
        a_batch or (0,),
        a.strides[-2],
        a.strides[-1],
        a.offset,
        b.buffer,
        b_batch or (0,),
        b.strides[-2],
        b.strides[-1],
        b.offset,
    )
    return out


def _vector_dot(a, b):
    """1-d @ 1-d: the sum of products, a 0-d array."""
    return matmul(a.reshape(1, -1), b.reshape(-1, 1)).reshape(())
