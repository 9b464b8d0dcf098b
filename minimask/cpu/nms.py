"""Non-maximum suppression on the CPU, in the IoU-bitmask form the CUDA twin mirrors.

Greedy NMS (torchvision's semantics): visit the boxes in decreasing score order; keep a box
unless a box kept before it overlaps it with IoU > iou_threshold. Boxes are (x1, y1, x2, y2)
with area (x2 - x1) * (y2 - y1) (no "+1"), and

    IoU(a, b) = inter / (area_a + area_b - inter),   inter = max(0, w) * max(0, h)
    w = min(a.x2, b.x2) - max(a.x1, b.x1),           h = the same with y

The loop in that definition is sequential (whether box j survives depends on which boxes
before it survived), but almost all of its work is not: the IoU of every pair can be
computed up front, in parallel. So the kernel has two steps, after a stable sort by
decreasing score (equal scores: lower index first):

1. `iou_bitmask`: for every sorted box i, a row of bits over the boxes j > i, bit j set when
   IoU(i, j) > iou_threshold, packed 64 to an unsigned 64-bit word:
   mask[i, j // 64] bit (j % 64). Rows are independent: parallel over i.
2. `sweep`: one sequential pass over i with a bitset `removed` of the boxes suppressed so far:
   if bit i of `removed` is clear, keep i and OR row i of the mask into `removed`.

Step 2 touches n * n/64 words instead of n*n/2 IoUs, so almost all the time is the parallel
step 1. The CUDA twin, like torchvision's CUDA kernel, computes the mask in 64 x 64 tiles,
one thread block per tile (rows of the tile = 64 threads, each testing its row box against
the tile's 64 column boxes and writing one word), then runs the same sweep.

Precision: IoUs are computed in float64 for every input dtype (torchvision uses the boxes'
dtype); the two can differ only for an IoU within float32 rounding of the threshold.
"""

import numba
import numpy as np

from minimask.threading_layer import one_thread_at_a_time

_WORD_BITS = 64


@numba.njit(cache=True, error_model="numpy")
def box_pair_iou(box_a, box_b, area_a, area_b):
    """IoU of two boxes (x1, y1, x2, y2) with areas area_a, area_b; NaN (never > a threshold)
    when both have zero area and do not overlap, as in torchvision."""
    w = max(0.0, min(box_a[2], box_b[2]) - max(box_a[0], box_b[0]))
    h = max(0.0, min(box_a[3], box_b[3]) - max(box_a[1], box_b[1]))
    inter = w * h
    return inter / (area_a + area_b - inter)


@numba.njit(cache=True, error_model="numpy")
def fill_mask_row(mask, boxes, areas, i, iou_threshold):
    """Row i of the mask: bit j set for every j > i with IoU(i, j) > iou_threshold."""
    for j in range(i + 1, boxes.shape[0]):
        if box_pair_iou(boxes[i], boxes[j], areas[i], areas[j]) > iou_threshold:
            mask[i, j // _WORD_BITS] |= np.uint64(1) << np.uint64(j % _WORD_BITS)


@numba.njit(parallel=True, cache=True, error_model="numpy")
def iou_bitmask(boxes, iou_threshold):
    """mask (n, ceil(n/64)) uint64 for boxes (n, 4) float64 sorted by decreasing score:
    bit j of row i (word j // 64, bit j % 64) is set iff j > i and IoU(i, j) > iou_threshold.

    Loop nest: rows i are independent, so prange over them; row i costs n - i - 1 IoUs,
    so the work items are pairs of rows (p, n-1-p), each about n IoUs, to give every
    thread the same amount of work.
    """
    n = boxes.shape[0]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    mask = np.zeros((n, (n + _WORD_BITS - 1) // _WORD_BITS), dtype=np.uint64)
    for pair in numba.prange((n + 1) // 2):
        fill_mask_row(mask, boxes, areas, pair, iou_threshold)
        mirror = n - 1 - pair
        if mirror != pair:
            fill_mask_row(mask, boxes, areas, mirror, iou_threshold)
    return mask


@numba.njit(cache=True)
def sweep(mask):
    """Positions (in sorted order) of the kept boxes: the sequential half of greedy NMS.

    Box i is kept when no kept box before it has its bit set; a kept box's mask row is then
    OR-ed into `removed` (only words from i // 64 on can hold bits j > i).
    """
    n, n_words = mask.shape
    removed = np.zeros(n_words, dtype=np.uint64)
    kept = np.empty(n, dtype=np.int64)
    n_kept = 0
    for i in range(n):
        word = i // _WORD_BITS
        if (removed[word] >> np.uint64(i % _WORD_BITS)) & np.uint64(1):
            continue
        kept[n_kept] = i
        n_kept += 1
        for w in range(word, n_words):
            removed[w] |= mask[i, w]
    return kept[:n_kept]


@one_thread_at_a_time
def nms(boxes, scores, iou_threshold):
    """Indices (int64) of the boxes greedy NMS keeps, in decreasing score order.

    boxes (n, 4) and scores (n,) NumPy arrays, already checked (finite boxes with
    x1 <= x2, y1 <= y2; no NaN score). Ties in score: lower index first (a stable sort).
    """
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    sorted_boxes = np.ascontiguousarray(np.asarray(boxes, dtype=np.float64)[order])
    mask = iou_bitmask(sorted_boxes, float(iou_threshold))
    return order[sweep(mask)].astype(np.int64)
