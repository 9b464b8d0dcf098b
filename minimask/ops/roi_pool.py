"""RoIPool (Girshick, "Fast R-CNN", 2015) as an autograd Function: the max of each of PH x PW
bins of a box rounded to the feature grid. Mask R-CNN's Table 2c compares it with RoIAlign;
the rounding is what misaligns the features with the box.

Semantics are torchvision's ``torchvision.ops.roi_pool``:

    roi_pool(input, boxes, output_size, spatial_scale=1.0)

    input          (N, C, H, W) float32 or float64 feature map
    boxes          Tensor (K, 5) of (batch_index, x1, y1, x2, y2), or a list of N Tensors
                   (L, 4) of (x1, y1, x2, y2), in image pixels
    output_size    PH or (PH, PW)
    spatial_scale  feature cells per image pixel
    returns        (K, C, PH, PW), the input's dtype; an empty bin gives 0

The bin formulas, the tie rule (first maximum in row-major order wins and alone gets the
gradient) and the NaN rule are in ``minimask/cpu/roi_pool.py``. The backward sends each
output gradient to the element its maximum came from; boxes get no gradient.
"""

from minimask.autograd.function import Function
from minimask.determinism import are_deterministic_algorithms_enabled
from minimask.ops._roi_format import (
    boxes_to_rois,
    check_feature_map,
    check_spatial_scale,
    output_pair,
)


class RoIPool(Function):
    """Inputs (input, rois): rois (K, 5) float64 from ``boxes_to_rois``. The forward keeps
    the argmax of every bin for the backward."""

    @staticmethod
    def forward(ctx, input, rois, output_size, spatial_scale):
        out, argmax = ctx.xp.roi_pool_forward(input, rois, spatial_scale, *output_size)
        ctx.input_shape = tuple(input.shape)
        ctx.save_for_backward(rois, argmax)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        rois, argmax = ctx.saved_arrays
        deterministic = are_deterministic_algorithms_enabled()
        grad = ctx.xp.roi_pool_backward(grad_out, argmax, rois, ctx.input_shape, deterministic)
        return grad, None


def roi_pool(input, boxes, output_size, spatial_scale=1.0):
    """RoIPool of ``boxes`` on the feature map ``input`` (see the module docstring)."""
    name = "roi_pool"
    check_feature_map(name, input)
    output_size = output_pair(name, output_size)
    spatial_scale = check_spatial_scale(name, spatial_scale)
    rois = boxes_to_rois(name, boxes, input)
    return RoIPool.apply(input, rois, output_size=output_size, spatial_scale=spatial_scale)
