"""Reference solutions of lesson 02's exercises (lessons/exercises/lesson02.py checks them)."""

import numba
import numpy as np
from numba import cuda


@numba.njit(parallel=True)
def row_sums(matrix):
    """Each row is one work item of prange: its sum is written by one thread, so no two
    threads write the same element."""
    sums = np.empty(matrix.shape[0])
    for i in numba.prange(matrix.shape[0]):
        total = 0.0
        for j in range(matrix.shape[1]):
            total += matrix[i, j]
        sums[i] = total
    return sums


@cuda.jit
def relu_backward_kernel(x, grad_out, grad_in):
    """Thread t of T handles elements t, t + T, t + 2T, ...: any grid covers any n."""
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        grad_in[i] = grad_out[i] if x[i] > 0 else 0


BLOCK = 32  # threads per block, and elements each block sums


@cuda.jit
def block_sum_kernel(values, block_sums):
    """Each thread loads one value (0 past the end) into the block's shared array; then,
    for half = 16, 8, 4, 2, 1, the first `half` threads add the element `half` above
    theirs. cuda.syncthreads() between the steps makes every write of a step visible
    before the next step reads it. Thread 0 writes the block's total."""
    partial = cuda.shared.array(BLOCK, numba.float32)
    t = cuda.threadIdx.x
    i = cuda.grid(1)
    partial[t] = values[i] if i < values.shape[0] else 0
    cuda.syncthreads()
    half = BLOCK // 2
    while half > 0:
        if t < half:
            partial[t] += partial[t + half]
        cuda.syncthreads()
        half //= 2
    if t == 0:
        block_sums[cuda.blockIdx.x] = partial[0]


@cuda.jit
def avg_pool_kernel(x, kernel_size, stride, out):
    """One output element per work item, in a grid-stride loop; the flat index is turned
    into (n, c, oh, ow), last dimension fastest, as in minimask's _window_max."""
    channels, out_h, out_w = out.shape[1], out.shape[2], out.shape[3]
    for item in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        ow = item % out_w
        oh = (item // out_w) % out_h
        c = (item // (out_w * out_h)) % channels
        n = item // (out_w * out_h * channels)
        total = 0.0
        for i in range(kernel_size):
            for j in range(kernel_size):
                total += x[n, c, oh * stride + i, ow * stride + j]
        out[n, c, oh, ow] = total / (kernel_size * kernel_size)
