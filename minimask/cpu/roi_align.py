"""RoIAlign on the CPU: forward and backward kernels (torchvision's semantics exactly).

The geometry (the box's grid of bins, the sample positions, the border rule and the
bilinear weights) is ``minimask/geometry/roi_align.py``; read its docstring first. These
kernels and their CUDA twins (``minimask/cuda/roi_align.py``) call the same four functions
from it, so both backends sample the same points with the same weights:

    n, start_h, start_w, bin_h, bin_w, grid_h, grid_w = roi_geometry(roi, ...)
    y = sample_position(start_h, ph, bin_h, iy, grid_h)
    x = sample_position(start_w, pw, bin_w, ix, grid_w)
    0 if outside_map(y, x, H, W), else the 4 cells and weights of bilinear_corners(y, x, H, W)

Precision: the box geometry (the rois array) and the sample positions and weights are
float64 for every input dtype (torchvision computes them in the input's dtype); each bin's
sum is accumulated in float64 and stored in the input's dtype. For float32 inputs this
agrees with torchvision to float32 rounding, except at the few positions where a rounding
difference crosses a discontinuity (a sample exactly at y = -1 or y = H, or roi_h / PH
exactly an integer in adaptive mode).
"""

import numba
import numpy as np

from minimask.geometry.roi_align import (
    bilinear_corners,
    outside_map,
    roi_geometry,
    sample_position,
)
from minimask.threading_layer import one_thread_at_a_time

# error_model="numpy": a float division by zero gives inf/NaN instead of raising, so the
# compiler drops the zero checks (every divisor here is positive).
_PARALLEL_KERNEL = numba.njit(parallel=True, cache=True, error_model="numpy")


@_PARALLEL_KERNEL
def to_channels_last(x):
    """(N, C, H, W) -> a contiguous (N, H, W, C) copy: the C values of one cell side by side."""
    batch, channels, height, width = x.shape
    out = np.empty((batch, height, width, channels), dtype=x.dtype)
    for row in numba.prange(batch * height):
        h = row % height
        n = row // height
        for w in range(width):
            for c in range(channels):
                out[n, h, w, c] = x[n, c, h, w]
    return out


@one_thread_at_a_time
def roi_align_forward(input, rois, spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned):
    """out (K, C, PH, PW): RoIAlign of input (N, C, H, W) for rois (K, 5) float64 (rows
    (batch_index, x1, y1, x2, y2), already checked). See `roi_align_forward_kernel`.

    The arguments are made contiguous and of one type each, so that Numba compiles (and
    caches) one version of the kernel per input dtype rather than one per memory layout.
    """
    return roi_align_forward_kernel(
        np.ascontiguousarray(input),
        np.ascontiguousarray(rois, dtype=np.float64),
        float(spatial_scale),
        int(pooled_h),
        int(pooled_w),
        int(sampling_ratio),
        bool(aligned),
    )


@_PARALLEL_KERNEL
def roi_align_forward_kernel(
    input, rois, spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned
):
    """out (K, C, PH, PW): RoIAlign of input (N, C, H, W) for rois (K, 5) float64.

    Loop nest:

        copy input to channels-last (N, H, W, C)
        prange over output rows (k, ph)            K*PH work items
            for pw                                 the row's bins
                acc[0:C] = 0                       one float64 sum per channel
                for iy, ix                         the bin's samples
                    corners, weights = bilinear_corners(y, x)         (once for all C)
                    acc[0:C] += w_ll*f[y_low, x_low, 0:C] + ... (4 terms)
                out[k, 0:C, ph, pw] = acc / count

    Why this shape: the channel loop is innermost and runs over contiguous memory (the
    channels-last copy costs one pass over the input), so it vectorises, and the geometry of
    a sample is computed once for all C channels instead of C times, which makes this nest
    many times faster than one scalar work item per output element (k, c, ph, pw)
    (``benchmarks/bench_ops.py`` times the kernel).
    A CUDA twin runs one thread per output element (k, c, ph, pw) on the NCHW input with the
    same two helpers and formulas (there, threads are cheap and the C threads of one bin
    run side by side). Every output element is written by one work item, so the result
    does not depend on the thread count.
    """
    channels, height, width = input.shape[1:]
    n_rois = rois.shape[0]
    features = to_channels_last(input)
    out = np.empty((n_rois, channels, pooled_h, pooled_w), dtype=input.dtype)
    for row in numba.prange(n_rois * pooled_h):
        ph = row % pooled_h
        k = row // pooled_h
        n, start_h, start_w, bin_h, bin_w, grid_h, grid_w = roi_geometry(
            rois[k], spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned
        )
        count = max(grid_h * grid_w, 1)
        acc = np.empty(channels, dtype=np.float64)
        for pw in range(pooled_w):
            acc[:] = 0.0
            for iy in range(grid_h):
                y = sample_position(start_h, ph, bin_h, iy, grid_h)
                for ix in range(grid_w):
                    x = sample_position(start_w, pw, bin_w, ix, grid_w)
                    if outside_map(y, x, height, width):
                        continue
                    y_low, x_low, y_high, x_high, w_ll, w_lh, w_hl, w_hh = bilinear_corners(
                        y, x, height, width
                    )
                    f_ll = features[n, y_low, x_low]
                    f_lh = features[n, y_low, x_high]
                    f_hl = features[n, y_high, x_low]
                    f_hh = features[n, y_high, x_high]
                    for c in range(channels):
                        acc[c] += w_ll * f_ll[c] + w_lh * f_lh[c] + w_hl * f_hl[c] + w_hh * f_hh[c]
            for c in range(channels):
                out[k, c, ph, pw] = acc[c] / count
    return out


