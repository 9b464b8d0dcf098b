"""RoIWarp (Dai, He and Sun, "Instance-aware Semantic Segmentation via Multi-task Network
Cascades", 2016): the middle ground between RoIPool and RoIAlign that Mask R-CNN's
Table 2c uses as a baseline.

RoIWarp rounds the box to the feature grid, as RoIPool does, and then samples the rounded
box bilinearly and averages each bin, as RoIAlign does:

    x1' = round(x1 * spatial_scale)   (and y1', x2', y2'; halves away from zero, C's round)
    roi_warp(input, boxes, output_size, spatial_scale, sampling_ratio)
        = roi_align(input, (n, x1', y1', x2', y2'), output_size, spatial_scale=1,
                    sampling_ratio, aligned=False)

That is literally how it is implemented here: the boxes are quantised in Python and handed
to the RoIAlign Function, so there is no RoIWarp kernel (and the gradient is RoIAlign's).
Compared with RoIAlign, only the rounding differs, which is the point of the ablation: the
rounding, not the pooling, is what costs RoIPool its mask accuracy.
"""

import numpy as np

from minimask.autograd.device import backend_for
from minimask.autograd.tensor import Tensor
from minimask.geometry.roi_pool import round_half_away_from_zero
from minimask.ops._roi_format import (
    boxes_to_rois,
    check_feature_map,
    check_spatial_scale,
    output_pair,
)
from minimask.ops.roi_align import RoIAlign, check_sampling_ratio


def quantize_rois(rois, spatial_scale):
    """rois (K, 5) float64 on the host -> the same rois with x1, y1, x2, y2 scaled to the
    feature grid and rounded (C's round, the function RoIPool's kernels use), batch indices
    unchanged."""
    quantized = rois.copy()
    rounded = [round_half_away_from_zero(v) for v in (rois[:, 1:] * spatial_scale).ravel()]
    quantized[:, 1:] = np.reshape(rounded, (-1, 4))
    return quantized


def roi_warp(input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1):
    """RoIWarp of ``boxes`` on the feature map ``input`` (see the module docstring)."""
    name = "roi_warp"
    check_feature_map(name, input)
    output_size = output_pair(name, output_size)
    spatial_scale = check_spatial_scale(name, spatial_scale)
    sampling_ratio = check_sampling_ratio(name, sampling_ratio)
    rois = boxes_to_rois(name, boxes, input)
    quantized = quantize_rois(rois.numpy(), spatial_scale)
    quantized = Tensor(backend_for(input.device).asarray(quantized), input.device)
    return RoIAlign.apply(
        input,
        quantized,
        output_size=output_size,
        spatial_scale=1.0,
        sampling_ratio=sampling_ratio,
        aligned=False,
    )
