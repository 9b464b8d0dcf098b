"""Detection operations: RoIAlign / RoIWarp / RoIPool (autograd Functions), NMS and box
utilities, with torchvision.ops' names and semantics.

    roi_align(input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False)
    roi_warp(input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1)
    roi_pool(input, boxes, output_size, spatial_scale=1.0)
    nms(boxes, scores, iou_threshold)             batched_nms(boxes, scores, idxs, iou_threshold)
    box_area(boxes)   box_iou(boxes1, boxes2)   clip_boxes_to_image(boxes, size)
    remove_small_boxes(boxes, min_size)

Boxes are (x1, y1, x2, y2) in image pixels, width = x2 - x1. The kernels live in the
backends (``minimask/cpu/roi_align.py``, ``roi_pool.py``, ``nms.py``).
"""

from minimask.ops.boxes import box_area, box_iou, clip_boxes_to_image, remove_small_boxes
from minimask.ops.nms import batched_nms, nms
from minimask.ops.roi_align import RoIAlign, roi_align
from minimask.ops.roi_pool import RoIPool, roi_pool
from minimask.ops.roi_warp import roi_warp

__all__ = [
    "RoIAlign",
    "RoIPool",
    "batched_nms",
    "box_area",
    "box_iou",
    "clip_boxes_to_image",
    "nms",
    "remove_small_boxes",
    "roi_align",
    "roi_pool",
    "roi_warp",
]
