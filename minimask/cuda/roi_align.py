"""RoIAlign on the GPU: the twin of ``minimask/cpu/roi_align.py`` (read that file's
docstring first: the precision rules are the same, and the box geometry, the sample
positions, the border rule and the bilinear weights are the same four functions of
``minimask/geometry/roi_align.py``, which numba compiles into these kernels as device
functions).

What changes on the GPU is who does which part of the loop nest.

Forward, ``roi_align_forward_kernel``: one thread per OUTPUT element (k, c, ph, pw), on the
NCHW input as it is. The CPU gives a work item a whole output row and all C channels at
once (on a channels-last copy, so that its innermost loop vectorises); a GPU has threads
to spare, and the C threads of one bin run side by side, reading the same 4 cells of C
neighbouring planes. Each thread writes only its own element: no conflicts.

Backward, two kernels, chosen by ``deterministic`` (``minimask.determinism``; the RoIAlign
Function passes ``are_deterministic_algorithms_enabled()``, True by default):

- ``roi_align_backward_atomic_kernel`` (deterministic=False): one thread per grad_out
  element (k, c, ph, pw), which sends its 4 bilinear terms per sample into grad_input with
  ``cuda.atomic.add``. This is the paper's / torchvision's CUDA kernel: K*C*PH*PW threads
  (6.4 million for 512 rois, 256 channels, 7x7), so the GPU is full. But many threads add
  into one cell (overlapping rois, neighbouring samples, the clamped border band), and the
  order in which their atomic adds land depends on how the hardware schedules the
  threads, which changes from run to run. Float addition is not associative, so the last
  bits of such a sum change too: two runs give gradients that differ by a few roundings.
- ``roi_align_backward_kernel`` (deterministic=True, the default): the CPU kernel's loop
  nest exactly, one thread per (n, c) plane (the CPU's work item with a channel block of
  width 1), looping over the rois k of image n in index order, their bins (ph, pw) and
  samples (iy, ix). Each cell has one owner that adds its terms in the fixed order
  (k, ph, pw, iy, ix), so every run gives the same bits, and they are the CPU's order.
  The price is parallelism: N*C threads (512 for 2 images of 256 channels, far fewer
  than the hundreds of thousands a large GPU keeps resident), each running a serial loop
  over all the rois of its image, so this kernel is much slower than the atomic one on a
  big GPU. minimask still defaults to it:
  students compare CPU and CUDA runs, and a resumed training run must continue exactly.

Both backward kernels accumulate in a float64 buffer (like the CPU kernel) and convert to
the gradient's dtype at the end, so a float32 gradient is one rounding of a float64 sum.
float64 stays on the GPU, though a consumer GPU runs it at 1/32 to 1/64 of float32's rate:
the box geometry, the sample positions and the bilinear weights are float64 in both
backends (``minimask/geometry/roi_align.py``, with float64 rois), and that, not the few
additions per sample, is most of a thread's float64 work; keeping the sums float64 too
keeps the CPU's bits (tests/test_cuda_ops.py), and makes the atomic kernel's run-to-run
differences float64 roundings, which a float32 gradient almost never shows.

Bit-identity with the CPU. In numba's simulator the deterministic kernel gives exactly
the CPU's bits (same operations, same order, each rounded once; tests/test_cuda_ops.py
checks it). On a real GPU the compiler (NVVM, whose default numba does not change unless
``fastmath=True``) may contract ``a * b + c`` into one fused multiply-add, rounded once
instead of twice, so CPU and GPU can differ in the last bits; the deterministic kernel
still gives the same bits on every run of the same GPU.
"""

import numpy as np
from numba import cuda

from minimask.cuda.array.creation import zeros
from minimask.cuda.array.cuda_array import empty
from minimask.cuda.array.launch import grid
from minimask.geometry.roi_align import (
    bilinear_corners,
    outside_map,
    roi_geometry,
    sample_position,
)


def _rois_array(rois):
    """rois (K, 5) as a contiguous float64 device array for the kernels."""
    return rois.astype(np.float64, copy=False).contiguous().device_ndarray()


def roi_align_forward(input, rois, spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned):
    """out (K, C, PH, PW): RoIAlign of input (N, C, H, W) for rois (K, 5) float64 (rows
    (batch_index, x1, y1, x2, y2), already checked). See `roi_align_forward_kernel`."""
    input = input.contiguous()
    out = empty((rois.shape[0], input.shape[1], int(pooled_h), int(pooled_w)), input.dtype)
    if out.size:
        roi_align_forward_kernel[grid(out.size)](
            input.device_ndarray(),
            _rois_array(rois),
            float(spatial_scale),
            int(pooled_h),
            int(pooled_w),
            int(sampling_ratio),
            bool(aligned),
            out.device_ndarray(),
        )
    return out


