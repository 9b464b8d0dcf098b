"""Reference solutions of lesson 08's exercises (lessons/exercises/lesson08.py checks them)."""

import math

import numpy as np

import minimask
from minimask.ops import nms


def pairwise_iou(a, b):
    """IoU (len(a), len(b)) of boxes (x1, y1, x2, y2), area (x2 - x1) * (y2 - y1)."""
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    w, h = np.maximum(w, 0.0), np.maximum(h, 0.0)
    inter = w * h
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def nms_by_hand(boxes, scores, iou_threshold):
    """Greedy NMS in two steps, as minimask/cpu/nms.py: the IoU of every pair of boxes in
    score order up front, then one sequential sweep that keeps a box unless a kept box has
    marked it."""
    boxes = np.asarray(boxes, dtype=np.float64)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    iou = pairwise_iou(boxes[order], boxes[order])
    removed = np.zeros(len(order), dtype=bool)
    kept = []
    for i in range(len(order)):
        if removed[i]:
            continue
        kept.append(i)
        removed |= iou[i] > iou_threshold  # only the boxes after i still matter
    return order[kept]


def soft_nms(boxes, scores, method="gaussian", sigma=0.5, iou_threshold=0.3, score_threshold=0.001):
    """Soft-NMS (Bodla et al. 2017): pick the highest current score (lower index on ties),
    decay the scores of the boxes not picked yet by their IoU with it, drop the boxes whose
    score fell below score_threshold; repeat. (picked indices, their scores)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    current = np.asarray(scores, dtype=np.float64).copy()
    left = [i for i in range(len(current)) if current[i] >= score_threshold]
    keep, kept_scores = [], []
    while left:
        best = max(left, key=lambda i: (current[i], -i))
        left.remove(best)
        keep.append(best)
        kept_scores.append(current[best])
        for i in left:
            overlap = pairwise_iou(boxes[best : best + 1], boxes[i : i + 1])[0, 0]
            if method == "linear":
                weight = 1.0 - overlap if overlap >= iou_threshold else 1.0
            else:
                weight = math.exp(-(overlap**2) / sigma)
            current[i] *= weight
        left = [i for i in left if current[i] >= score_threshold]
    return np.array(keep, dtype=np.int64), np.array(kept_scores)


def nms_by_offset(boxes, scores, labels, iou_threshold):
    """Per-class NMS with one call of nms: move the boxes of the r-th class (in sorted order
    of the distinct labels) by r * (span + 1), span the range of all coordinates, so that
    boxes of different classes cannot overlap."""
    boxes = np.asarray(boxes, dtype=np.float64)
    rank = np.unique(np.asarray(labels), return_inverse=True)[1].reshape(-1)
    low, high = boxes.min(), boxes.max()
    shifted = boxes - low + rank[:, None] * (high - low + 1.0)
    kept = nms(minimask.tensor(shifted), minimask.tensor(np.asarray(scores)), iou_threshold)
    return kept.numpy()


def paste_mask(mask, box, height, width):
    """The (height, width) probabilities of an M x M mask pasted into box (x1, y1, x2, y2):
    pixel (y, x)'s centre mapped to mask coordinates (v, u), bilinear, 0 outside the mask."""
    mask = np.asarray(mask, dtype=np.float64)
    x1, y1, x2, y2 = box
    m = mask.shape[0]
    padded = np.zeros((m + 2, m + 2))  # one ring of zeros: cells -1 and m read 0
    padded[1:-1, 1:-1] = mask
    out = np.zeros((height, width))
    for y in range(height):
        v = (y + 0.5 - y1) / (y2 - y1) * m - 0.5
        v0 = math.floor(v)
        if v0 < -1 or v0 > m - 1:  # both rows outside the mask
            continue
        fv = v - v0
        for x in range(width):
            u = (x + 0.5 - x1) / (x2 - x1) * m - 0.5
            u0 = math.floor(u)
            if u0 < -1 or u0 > m - 1:
                continue
            fu = u - u0
            r, c = v0 + 1, u0 + 1  # indices into the padded mask
            out[y, x] = (
                (1 - fv) * (1 - fu) * padded[r, c]
                + (1 - fv) * fu * padded[r, c + 1]
                + fv * (1 - fu) * padded[r + 1, c]
                + fv * fu * padded[r + 1, c + 1]
            )
    return out
