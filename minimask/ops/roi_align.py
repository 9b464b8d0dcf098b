"""RoIAlign (He et al., "Mask R-CNN", 2017, section 3) as an autograd Function.

RoIAlign turns every box into a fixed-size (PH, PW) feature grid: each output bin is the
average of a few bilinear samples of the feature map inside the bin, at real-valued
positions (no rounding of the box to the feature grid, which is what RoIPool gets wrong).
The formulas, the border rule and the loop nests are in ``minimask/cpu/roi_align.py``.

Semantics are torchvision's ``torchvision.ops.roi_align`` exactly:

    roi_align(input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False)

    input           (N, C, H, W) float32 or float64 feature map
    boxes           Tensor (K, 5) of (batch_index, x1, y1, x2, y2), or a list of N Tensors
                    (L, 4) of (x1, y1, x2, y2), in image pixels, on either device (they
                    are checked on the host: minimask/ops/_roi_format.py)
    output_size     PH or (PH, PW)
    spatial_scale   feature cells per image pixel (1/16 for a stride-16 feature map)
    sampling_ratio  samples per bin along each axis; <= 0: adaptive ceil(roi_size / PH)
    aligned         True: shift the box by -0.5 cell after scaling (pixel centres line up);
                    False: the original Detectron implementation (torchvision's
                    default), degenerate boxes count as 1 x 1 cell
    returns         (K, C, PH, PW), the input's dtype

The output is linear in ``input``, so the backward is the transpose of the same sampling:
every sample sends its bin's gradient, split by its 4 bilinear weights, back to the 4 cells
it read. Boxes get no gradient (as in torchvision). On the CPU the backward is
deterministic (each input cell has one owner that adds its terms in a fixed order). On
CUDA, ``minimask.use_deterministic_algorithms`` picks the kernel: True (the default) runs
the CPU's loop nest, one thread per (n, c) plane, reproducible run to run; False runs one
thread per output element with atomic adds, faster but not bit-reproducible (see
``roi_align_backward`` in ``minimask/cpu/`` and ``minimask/cuda/``).
"""

import numbers

from minimask.autograd.function import Function
from minimask.determinism import are_deterministic_algorithms_enabled
from minimask.ops._roi_format import (
    boxes_to_rois,
    check_feature_map,
    check_spatial_scale,
    output_pair,
)


class RoIAlign(Function):
    """Inputs (input, rois): rois (K, 5) float64 from ``boxes_to_rois``; gradient for the
    input only."""

    @staticmethod
    def forward(ctx, input, rois, output_size, spatial_scale, sampling_ratio, aligned):
        ctx.input_shape = tuple(input.shape)
        ctx.params = (spatial_scale, sampling_ratio, aligned)
        ctx.save_for_backward(rois)
        pooled_h, pooled_w = output_size
        return ctx.xp.roi_align_forward(
            input, rois, spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned
        )

    @staticmethod
    def backward(ctx, grad_out):
        (rois,) = ctx.saved_arrays
        grad_input = ctx.xp.roi_align_backward(
            grad_out,
            rois,
            ctx.input_shape,
            *ctx.params,
            deterministic=are_deterministic_algorithms_enabled(),
        )
        return grad_input, None


def check_sampling_ratio(name, sampling_ratio):
    if isinstance(sampling_ratio, bool) or not isinstance(sampling_ratio, numbers.Integral):
        raise TypeError(
            f"{name}: sampling_ratio must be an int (<= 0 for adaptive), got {sampling_ratio!r}"
        )
    return int(sampling_ratio)


def roi_align(input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False):
    """RoIAlign of ``boxes`` on the feature map ``input`` (see the module docstring)."""
    name = "roi_align"
    check_feature_map(name, input)
    output_size = output_pair(name, output_size)
    spatial_scale = check_spatial_scale(name, spatial_scale)
    sampling_ratio = check_sampling_ratio(name, sampling_ratio)
    rois = boxes_to_rois(name, boxes, input)
    return RoIAlign.apply(
        input,
        rois,
        output_size=output_size,
        spatial_scale=spatial_scale,
        sampling_ratio=sampling_ratio,
        aligned=bool(aligned),
    )