@cuda.jit
def roi_align_forward_kernel(
    input, rois, spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned, out
):
    """out (K, C, PH, PW) = RoIAlign of input (N, C, H, W) for rois (K, 5) float64.

    Loop nest (one thread per output element, grid-stride, see minimask/cuda/array/launch.py):

        for item = ((k*C + c)*PH + ph)*PW + pw     K*C*PH*PW threads
            acc = 0                                one float64 sum
            for iy, ix                             the bin's samples
                corners, weights = bilinear_corners(y, x)
                acc += w_ll*f[n, c, y_low, x_low] + ... (4 terms)
            out[k, c, ph, pw] = acc / count

    The terms and their order are the CPU kernel's for one channel, with the feature
    values promoted to float64 before the products (the CPU's NumPy promotion does that).

    Accumulates in float64 because the sum is short (grid_h * grid_w samples) next to the
    float64 geometry, and keeps the CPU's bits (module docstring).
    """
    channels, height, width = input.shape[1], input.shape[2], input.shape[3]
    for item in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        pw = item % pooled_w
        ph = item // pooled_w % pooled_h
        c = item // (pooled_w * pooled_h) % channels
        k = item // (pooled_w * pooled_h * channels)
        n, start_h, start_w, bin_h, bin_w, grid_h, grid_w = roi_geometry(
            rois[k], spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned
        )
        count = max(grid_h * grid_w, 1)
        acc = 0.0
        for iy in range(grid_h):
            y = sample_position(start_h, ph, bin_h, iy, grid_h)
            for ix in range(grid_w):
                x = sample_position(start_w, pw, bin_w, ix, grid_w)
                if outside_map(y, x, height, width):
                    continue
                y_low, x_low, y_high, x_high, w_ll, w_lh, w_hl, w_hh = bilinear_corners(
                    y, x, height, width
                )
                acc += (
                    w_ll * float(input[n, c, y_low, x_low])
                    + w_lh * float(input[n, c, y_low, x_high])
                    + w_hl * float(input[n, c, y_high, x_low])
                    + w_hh * float(input[n, c, y_high, x_high])
                )
        out[k, c, ph, pw] = acc / count


def roi_align_backward(
    grad_out, rois, input_shape, spatial_scale, sampling_ratio, aligned, deterministic=True
):
    """grad_input (N, C, H, W): the adjoint of `roi_align_forward` for rois (K, 5) float64.

    deterministic=True runs `roi_align_backward_kernel` (the CPU's loop nest, one thread
    per (n, c) plane: the same bits every run); False runs
    `roi_align_backward_atomic_kernel` (one thread per grad_out element, atomic adds:
    faster, last bits vary from run to run). See the module docstring.
    """
    grad_out = grad_out.contiguous()
    input_shape = tuple(int(size) for size in input_shape)
    acc = zeros(input_shape, np.float64)
    if grad_out.size and acc.size:
        args = (
            grad_out.device_ndarray(),
            _rois_array(rois),
            float(spatial_scale),
            int(sampling_ratio),
            bool(aligned),
            acc.device_ndarray(),
        )
        if deterministic:
            planes = input_shape[0] * input_shape[1]
            roi_align_backward_kernel[grid(planes)](*args)
        else:
            roi_align_backward_atomic_kernel[grid(grad_out.size)](*args)
    return acc.astype(grad_out.dtype, copy=False)


