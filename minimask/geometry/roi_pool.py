"""RoIPool's geometry (Girshick, "Fast R-CNN", 2015; torchvision's semantics): the box
rounded to the feature grid and the cells of each bin.

For roi k = (n, x1, y1, x2, y2), with s = spatial_scale and round() rounding halves away
from zero (C's round, as in torchvision):

    start_w = round(x1*s)   end_w = round(x2*s)   roi_w = max(end_w - start_w + 1, 1)
    start_h = round(y1*s)   end_h = round(y2*s)   roi_h = max(end_h - start_h + 1, 1)
    bin_h = roi_h / PH      bin_w = roi_w / PW

    bin (ph, pw) covers rows [start_h + floor(ph*bin_h), start_h + ceil((ph+1)*bin_h))
                    and columns [start_w + floor(pw*bin_w), start_w + ceil((pw+1)*bin_w)),
                    both clipped to the feature map

(The "+ 1" makes x2 an inclusive cell index: RoIPool's historical convention, kept for
fidelity.) The kernels: ``minimask/cpu/roi_pool.py`` and ``minimask/cuda/roi_pool.py``;
RoIWarp (``minimask/ops/roi_warp.py``) rounds its boxes with the same function.
"""

import math

from numba.extending import register_jitable


@register_jitable(error_model="numpy")
def round_half_away_from_zero(value):
    """C's round(): 2.5 -> 3, -2.5 -> -3 (Python's round() and np.round round halves to
    even). Written without ``+ 0.5``, so that a value just below a half
    (0.49999999999999994) is not pushed over it by the addition's rounding."""
    magnitude = abs(value)
    whole = math.floor(magnitude)
    if magnitude - whole >= 0.5:
        whole += 1
    return int(whole) if value >= 0 else -int(whole)


@register_jitable(error_model="numpy")
def roi_pool_bin(roi, spatial_scale, pooled_h, pooled_w, ph, pw, height, width):
    """(h_start, h_end, w_start, w_end): the cells of bin (ph, pw) of one roi (n, x1, y1, x2,
    y2), clipped to the map (module docstring). The bin is empty if h_end <= h_start or
    w_end <= w_start."""
    start_w = round_half_away_from_zero(roi[1] * spatial_scale)
    start_h = round_half_away_from_zero(roi[2] * spatial_scale)
    end_w = round_half_away_from_zero(roi[3] * spatial_scale)
    end_h = round_half_away_from_zero(roi[4] * spatial_scale)
    bin_h = max(end_h - start_h + 1, 1) / pooled_h
    bin_w = max(end_w - start_w + 1, 1) / pooled_w
    h_start = min(max(int(math.floor(ph * bin_h)) + start_h, 0), height)
    h_end = min(max(int(math.ceil((ph + 1) * bin_h)) + start_h, 0), height)
    w_start = min(max(int(math.floor(pw * bin_w)) + start_w, 0), width)
    w_end = min(max(int(math.ceil((pw + 1) * bin_w)) + start_w, 0), width)
    return h_start, h_end, w_start, w_end
