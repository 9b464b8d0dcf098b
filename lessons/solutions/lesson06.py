"""Reference solutions of lesson 06's exercises (lessons/exercises/lesson06.py checks them)."""

import numpy as np


def cell_anchors(sizes, aspect_ratios):
    """For each ratio r (outer loop) and each size s (inner loop): h = s sqrt(r),
    w = s / sqrt(r), the box (-w/2, -h/2, w/2, h/2) rounded half to even."""
    rows = []
    for r in aspect_ratios:
        for s in sizes:
            h, w = s * np.sqrt(r), s / np.sqrt(r)
            rows.append([-w / 2, -h / 2, w / 2, h / 2])
    return np.round(np.array(rows, dtype=np.float64).reshape(-1, 4))


def match(quality, high, low, allow_low_quality_matches):
    """Each column's best row (first on ties) if its IoU >= high, -2 between low and high,
    -1 below low; with the rule, every column at some row's maximum gets its own best row."""
    best = quality.max(axis=0)
    best_row = quality.argmax(axis=0)
    matches = best_row.copy()
    matches[best < low] = -1
    matches[(best >= low) & (best < high)] = -2
    if allow_low_quality_matches:
        for g in range(quality.shape[0]):
            columns = np.flatnonzero(quality[g] == quality[g].max())
            matches[columns] = best_row[columns]
    return matches


def best_anchor_iou(boxes, anchors):
    """The IoU matrix written out (intersection over union, corners clipped at 0), then
    each box's maximum over the anchors."""
    boxes, anchors = np.asarray(boxes, np.float64), np.asarray(anchors, np.float64)
    x1 = np.maximum(boxes[:, None, 0], anchors[None, :, 0])
    y1 = np.maximum(boxes[:, None, 1], anchors[None, :, 1])
    x2 = np.minimum(boxes[:, None, 2], anchors[None, :, 2])
    y2 = np.minimum(boxes[:, None, 3], anchors[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_boxes = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    area_anchors = (anchors[:, 2] - anchors[:, 0]) * (anchors[:, 3] - anchors[:, 1])
    iou = inter / (area_boxes[:, None] + area_anchors[None, :] - inter)
    return iou.max(axis=1)


def encode(gt_boxes, anchors, weights):
    """Centres and sizes of both, then the weighted offsets and log-ratios."""
    wx, wy, ww, wh = weights
    pw, ph = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    px, py = anchors[:, 0] + pw / 2, anchors[:, 1] + ph / 2
    gw, gh = gt_boxes[:, 2] - gt_boxes[:, 0], gt_boxes[:, 3] - gt_boxes[:, 1]
    gx, gy = gt_boxes[:, 0] + gw / 2, gt_boxes[:, 1] + gh / 2
    return np.stack(
        [wx * (gx - px) / pw, wy * (gy - py) / ph, ww * np.log(gw / pw), wh * np.log(gh / ph)],
        axis=1,
    )
