"""RoIPool on the GPU: the twin of ``minimask/cpu/roi_pool.py`` (read that file's docstring
for the tie rule and the NaN rule, which are the same). The box rounding and the bin
formulas are ``roi_pool_bin`` of ``minimask/geometry/roi_pool.py``, the function the CPU
kernels call, compiled by numba into these kernels as a device function.

Forward, ``roi_pool_forward_kernel``: one thread per OUTPUT element (k, c, ph, pw) (the
CPU's work item is an output row (k, c, ph)); each scans its bin row by row and keeps the
first strict maximum, so the same element wins a tie and gets the gradient.

Backward, two kernels, chosen by ``deterministic`` (``minimask.determinism``):

- ``roi_pool_backward_atomic_kernel`` (False): one thread per grad_out element adds its
  gradient at its argmax with ``cuda.atomic.add``. Several bins (of one roi, or of
  overlapping rois) can pick the same element, so several threads may add into it at
  once; the atomic add loses none of them, but their order (and so the last bits of the
  sum) can change from run to run.
- ``roi_pool_backward_kernel`` (True, the default): the CPU kernel's loop nest, one thread
  per (n, c) plane walking the rois of image n in order k, then ph, pw. One owner per
  element, a fixed order: the CPU's bits, every run (only N*C threads, though).

The sums are in the gradient's dtype, as on the CPU (RoIPool adds whole gradients, no
weights, and an element rarely receives more than a few). The forward compares in the
input's dtype: a maximum is exact in any dtype, so a float64 comparison (the CPU's
``best = 0.0``) would only add a conversion per cell on the GPU. The bin geometry is
float64, as on the CPU (``roi_pool_bin``: once per thread, not per cell).

The RoIPool Function passes ``deterministic`` from
``minimask.determinism.are_deterministic_algorithms_enabled()``; the CPU twin takes the
same parameter and is deterministic either way.
"""

import numpy as np
from numba import cuda

from minimask.cuda.array.creation import zeros
from minimask.cuda.array.cuda_array import empty
from minimask.cuda.array.launch import grid
from minimask.geometry.roi_pool import roi_pool_bin


def roi_pool_forward(input, rois, spatial_scale, pooled_h, pooled_w):
    """(out, argmax): see `roi_pool_forward_kernel`."""
    input = input.contiguous()
    shape = (rois.shape[0], input.shape[1], int(pooled_h), int(pooled_w))
    out, argmax = empty(shape, input.dtype), empty(shape, np.int64)
    if out.size:
        roi_pool_forward_kernel[grid(out.size)](
            input.device_ndarray(),
            rois.astype(np.float64, copy=False).contiguous().device_ndarray(),
            float(spatial_scale),
            out.device_ndarray(),
            argmax.device_ndarray(),
        )
    return out, argmax


def roi_pool_backward(grad_out, argmax, rois, input_shape, deterministic):
    """grad_input (N, C, H, W): see `roi_pool_backward_kernel` (deterministic, the CPU's
    loop nest) and `roi_pool_backward_atomic_kernel` (module docstring)."""
    grad_out = grad_out.contiguous()
    batch, channels, height, width = (int(size) for size in input_shape)
    grad_input = zeros((batch, channels, height * width), grad_out.dtype)
    if grad_out.size and grad_input.size:
        args = (
            grad_out.device_ndarray(),
            argmax.contiguous().device_ndarray(),
            rois.astype(np.float64, copy=False).contiguous().device_ndarray(),
            grad_input.device_ndarray(),
        )
        if deterministic:
            roi_pool_backward_kernel[grid(batch * channels)](*args)
        else:
            roi_pool_backward_atomic_kernel[grid(grad_out.size)](*args)
    return grad_input.reshape(batch, channels, height, width)


