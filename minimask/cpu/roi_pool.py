"""RoIPool on the CPU (Girshick, "Fast R-CNN", 2015; torchvision's semantics): forward and
backward kernels.

RoIPool rounds the box to the feature grid, splits it into PH x PW bins with floor/ceil,
and takes the maximum of each bin:

    out[k, c, ph, pw] = max of input[n, c] over the cells of roi_pool_bin(roi k, ph, pw),
                        0 if the bin is empty

The box rounding (C's round, halves away from zero), the bin formulas and the "+ 1"
convention are ``minimask/geometry/roi_pool.py``, shared with the CUDA twin
``minimask/cuda/roi_pool.py``.

The forward also returns argmax[k, c, ph, pw] = h*W + w, the position of the chosen
element in its (n, c) plane, or -1 for an empty bin; the backward sends each output
gradient to that one element.

Tie rule: the bin is scanned row by row and an element replaces the current maximum only
if it is strictly larger, so at a tie the first maximal element in row-major order wins
(torchvision's rule) and it alone gets the gradient. NaN: a NaN replaces the current
maximum (so it propagates, as in this project's max_pool2d); torchvision's RoIPool would
skip it. The first element of a non-empty bin is always taken, so a bin of -inf gives -inf
with its argmax (torchvision starts from -FLT_MAX and would give -FLT_MAX and argmax -1).
Box coordinates are scaled in float64 for every input dtype.
"""

import numba
import numpy as np

from minimask.geometry.roi_pool import roi_pool_bin
from minimask.threading_layer import one_thread_at_a_time

_PARALLEL_KERNEL = numba.njit(parallel=True, cache=True, error_model="numpy")


@one_thread_at_a_time
def roi_pool_forward(input, rois, spatial_scale, pooled_h, pooled_w):
    """(out, argmax): see `roi_pool_forward_kernel`. The arguments are made contiguous and of
    one type each, so that Numba compiles one version per input dtype."""
    return roi_pool_forward_kernel(
        np.ascontiguousarray(input),
        np.ascontiguousarray(rois, dtype=np.float64),
        float(spatial_scale),
        int(pooled_h),
        int(pooled_w),
    )


@one_thread_at_a_time
def roi_pool_backward(grad_out, argmax, rois, input_shape, deterministic):
    """grad_input: see `roi_pool_backward_kernel` (arguments made contiguous).

    ``deterministic`` is accepted so that both backends share one signature; the CPU
    kernel is deterministic either way (one owner per plane, fixed order)."""
    return roi_pool_backward_kernel(
        np.ascontiguousarray(grad_out),
        np.ascontiguousarray(argmax),
        np.ascontiguousarray(rois, dtype=np.float64),
        tuple(int(size) for size in input_shape),
    )


@_PARALLEL_KERNEL
def roi_pool_forward_kernel(input, rois, spatial_scale, pooled_h, pooled_w):
    """(out, argmax), both (K, C, PH, PW): RoIPool of input (N, C, H, W) for rois (K, 5)
    float64; argmax is int64 (h*W + w in the (n, c) plane, -1 for an empty bin).

    Loop nest: the work item `row` = (k*C + c)*PH + ph is one output row (prange over all
    K*C*PH of them); for each pw it scans the bin's rows and columns, keeping the first
    strict maximum. Each item writes only its own outputs.
    """
    channels, height, width = input.shape[1:]
    n_rois = rois.shape[0]
    out = np.empty((n_rois, channels, pooled_h, pooled_w), dtype=input.dtype)
    argmax = np.empty((n_rois, channels, pooled_h, pooled_w), dtype=np.int64)
    for row in numba.prange(n_rois * channels * pooled_h):
        ph = row % pooled_h
        c = row // pooled_h % channels
        k = row // (pooled_h * channels)
        n = int(rois[k, 0])
        for pw in range(pooled_w):
            h_start, h_end, w_start, w_end = roi_pool_bin(
                rois[k], spatial_scale, pooled_h, pooled_w, ph, pw, height, width
            )
            best = 0.0  # an empty bin gives 0 and argmax -1 (float64 holds any input exactly)
            best_index = -1
            for h in range(h_start, h_end):
                for w in range(w_start, w_end):
                    value = input[n, c, h, w]
                    if best_index < 0 or value > best or np.isnan(value):
                        best = value
                        best_index = h * width + w
            out[k, c, ph, pw] = best
            argmax[k, c, ph, pw] = best_index
    return out, argmax


@_PARALLEL_KERNEL
def roi_pool_backward_kernel(grad_out, argmax, rois, input_shape):
    """grad_input (N, C, H, W): grad_out[k, c, ph, pw] added at argmax[k, c, ph, pw] of
    plane (n_k, c), where n_k is roi k's batch index; argmax -1 adds nothing.

    Loop nest: the work item `plane` = n*C + c owns grad_input[n, c] (prange over N*C);
    it walks the rois of image n in order k, then ph, pw. Several bins (of one roi or of
    overlapping rois) may pick the same element, and each such element is summed by its one
    owner in a fixed order, so the result is deterministic. A CUDA twin with one thread per
    output element adds with atomics instead.
    """
    batch, channels, height, width = input_shape
    n_rois, _, pooled_h, pooled_w = grad_out.shape
    grad_input = np.zeros((batch, channels, height * width), dtype=grad_out.dtype)
    for plane in numba.prange(batch * channels):
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
    return grad_input.reshape((batch, channels, height, width))