@one_thread_at_a_time
def roi_align_backward(
    grad_out, rois, input_shape, spatial_scale, sampling_ratio, aligned, deterministic=True
):
    """grad_input (N, C, H, W): the adjoint of `roi_align_forward` for rois (K, 5) float64.
    The kernel is `roi_align_backward_kernel`; this picks its channel block width (so that
    every thread gets work) and makes the arguments contiguous and of one type each.

    ``deterministic`` is ignored here: the CPU kernel is deterministic either way (each
    input cell has one owner, see the kernel). The parameter exists so that both backends
    have one signature; ``minimask/cuda/roi_align.py`` picks its deterministic or its
    atomic-add kernel with it, and the RoIAlign Function passes
    ``minimask.determinism.are_deterministic_algorithms_enabled()``.
    """
    channels = input_shape[1]
    block = -(-channels // numba.get_num_threads())  # a multiple of 16 channels (vectors)
    block = max(min(-(-block // 16) * 16, channels), 1)
    return roi_align_backward_kernel(
        np.ascontiguousarray(grad_out),
        np.ascontiguousarray(rois, dtype=np.float64),
        tuple(int(size) for size in input_shape),
        float(spatial_scale),
        int(sampling_ratio),
        bool(aligned),
        block,
    )


@_PARALLEL_KERNEL
def roi_align_backward_kernel(
    grad_out, rois, input_shape, spatial_scale, sampling_ratio, aligned, block
):
    """grad_input (N, C, H, W): the adjoint of `roi_align_forward_kernel`, for rois (K, 5)
    float64; `block` is the width of the channel blocks (any width gives the same result).

    Every sample of bin (k, ph, pw) sends grad_out[k, c, ph, pw] / count, times each of its
    4 bilinear weights, back to the 4 cells it read.

    Loop nest (sums in a float64 channels-last buffer acc (N, H, W, C)):

        prange over (n, channel block [c0, c1))   one work item owns acc[n, :, :, c0:c1]
            for k in 0 .. K-1 with batch index n   every roi on image n, in order
                for ph, pw                         its bins
                    g[c0:c1] = grad_out[k, c0:c1, ph, pw] / count
                    for iy, ix                     the bin's samples
                        acc[n, y_low, x_low, c0:c1] += w_ll * g[c0:c1]   (and the other 3)
        grad_input = acc transposed back to (N, C, H, W), in the input's dtype

    Why deterministic: rois on one image may overlap, and the samples of one roi overlap
    each other, so many terms land on one cell. Here each cell has exactly one owner (the
    work item of its image and channel block) and that owner adds its terms in a fixed order
    (k, ph, pw, iy, ix), so the float sums are the same on every run. The block width only
    decides which work item owns a channel, never the order of its terms, so any thread
    count gives the same bits. A CUDA twin with one thread per output element (k, c, ph, pw)
    has many threads adding to one cell at once: it needs atomic adds, whose order (and so
    the rounding of the sum) changes from run to run.
    """
    batch, channels, height, width = input_shape
    n_rois, _, pooled_h, pooled_w = grad_out.shape
    n_blocks = -(-channels // block)
    acc = np.zeros((batch, height, width, channels), dtype=np.float64)
    for item in numba.prange(batch * n_blocks):
        n = item // n_blocks
        c0 = item % n_blocks * block
        c1 = min(c0 + block, channels)
        grad_bin = np.empty(channels, dtype=np.float64)
        for k in range(n_rois):
            if int(rois[k, 0]) != n:
                continue
            _, start_h, start_w, bin_h, bin_w, grid_h, grid_w = roi_geometry(
                rois[k], spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned
            )
            count = max(grid_h * grid_w, 1)
            for ph in range(pooled_h):
                for pw in range(pooled_w):
                    for c in range(c0, c1):
                        grad_bin[c] = grad_out[k, c, ph, pw] / count
                    for iy in range(grid_h):
                        y = sample_position(start_h, ph, bin_h, iy, grid_h)
                        for ix in range(grid_w):
                            x = sample_position(start_w, pw, bin_w, ix, grid_w)
                            if outside_map(y, x, height, width):
                                continue
                            y_low, x_low, y_high, x_high, w_ll, w_lh, w_hl, w_hh = bilinear_corners(
                                y, x, height, width
                            )
                            acc_ll = acc[n, y_low, x_low]
                            acc_lh = acc[n, y_low, x_high]
                            acc_hl = acc[n, y_high, x_low]
                            acc_hh = acc[n, y_high, x_high]
                            for c in range(c0, c1):
                                acc_ll[c] += w_ll * grad_bin[c]
                                acc_lh[c] += w_lh * grad_bin[c]
                                acc_hl[c] += w_hl * grad_bin[c]
                                acc_hh[c] += w_hh * grad_bin[c]
    grad_input = np.empty(input_shape, dtype=grad_out.dtype)
    for plane in numba.prange(batch * channels):
        c = plane % channels
        n = plane // channels
        for h in range(height):
            for w in range(width):
                grad_input[n, c, h, w] = acc[n, h, w, c]
    return grad_input