@cuda.jit
def roi_align_backward_kernel(grad_out, rois, spatial_scale, sampling_ratio, aligned, acc):
    """acc (N, C, H, W) float64, zeroed by the caller, += the adjoint of the forward:
    every sample of bin (k, ph, pw) sends grad_out[k, c, ph, pw] / count, times each of its
    4 bilinear weights, back to the 4 cells it read. The DETERMINISTIC kernel.

    Loop nest (the CPU's `roi_align_backward_kernel` with a channel block of width 1):

        for plane = n*C + c                        N*C threads, one owner per plane
            for k in 0 .. K-1 with batch index n   every roi on image n, in order
                for ph, pw                         its bins
                    g = grad_out[k, c, ph, pw] / count
                    for iy, ix                     the bin's samples
                        acc[n, c, y_low, x_low] += w_ll * g     (and the other 3)

    No two threads write the same cell, so no atomics, and each cell receives its terms in
    the order (k, ph, pw, iy, ix): the same sums, in the same order, as the CPU.

    Accumulates in float64 because that gives the CPU's bits, and the weights are float64.
    """
    channels, height, width = acc.shape[1], acc.shape[2], acc.shape[3]
    n_rois, pooled_h, pooled_w = grad_out.shape[0], grad_out.shape[2], grad_out.shape[3]
    for plane in range(cuda.grid(1), acc.shape[0] * channels, cuda.gridsize(1)):
        c = plane % channels
        n = plane // channels
        for k in range(n_rois):
            if int(rois[k, 0]) != n:
                continue
            _, start_h, start_w, bin_h, bin_w, grid_h, grid_w = roi_geometry(
                rois[k], spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned
            )
            count = max(grid_h * grid_w, 1)
            for ph in range(pooled_h):
                for pw in range(pooled_w):
                    grad_bin = float(grad_out[k, c, ph, pw]) / count
                    for iy in range(grid_h):
                        y = sample_position(start_h, ph, bin_h, iy, grid_h)
                        for ix in range(grid_w):
                            x = sample_position(start_w, pw, bin_w, ix, grid_w)
                            if outside_map(y, x, height, width):
                                continue
                            y_low, x_low, y_high, x_high, w_ll, w_lh, w_hl, w_hh = bilinear_corners(
                                y, x, height, width
                            )
                            acc[n, c, y_low, x_low] += w_ll * grad_bin
                            acc[n, c, y_low, x_high] += w_lh * grad_bin
                            acc[n, c, y_high, x_low] += w_hl * grad_bin
                            acc[n, c, y_high, x_high] += w_hh * grad_bin


@cuda.jit
def roi_align_backward_atomic_kernel(grad_out, rois, spatial_scale, sampling_ratio, aligned, acc):
    """acc (N, C, H, W) float64, zeroed by the caller, += the adjoint of the forward, with
    ATOMIC adds: the paper's / torchvision's CUDA kernel.

    Loop nest (one thread per grad_out element, like the forward):

        for item = ((k*C + c)*PH + ph)*PW + pw     K*C*PH*PW threads
            g = grad_out[k, c, ph, pw] / count
            for iy, ix                             the bin's samples
                atomic acc[n, c, y_low, x_low] += w_ll * g     (and the other 3)

    The atomic add makes each read-add-write of a cell indivisible, so no term is lost
    when threads of overlapping bins and rois hit one cell at once; the ORDER of those
    terms is whatever the scheduler makes it (module docstring), so the rounding of the
    sum, and with it the last bits, can change from run to run.

    Accumulates in float64 because then those changes are float64 roundings, which the
    float32 gradient rounded from the sum almost never shows.
    """
    channels, height, width = acc.shape[1], acc.shape[2], acc.shape[3]
    pooled_h, pooled_w = grad_out.shape[2], grad_out.shape[3]
    for item in range(cuda.grid(1), grad_out.size, cuda.gridsize(1)):
        pw = item % pooled_w
        ph = item // pooled_w % pooled_h
        c = item // (pooled_w * pooled_h) % channels
        k = item // (pooled_w * pooled_h * channels)
        n, start_h, start_w, bin_h, bin_w, grid_h, grid_w = roi_geometry(
            rois[k], spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned
        )
        count = max(grid_h * grid_w, 1)
        grad_bin = float(grad_out[k, c, ph, pw]) / count
        for iy in range(grid_h):
            y = sample_position(start_h, ph, bin_h, iy, grid_h)
            for ix in range(grid_w):
                x = sample_position(start_w, pw, bin_w, ix, grid_w)
                if outside_map(y, x, height, width):
                    continue
                y_low, x_low, y_high, x_high, w_ll, w_lh, w_hl, w_hh = bilinear_corners(
                    y, x, height, width
                )
                cuda.atomic.add(acc, (n, c, y_low, x_low), w_ll * grad_bin)
                cuda.atomic.add(acc, (n, c, y_low, x_high), w_lh * grad_bin)
                cuda.atomic.add(acc, (n, c, y_high, x_low), w_hl * grad_bin)
                cuda.atomic.add(acc, (n, c, y_high, x_high), w_hh * grad_bin)
