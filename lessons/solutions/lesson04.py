"""Reference solutions of lesson 04's exercises (lessons/exercises/lesson04.py checks them)."""

import math

import numpy as np


def bilinear(feature, y, x):
    """The value at (y, x) of a 2-D map: 0 beyond one cell outside it; within that band the
    coordinate is clamped onto the edge; then the 4 neighbouring cells, weighted by the
    opposite areas."""
    height, width = feature.shape
    if y < -1 or y > height or x < -1 or x > width:
        return 0.0
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_low = y_high = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_low = x_high = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    return (
        (1 - ly) * (1 - lx) * feature[y_low, x_low]
        + (1 - ly) * lx * feature[y_low, x_high]
        + ly * (1 - lx) * feature[y_high, x_low]
        + ly * lx * feature[y_high, x_high]
    )


def roi_align_bin(feature, box, output_size, ph, pw, sampling_ratio, aligned):
    """The mean of sampling_ratio x sampling_ratio bilinear samples at the centres of a
    regular sub-grid of bin (ph, pw) (spatial_scale 1)."""
    x1, y1, x2, y2 = box
    offset = 0.5 if aligned else 0.0
    start_w, start_h = x1 - offset, y1 - offset
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:  # the implementation without the shift counts a box as at least 1 x 1
        roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
    bin_h, bin_w = roi_h / output_size[0], roi_w / output_size[1]
    total = 0.0
    for iy in range(sampling_ratio):
        y = start_h + ph * bin_h + (iy + 0.5) * bin_h / sampling_ratio
        for ix in range(sampling_ratio):
            x = start_w + pw * bin_w + (ix + 0.5) * bin_w / sampling_ratio
            total += bilinear(feature, y, x)
    return total / sampling_ratio**2


def round_half_away_from_zero(value):
    """C's round(): 2.5 -> 3, -2.5 -> -3 (np.round and Python's round give 2 and -2)."""
    whole = math.floor(abs(value))
    if abs(value) - whole >= 0.5:
        whole += 1
    return whole if value >= 0 else -whole


def _bin_range(start, index, bin_size, limit):
    """The cells [start + floor(index*bin), start + ceil((index+1)*bin)) clipped to
    [0, limit]: neighbouring bins may share a cell."""
    lo = start + math.floor(index * bin_size)
    hi = start + math.ceil((index + 1) * bin_size)
    return min(max(lo, 0), limit), min(max(hi, 0), limit)


def roi_pool_by_hand(feature, box, output_size, spatial_scale):
    """Round the scaled box to cells (x2, y2 inclusive), split it into bins with floor and
    ceil, clip each bin to the map, and take its maximum (0 for an empty bin)."""
    height, width = feature.shape
    start_w, start_h, end_w, end_h = (round_half_away_from_zero(v * spatial_scale) for v in box)
    bin_h = max(end_h - start_h + 1, 1) / output_size[0]
    bin_w = max(end_w - start_w + 1, 1) / output_size[1]
    out = np.zeros(output_size)
    for ph, pw in np.ndindex(*output_size):
        row_lo, row_hi = _bin_range(start_h, ph, bin_h, height)
        column_lo, column_hi = _bin_range(start_w, pw, bin_w, width)
        cells = feature[row_lo:row_hi, column_lo:column_hi]
        if cells.size:
            out[ph, pw] = cells.max()
    return out


def adaptive_grid(box, output_size, spatial_scale, aligned):
    """ceil(roi_h / PH) x ceil(roi_w / PW), the box's size in feature cells (at least 1 x 1
    without the half-cell shift)."""
    x1, y1, x2, y2 = box
    roi_w, roi_h = (x2 - x1) * spatial_scale, (y2 - y1) * spatial_scale
    if not aligned:
        roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
    return math.ceil(roi_h / output_size[0]), math.ceil(roi_w / output_size[1])
