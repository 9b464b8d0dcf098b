"""RoIAlign on the CPU: forward and backward kernels (torchvision's semantics exactly).

RoIAlign (He et al., "Mask R-CNN", 2017, section 3) cuts a box out of a feature map and
resamples it to a fixed PH x PW grid without rounding the box to the feature grid. For box
k = (n, x1, y1, x2, y2) in image coordinates, with s = spatial_scale and
offset = 0.5 if aligned else 0:

    start_w = x1*s - offset         roi_w = x2*s - offset - start_w   (>= 1 unless aligned)
    start_h = y1*s - offset         roi_h = y2*s - offset - start_h   (>= 1 unless aligned)
    bin_h = roi_h / PH              grid_h = sampling_ratio if > 0 else ceil(roi_h / PH)
    bin_w = roi_w / PW              grid_w = sampling_ratio if > 0 else ceil(roi_w / PW)

Bin (ph, pw) averages grid_h x grid_w bilinear samples taken at the centres of a regular
sub-grid of the bin:

    y = start_h + ph*bin_h + (iy + 0.5)*bin_h/grid_h         iy = 0 .. grid_h-1
    x = start_w + pw*bin_w + (ix + 0.5)*bin_w/grid_w         ix = 0 .. grid_w-1
    out[k, c, ph, pw] = sum over (iy, ix) of bilinear(input[n, c], y, x) / max(grid_h*grid_w, 1)

Coordinates are in "pixel index" units: cell (i, j) of the feature map sits at y = i, x = j.
aligned=True shifts the box by half a cell so that a box edge at image pixel boundary 0
lands on the feature map's boundary -0.5 (the corrected RoIAlign of Detectron2; the model
uses it). aligned=False is the paper's original version, which also forces a degenerate
box to be at least one cell tall and wide.

The border rule of `bilinear_corners` (from torchvision's `bilinear_interpolate`): a sample
with y < -1 or y > H (or x < -1 or x > W) is 0; otherwise y <= 0 is clamped to 0 and
y >= H-1 to H-1 (same for x), so the band within one cell outside the map repeats the edge.

Precision: the box geometry (the rois array) and the sample positions and weights are
float64 for every input dtype (torchvision computes them in the input's dtype); each bin's
sum is accumulated in float64 and stored in the input's dtype. For float32 inputs this
agrees with torchvision to float32 rounding, except at the few positions where a rounding
difference crosses a discontinuity (a sample exactly at y = -1 or y = H, or roi_h / PH
exactly an integer in adaptive mode).
"""

import math

import numba
import numpy as np

# error_model="numpy": a float division by zero gives inf/NaN instead of raising, so the
# compiler drops the zero checks (every divisor here is positive).
_PARALLEL_KERNEL = numba.njit(parallel=True, cache=True, error_model="numpy")
_DEVICE_FUNCTION = numba.njit(cache=True, error_model="numpy")


@_DEVICE_FUNCTION
def outside_map(y, x, height, width):
    """True if a sample at (y, x) is 0 by RoIAlign's border rule: y < -1 or y > H, or the
    same for x (a sample exactly on -1 or H still counts, clamped onto the edge)."""
    return y < -1.0 or y > height or x < -1.0 or x > width


@_DEVICE_FUNCTION
def bilinear_corners(y, x, height, width):
    """The 4 feature cells a bilinear sample at (y, x) reads, and their weights.

    Returns (y_low, x_low, y_high, x_high, w_ll, w_lh, w_hl, w_hh): the sample's value is

        w_ll*f[y_low, x_low] + w_lh*f[y_low, x_high]
        + w_hl*f[y_high, x_low] + w_hh*f[y_high, x_high]

    with w_ll = (1 - ly)(1 - lx), w_lh = (1 - ly) lx, w_hl = ly (1 - lx), w_hh = ly lx,
    ly = y - y_low and lx = x - x_low.

    Call it only where `outside_map(y, x, ...)` is False (a sample outside is 0 and reads
    nothing); coordinates within one cell outside the map are clamped onto its edge. This is
    torchvision's `bilinear_interpolate` / `pre_calc_for_bilinear_interpolate`. The forward
    and the backward kernels both call it, so they use the same weights.
    """
    y = max(y, 0.0)
    x = max(x, 0.0)
    y_low = int(y)
    x_low = int(x)
    if y_low >= height - 1:
        y_low = height - 1
        y_high = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_low = width - 1
        x_high = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly = y - y_low
    lx = x - x_low
    hy = 1.0 - ly
    hx = 1.0 - lx
    return y_low, x_low, y_high, x_high, hy * hx, hy * lx, ly * hx, ly * lx


@_DEVICE_FUNCTION
def roi_geometry(roi, spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned):
    """(batch_index, start_h, start_w, bin_h, bin_w, grid_h, grid_w) of one roi (n, x1, y1,
    x2, y2), as in the module docstring."""
    offset = 0.5 if aligned else 0.0
    start_w = roi[1] * spatial_scale - offset
    start_h = roi[2] * spatial_scale - offset
    roi_w = roi[3] * spatial_scale - offset - start_w
    roi_h = roi[4] * spatial_scale - offset - start_h
    if not aligned:  # the paper's RoIAlign: a degenerate box becomes one cell
        roi_w = max(roi_w, 1.0)
        roi_h = max(roi_h, 1.0)
    bin_h = roi_h / pooled_h
    bin_w = roi_w / pooled_w
    if sampling_ratio > 0:
        grid_h = sampling_ratio
        grid_w = sampling_ratio
    else:  # adaptive: about one sample per feature cell
        grid_h = int(math.ceil(roi_h / pooled_h))
        grid_w = int(math.ceil(roi_w / pooled_w))
    return int(roi[0]), start_h, start_w, bin_h, bin_w, grid_h, grid_w


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
    a sample is computed once for all C channels instead of C times. On the benchmark shape
    (256 channels, 512 rois, 7x7, 2x2 samples) one scalar work item per output element
    (k, c, ph, pw) took about 350 ms on one core; this nest takes about 26 ms.
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
                y = start_h + ph * bin_h + (iy + 0.5) * bin_h / grid_h
                for ix in range(grid_w):
                    x = start_w + pw * bin_w + (ix + 0.5) * bin_w / grid_w
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
                        y = start_h + ph * bin_h + (iy + 0.5) * bin_h / grid_h
                        for ix in range(grid_w):
                            x = start_w + pw * bin_w + (ix + 0.5) * bin_w / grid_w
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
