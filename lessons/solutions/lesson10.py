"""Reference solutions of lesson 10's exercises (lessons/exercises/lesson10.py checks them)."""

import numpy as np


def box_iou_matrix(boxes1, boxes2):
    """IoU of every box of boxes1 (N, 4) with every box of boxes2 (M, 4), both
    (x1, y1, x2, y2): intersection over union, an (N, M) float64 array."""
    boxes1 = np.asarray(boxes1, dtype=np.float64)
    boxes2 = np.asarray(boxes2, dtype=np.float64)
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    top_left = np.maximum(boxes1[:, None, :2], boxes2[None, :, :2])  # (N, M, 2)
    bottom_right = np.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    size = np.clip(bottom_right - top_left, 0, None)
    inter = size[..., 0] * size[..., 1]
    return inter / (area1[:, None] + area2[None, :] - inter)


def area_ranges(areas):
    """(N, 3) bool: whether each area lies in COCO's small [0, 32^2], medium [32^2, 96^2]
    and large [96^2, 1e5^2] ranges, both ends included (as COCOeval tests them)."""
    areas = np.asarray(areas, dtype=np.float64)[:, None]
    low = np.array([0.0, 32.0**2, 96.0**2])
    high = np.array([32.0**2, 96.0**2, 1e5**2])
    return (areas >= low) & (areas <= high)


def ap_101(scores, is_tp, n_gt):
    """COCO's interpolated precision at the 101 recall thresholds 0, 0.01, ..., 1 and their
    mean, the AP, for one class: detections sorted by decreasing score (a stable sort),
    precision and recall after each, precision made non-increasing from the right, then
    read at the first detection whose recall reaches each threshold (0 where none does)."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")
    tp = np.asarray(is_tp, dtype=bool)[order]
    tp_sum = np.cumsum(tp).astype(np.float64)
    fp_sum = np.cumsum(~tp).astype(np.float64)
    recall = tp_sum / n_gt
    precision = tp_sum / (tp_sum + fp_sum)
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # the best precision further on
    thresholds = np.linspace(0.0, 1.0, 101)
    where = np.searchsorted(recall, thresholds, side="left")
    at_thresholds = np.zeros(101)
    reached = where < len(recall)
    at_thresholds[reached] = precision[where[reached]]
    return at_thresholds, float(at_thresholds.mean())
