"""Non-maximum suppression on the GPU: the twin of ``minimask/cpu/nms.py`` (read its
docstring: greedy NMS, the IoU formula, the score order with ties broken by lower index,
and the split into a parallel IoU bitmask and a short sequential sweep).

The steps, as in torchvision's CUDA NMS:

1. sort on the GPU: ``order = argsort(-scores)`` (the backend's stable rank sort, so equal
   scores keep the lower index first), and gather the boxes into that order;
2. ``iou_bitmask`` on the GPU, in 64 x 64 TILES. The mask is the CPU's: mask[i, j // 64]
   bit (j % 64) is set iff j > i and IoU(sorted box i, sorted box j) > iou_threshold,
   (n, ceil(n/64)) uint64 words. One thread block per tile (row tile r, column tile t),
   64 threads:

       block (t, r), thread x                  grid (ceil(n/64), ceil(n/64)), 64 threads
           stage the tile's 64 column boxes 64*t .. 64*t+63 in shared memory
               (thread x loads box 64*t + x), then wait for the whole block
           i = 64*r + x                        this thread's row box
           word = 0
           for j in the column tile, j > i:    64 IoUs against shared memory
               if IoU(i, j) > threshold: set bit j % 64 of word
           mask[i, t] = word                   one uint64 word per thread

   Every column box is read from global memory once per block instead of once per
   thread, and each word is written by exactly one thread (no atomics). Tiles below the
   diagonal (r > t) hold only pairs j < i: their blocks write zero words and stop;
3. the sweep on the HOST: the mask (n * n/64 words, 500 kB for 2000 boxes) is copied back
   and the CPU's ``sweep`` walks it, as torchvision's CUDA nms does: the sweep is
   sequential (box i's fate depends on the boxes kept before it), so it would run on a
   single GPU thread, and a copy plus a fast host loop is cheaper than that;
4. the kept positions go back to the GPU and pick their indices from ``order``.

Precision: IoUs in float64 for every box dtype, with the CPU's operations in the CPU's
order, so the mask (and the kept indices) match the CPU's bit for bit. (On a real GPU the
compiler may fuse ``area_a + area_b - w * h`` into one multiply-add, rounded once; that
can flip a bit only for an IoU within a rounding of the threshold.)
"""

import numpy as np
from numba import cuda, float64

from minimask.cpu.nms import sweep
from minimask.cuda.array.creation import asarray, to_numpy
from minimask.cuda.array.cuda_array import empty
from minimask.cuda.array.launch import tiled
from minimask.cuda.array.sorting import argsort

_WORD_BITS = 64  # boxes per tile side = bits per mask word = threads per block


@cuda.jit(device=True)
def box_pair_iou(box_a, box_b, area_a, area_b):
    """IoU of two boxes (x1, y1, x2, y2) with areas area_a, area_b; NaN (never > a threshold)
    when both have zero area and do not overlap, as in torchvision. The CPU's function line
    for line, as a device function; the kernel computes the areas (`_box_area`) that the
    CPU precomputes for all boxes at once."""
    w = max(0.0, min(box_a[2], box_b[2]) - max(box_a[0], box_b[0]))
    h = max(0.0, min(box_a[3], box_b[3]) - max(box_a[1], box_b[1]))
    inter = w * h
    return inter / (area_a + area_b - inter)


@cuda.jit(device=True)
def _box_area(box):
    """(x2 - x1) * (y2 - y1): the formula of the CPU's precomputed areas."""
    return (box[2] - box[0]) * (box[3] - box[1])


@cuda.jit
def iou_bitmask_kernel(boxes, iou_threshold, mask):
    """mask (n, ceil(n/64)) uint64 for boxes (n, 4) float64 sorted by decreasing score:
    bit j % 64 of mask[i, j // 64] is set iff j > i and IoU(i, j) > iou_threshold.

    Launch: grid (ceil(n/64), ceil(n/64)) blocks of 64 threads; block (t, r) computes the
    tile of row boxes 64*r .. 64*r+63 against column boxes 64*t .. 64*t+63, thread x the
    word of row 64*r + x (module docstring for the loop nest).

    Computes the IoUs in float64 because then the mask is the CPU's bit for bit (an IoU
    within a float32 rounding of the threshold would otherwise flip a box's fate); it is
    n^2 / 2 IoUs of a few operations each, once per NMS, little next to the network.
    """
    n = boxes.shape[0]
    column_tile = cuda.blockIdx.x
    row_tile = cuda.blockIdx.y
    x = cuda.threadIdx.x
    row_start = row_tile * _WORD_BITS
    column_start = column_tile * _WORD_BITS
    row_count = min(n - row_start, _WORD_BITS)
    column_count = min(n - column_start, _WORD_BITS)

    if row_tile > column_tile:  # below the diagonal every pair has j < i: zero words
        if x < row_count:
            mask[row_start + x, column_tile] = np.uint64(0)
        return  # the whole block returns, so none of its threads waits at syncthreads

    column_boxes = cuda.shared.array(shape=(_WORD_BITS, 4), dtype=float64)
    if x < column_count:
        for d in range(4):
            column_boxes[x, d] = boxes[column_start + x, d]
    cuda.syncthreads()  # the tile's column boxes are all in shared memory from here on

    if x < row_count:
        i = row_start + x
        row_area = _box_area(boxes[i])
        word = np.uint64(0)
        first = x + 1 if row_tile == column_tile else 0  # j > i within a diagonal tile
        for b in range(first, column_count):
            column_area = _box_area(column_boxes[b])
            if box_pair_iou(boxes[i], column_boxes[b], row_area, column_area) > iou_threshold:
                word |= np.uint64(1) << np.uint64(b)
        mask[i, column_tile] = word


def iou_bitmask(boxes, iou_threshold):
    """The mask (n, ceil(n/64)) uint64 of sorted boxes (n, 4), a CudaArray: one launch of
    `iou_bitmask_kernel`, one block per 64 x 64 tile."""
    boxes = boxes.astype(np.float64, copy=False).contiguous()
    n = boxes.shape[0]
    tiles = (n + _WORD_BITS - 1) // _WORD_BITS
    mask = empty((n, tiles), np.uint64)
    if n:
        iou_bitmask_kernel[tiled((tiles, tiles), _WORD_BITS, mask.size)](
            boxes.device_ndarray(), float(iou_threshold), mask.device_ndarray()
        )
    return mask


def nms(boxes, scores, iou_threshold):
    """Indices (int64 CudaArray) of the boxes greedy NMS keeps, in decreasing score order.

    boxes (n, 4) and scores (n,) CudaArrays, already checked (finite boxes with
    x1 <= x2, y1 <= y2; no NaN score). Ties in score: lower index first (a stable sort).
    """
    n = boxes.shape[0]
    if n == 0:
        return empty((0,), np.int64)
    order = argsort(-scores.astype(np.float64, copy=False), kind="stable")
    mask = iou_bitmask(boxes.astype(np.float64, copy=False)[order], iou_threshold)
    kept_positions = sweep(to_numpy(mask))  # on the host (module docstring, step 3)
    return order[asarray(kept_positions)]
