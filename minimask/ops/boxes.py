"""Box utilities (torchvision.ops semantics): area, pairwise IoU, clipping, small-box removal.

Boxes are Tensors (..., 4) of (x1, y1, x2, y2) in pixels, width = x2 - x1 (no "+1").
``box_area``, ``box_iou`` and ``clip_boxes_to_image`` are compositions of ordinary tensor
operations, so they are differentiable like any other expression; ``remove_small_boxes``
returns indices.
"""

import numbers

import numpy as np

from minimask.autograd.device import backend_for
from minimask.autograd.ops import clamp, maximum, minimum, stack
from minimask.autograd.tensor import Tensor


def _check_boxes(name, boxes, label="boxes", ndim=None):
    if not isinstance(boxes, Tensor):
        raise TypeError(f"{name}: {label} must be a Tensor, got {type(boxes).__name__}")
    if boxes.ndim < 1 or boxes.shape[-1] != 4 or (ndim is not None and boxes.ndim != ndim):
        expected = "(n, 4)" if ndim == 2 else "(..., 4)"
        raise ValueError(
            f"{name}: {label} must have shape {expected} with rows (x1, y1, x2, y2), "
            f"got {boxes.shape}"
        )


def _upcast(boxes):
    """Boxes in a dtype whose products do not overflow, torchvision's ``_upcast``: float16
    becomes float32, every integer type but int32 and int64 becomes int32 (a 200 x 200
    uint8 box has area 40000, which uint8 cannot hold, nor float16 a 300 x 300 one);
    float32, float64, int32 and int64 stay as they are."""
    if boxes.dtype.kind == "f":
        return boxes.to(np.float32) if boxes.dtype.itemsize < 4 else boxes
    if boxes.dtype in (np.int32, np.int64):
        return boxes
    return boxes.to(np.int32)  # any other integer or bool type, as torchvision's .int()


def box_area(boxes):
    """(x2 - x1) * (y2 - y1) of every box: boxes (..., 4) -> (...), computed in the upcast
    dtype (``_upcast``), as torchvision does."""
    _check_boxes("box_area", boxes)
    boxes = _upcast(boxes)
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def box_iou(boxes1, boxes2):
    """Pairwise IoU: boxes1 (N, 4), boxes2 (M, 4) -> (N, M) with

        iou[i, j] = inter / (area1[i] + area2[j] - inter),
        inter = max(0, min(x2) - max(x1)) * max(0, min(y2) - max(y1))

    Two boxes of zero area that do not overlap give 0 / 0 = NaN, as in torchvision.
    Integer and half-precision boxes are upcast first (``_upcast``); torchvision upcasts
    only after subtracting corners, where a narrow unsigned type could still wrap around.
    """
    _check_boxes("box_iou", boxes1, "boxes1", ndim=2)
    _check_boxes("box_iou", boxes2, "boxes2", ndim=2)
    boxes1, boxes2 = _upcast(boxes1), _upcast(boxes2)
    area1 = box_area(boxes1)
    area2 = box_area(boxes2)
    top_left = maximum(boxes1[:, None, :2], boxes2[None, :, :2])  # (N, M, 2)
    bottom_right = minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    size = clamp(bottom_right - top_left, min=0)
    inter = size[..., 0] * size[..., 1]
    union = area1[:, None] + area2[None, :] - inter
    return inter / union


def clip_boxes_to_image(boxes, size):
    """Boxes (..., 4) with x clamped to [0, width] and y to [0, height]; size = (height, width)."""
    _check_boxes("clip_boxes_to_image", boxes)
    if len(size) != 2 or not all(isinstance(v, numbers.Real) for v in size):
        raise ValueError(f"clip_boxes_to_image: size must be (height, width), got {size!r}")
    height, width = size
    x = clamp(boxes[..., 0::2], min=0, max=width)  # (x1, x2)
    y = clamp(boxes[..., 1::2], min=0, max=height)  # (y1, y2)
    return stack((x, y), dim=-1).reshape(boxes.shape)  # interleaved back: x1, y1, x2, y2


def remove_small_boxes(boxes, min_size):
    """Indices (int64 Tensor, increasing) of the boxes (n, 4) with width >= min_size and
    height >= min_size."""
    _check_boxes("remove_small_boxes", boxes, ndim=2)
    host = boxes.numpy()
    widths = host[:, 2] - host[:, 0]
    heights = host[:, 3] - host[:, 1]
    keep = np.flatnonzero((widths >= min_size) & (heights >= min_size)).astype(np.int64)
    return Tensor(backend_for(boxes.device).asarray(keep), boxes.device)
