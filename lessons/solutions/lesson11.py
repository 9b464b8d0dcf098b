"""Reference solutions of lesson 11's exercises (lessons/exercises/lesson11.py checks them)."""

import numpy as np


def category_maps(categories):
    """(id -> label, label -> id) for the categories of a COCO file: the ids sorted and
    numbered 1..K (0 is the background)."""
    ids = sorted(category["id"] for category in categories)
    id_to_label = {cid: k + 1 for k, cid in enumerate(ids)}
    label_to_id = {label: cid for cid, label in id_to_label.items()}
    return id_to_label, label_to_id


def rle_encode(mask):
    """COCO's uncompressed RLE counts of a 0/1 mask (H, W): the lengths of the runs of equal
    pixels in column-major order, the first run counting zeros (0 if the mask starts
    with a 1)."""
    flat = np.asarray(mask).reshape(-1, order="F")
    counts, previous, run = [], 0, 0
    for pixel in flat:
        if pixel != previous:
            counts.append(run)
            previous, run = pixel, 0
        run += 1
    counts.append(run)
    return counts


def rle_decode(counts, height, width):
    """The (height, width) uint8 mask of uncompressed RLE counts: runs of 0s and 1s,
    alternating and starting with 0s, filling the pixels column by column."""
    values = np.arange(len(counts)) % 2  # 0, 1, 0, 1, ...
    flat = np.repeat(values, counts).astype(np.uint8)
    return flat.reshape((height, width), order="F")


def crowd_ioa(boxes, crowd_boxes):
    """(P, C): the intersection of each box (x1, y1, x2, y2) with each crowd box, divided by
    the box's own area (0 for a box of no area)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    crowd_boxes = np.asarray(crowd_boxes, dtype=np.float64)
    top_left = np.maximum(boxes[:, None, :2], crowd_boxes[None, :, :2])
    bottom_right = np.minimum(boxes[:, None, 2:], crowd_boxes[None, :, 2:])
    wh = np.clip(bottom_right - top_left, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return np.divide(inter, area[:, None], out=np.zeros_like(inter), where=area[:, None] > 0)


def crowd_ignore(labels, boxes, crowd_boxes, threshold=0.5):
    """The labels (1 object, 0 background, -1 ignored) with every background box whose
    intersection with some crowd box is more than ``threshold`` of its own area set to -1."""
    labels = np.array(labels, copy=True)
    if len(crowd_boxes) == 0:
        return labels
    covered = crowd_ioa(boxes, crowd_boxes).max(axis=1) > threshold
    labels[covered & (labels == 0)] = -1
    return labels