@cuda.jit
def roi_pool_forward_kernel(input, rois, spatial_scale, out, argmax):
    """out, argmax (K, C, PH, PW) = RoIPool of input (N, C, H, W) for rois (K, 5) float64;
    argmax int64 (h*W + w in the (n, c) plane, -1 for an empty bin, whose output is 0).

    Loop nest: one thread per output element, item = ((k*C + c)*PH + ph)*PW + pw; it scans
    its bin's rows, then columns, keeping the first strict maximum (a NaN always replaces
    it), as the CPU's work item does for each pw of its row.

    Compares in the input's dtype because a maximum needs no wider type (module docstring).
    """
    channels, height, width = input.shape[1], input.shape[2], input.shape[3]
    pooled_h, pooled_w = out.shape[2], out.shape[3]
    for item in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        pw = item % pooled_w
        ph = item // pooled_w % pooled_h
        c = item // (pooled_w * pooled_h) % channels
        k = item // (pooled_w * pooled_h * channels)
        n = int(rois[k, 0])
        h_start, h_end, w_start, w_end = roi_pool_bin(
            rois[k], spatial_scale, pooled_h, pooled_w, ph, pw, height, width
        )
        best = input.dtype.type(0)  # an empty bin gives 0 and argmax -1
        best_index = -1
        for h in range(h_start, h_end):
            for w in range(w_start, w_end):
                value = input[n, c, h, w]
                if best_index < 0 or value > best or value != value:  # value != value: NaN
                    best = value
                    best_index = h * width + w
        out[k, c, ph, pw] = best
        argmax[k, c, ph, pw] = best_index


@cuda.jit
def roi_pool_backward_kernel(grad_out, argmax, rois, grad_input):
    """grad_input (N, C, H*W), zeroed by the caller, += grad_out[k, c, ph, pw] at
    argmax[k, c, ph, pw] of plane (n_k, c); argmax -1 adds nothing. DETERMINISTIC.

    Loop nest (the CPU's `roi_pool_backward_kernel`): one thread per plane n*C + c, which
    owns grad_input[n, c] and walks the rois of image n in order k, then ph, pw.

    Accumulates in the gradient's dtype because an element gets few whole terms, as on the CPU.
    """
    channels = grad_input.shape[1]
    n_rois, pooled_h, pooled_w = grad_out.shape[0], grad_out.shape[2], grad_out.shape[3]
    for plane in range(cuda.grid(1), grad_input.shape[0] * channels, cuda.gridsize(1)):
        c = plane % channels
        n = plane // channels
        for k in range(n_rois):
            if int(rois[k, 0]) != n:
                continue
            for ph in range(pooled_h):
                for pw in range(pooled_w):
                    index = argmax[k, c, ph, pw]
                    if index >= 0:
                        grad_input[n, c, index] += grad_out[k, c, ph, pw]


@cuda.jit
def roi_pool_backward_atomic_kernel(grad_out, argmax, rois, grad_input):
    """grad_input (N, C, H*W), zeroed by the caller, += grad_out[k, c, ph, pw] at
    argmax[k, c, ph, pw] of plane (n_k, c), with ATOMIC adds.

    Loop nest: one thread per grad_out element, item = ((k*C + c)*PH + ph)*PW + pw. Bins
    that chose the same element add into it at once; the atomic add keeps every term, in
    an order that can change from run to run (module docstring).

    Accumulates in the gradient's dtype because an element gets few whole terms, as on the CPU.
    """
    channels, pooled_h, pooled_w = grad_out.shape[1], grad_out.shape[2], grad_out.shape[3]
    for item in range(cuda.grid(1), grad_out.size, cuda.gridsize(1)):
        pw = item % pooled_w
        ph = item // pooled_w % pooled_h
        c = item // (pooled_w * pooled_h) % channels
        k = item // (pooled_w * pooled_h * channels)
        index = argmax[k, c, ph, pw]
        if index >= 0:
            cuda.atomic.add(grad_input, (int(rois[k, 0]), c, index), grad_out[k, c, ph, pw])
