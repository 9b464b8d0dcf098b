"""RoIAlign's geometry: where a box's samples lie and which cells each sample reads.

RoIAlign (He et al., "Mask R-CNN", 2017, section 3) cuts a box out of a feature map and
resamples it to a fixed PH x PW grid without rounding the box to the feature grid. For box
k = (n, x1, y1, x2, y2) in image coordinates, with s = spatial_scale and
offset = 0.5 if aligned else 0 (`roi_geometry`):

    start_w = x1*s - offset         roi_w = x2*s - offset - start_w   (>= 1 unless aligned)
    start_h = y1*s - offset         roi_h = y2*s - offset - start_h   (>= 1 unless aligned)
    bin_h = roi_h / PH              grid_h = sampling_ratio if > 0 else ceil(roi_h / PH)
    bin_w = roi_w / PW              grid_w = sampling_ratio if > 0 else ceil(roi_w / PW)

Bin (ph, pw) averages grid_h x grid_w bilinear samples taken at the centres of a regular
sub-grid of the bin (`sample_position`):

    y = start_h + ph*bin_h + (iy + 0.5)*bin_h/grid_h         iy = 0 .. grid_h-1
    x = start_w + pw*bin_w + (ix + 0.5)*bin_w/grid_w         ix = 0 .. grid_w-1
    out[k, c, ph, pw] = sum over (iy, ix) of bilinear(input[n, c], y, x) / max(grid_h*grid_w, 1)

Coordinates are in "pixel index" units: cell (i, j) of the feature map sits at y = i, x = j.
aligned=True shifts the box by half a cell so that a box edge at image pixel boundary 0
lands on the feature map's boundary -0.5 (the correction Detectron2 and torchvision made
to their RoIAlign; the model uses it). aligned=False is the implementation without that
offset, which also forces a degenerate box to be at least one cell tall and wide.

The border rule (`outside_map`, `bilinear_corners`, from torchvision's
`bilinear_interpolate`): a sample with y < -1 or y > H (or x < -1 or x > W) is 0; otherwise
y <= 0 is clamped to 0 and y >= H-1 to H-1 (same for x), so the band within one cell
outside the map repeats the edge.

The kernels that use these functions: ``minimask/cpu/roi_align.py`` and
``minimask/cuda/roi_align.py``; ``minimask/viz/roi_align.py`` draws them.
"""

import math

from numba.extending import register_jitable


@register_jitable(error_model="numpy")
def roi_geometry(roi, spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned):
    """(batch_index, start_h, start_w, bin_h, bin_w, grid_h, grid_w) of one roi (n, x1, y1,
    x2, y2), as in the module docstring."""
    offset = 0.5 if aligned else 0.0
    start_w = roi[1] * spatial_scale - offset
    start_h = roi[2] * spatial_scale - offset
    roi_w = roi[3] * spatial_scale - offset - start_w
    roi_h = roi[4] * spatial_scale - offset - start_h
    if not aligned:  # without the half-cell offset, a degenerate box becomes one cell
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


@register_jitable(error_model="numpy")
def sample_position(start, bin_index, bin_size, sample_index, samples):
    """The coordinate of sample ``sample_index`` (of ``samples``) in bin ``bin_index``:

        start + bin_index * bin_size + (sample_index + 0.5) * bin_size / samples

    the centre of the sample's cell in a regular sub-grid of the bin. The same expression,
    in the same order, serves y (start_h, ph, bin_h, iy, grid_h) and x; it is plain
    arithmetic, so it also evaluates broadcast NumPy arrays of indices at once."""
    return start + bin_index * bin_size + (sample_index + 0.5) * bin_size / samples


@register_jitable(error_model="numpy")
def outside_map(y, x, height, width):
    """True if a sample at (y, x) is 0 by RoIAlign's border rule: y < -1 or y > H, or the
    same for x (a sample exactly on -1 or H still counts, clamped onto the edge)."""
    return y < -1.0 or y > height or x < -1.0 or x > width


@register_jitable(error_model="numpy")
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
