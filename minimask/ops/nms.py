"""Non-maximum suppression: ``nms`` and ``batched_nms`` (torchvision's semantics).

    nms(boxes, scores, iou_threshold) -> int64 Tensor of kept indices, highest score first

Greedy NMS visits the boxes in decreasing score order and drops every box whose IoU with
an already kept box is greater than ``iou_threshold`` (strictly: IoU == threshold keeps the
box). Boxes are (x1, y1, x2, y2) with area (x2 - x1) * (y2 - y1), no "+1". Equal scores are
visited lower index first (a stable sort), so the result is fully determined.

    batched_nms(boxes, scores, idxs, iou_threshold)

runs NMS separately for every category ``idxs[i]`` (boxes of different categories never
suppress each other) and returns the kept indices of all categories together, highest
score first. The two ways torchvision has (it picks by the number of boxes, with a limit
that depends on the device); minimask picks by device:

- CPU: one NMS per category, then the kept indices of all categories merged into NMS
  order (torchvision's ``_batched_nms_vanilla``). The IoU bitmask costs n^2 / 2 IoUs for
  n boxes, so splitting n boxes into categories of n_c costs sum(n_c^2) instead of
  (sum n_c)^2: for the RPN's five levels of up to 1000 boxes, about a third.
- GPU: torchvision's coordinate trick. Shift the boxes of category c by c * (span + 1),
  where span is the extent of all coordinates, so that boxes of different categories
  cannot overlap, and run one NMS over everything: one launch whose n^2 IoUs run in
  parallel beats a launch (and a host round trip) per category.

The kernels (sort, IoU bitmask, sequential sweep) are in ``minimask/cpu/nms.py``.

Checks beyond torchvision (each would otherwise give a silent wrong answer): boxes must be
finite with x1 <= x2 and y1 <= y2, scores must not be NaN, iou_threshold must be a number
>= 0 (a negative threshold would make disjoint boxes suppress each other, and break the
category separation of ``batched_nms``). Differences in ``batched_nms``: the shift is
computed in float64 from category ranks (0, 1, 2, ... in sorted order of the distinct
``idxs``) and from the coordinates' full range (max - min, not max), which keeps the
categories apart even for negative coordinates, where torchvision's max-based shift can
let them overlap.
"""

import numbers

import numpy as np

from minimask.autograd.device import backend_for
from minimask.autograd.tensor import Tensor
from minimask.ops._roi_format import check_box_coordinates


def _check_boxes(name, boxes, label="boxes"):
    """A float64 host copy of a Tensor (n, 4) of finite boxes with x1 <= x2, y1 <= y2."""
    if not isinstance(boxes, Tensor):
        raise TypeError(f"{name}: {label} must be a Tensor, got {type(boxes).__name__}")
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(
            f"{name}: {label} must have shape (n, 4) with rows (x1, y1, x2, y2), got {boxes.shape}"
        )
    if boxes.dtype.kind not in "iuf":
        raise TypeError(f"{name}: {label} must hold numbers, got dtype {boxes.dtype}")
    host = boxes.numpy().astype(np.float64)
    check_box_coordinates(name, host, lambda i: f"box {label}[{i}]")
    return host


def _check_scores(name, scores, n):
    if not isinstance(scores, Tensor):
        raise TypeError(f"{name}: scores must be a Tensor, got {type(scores).__name__}")
    if scores.shape != (n,):
        raise ValueError(
            f"{name}: scores must have shape ({n},), one per box, got {scores.shape} for {n} boxes"
        )
    if scores.dtype.kind not in "iuf":
        raise TypeError(f"{name}: scores must hold numbers, got dtype {scores.dtype}")
    host = scores.numpy().astype(np.float64)
    if np.isnan(host).any():
        raise ValueError(
            f"{name}: scores[{int(np.flatnonzero(np.isnan(host))[0])}] is NaN "
            "(NaN has no place in a score order)"
        )
    return host


def _check_threshold(name, iou_threshold):
    if not isinstance(iou_threshold, numbers.Real) or not iou_threshold >= 0:
        raise ValueError(f"{name}: iou_threshold must be a number >= 0, got {iou_threshold!r}")
    return float(iou_threshold)


def _run_nms(boxes, scores, iou_threshold, device):
    """The backend's NMS kernel on checked host arrays; kept indices as an int64 Tensor."""
    xp = backend_for(device)
    kept = xp.nms(xp.asarray(boxes), xp.asarray(scores), iou_threshold)
    return Tensor(kept, device)


def nms(boxes, scores, iou_threshold):
    """Indices (int64 Tensor) of the boxes greedy NMS keeps, highest score first.

    boxes (n, 4) as (x1, y1, x2, y2); scores (n,); a box is dropped when its IoU with a
    kept, higher-scored box is > iou_threshold. See the module docstring.
    """
    name = "nms"
    host_boxes = _check_boxes(name, boxes)
    host_scores = _check_scores(name, scores, len(host_boxes))
    iou_threshold = _check_threshold(name, iou_threshold)
    return _run_nms(host_boxes, host_scores, iou_threshold, boxes.device)


def batched_nms(boxes, scores, idxs, iou_threshold):
    """NMS within each category ``idxs[i]``: kept indices (int64 Tensor), highest score
    first, over all categories (see the module docstring for the coordinate trick)."""
    name = "batched_nms"
    host_boxes = _check_boxes(name, boxes)
    host_scores = _check_scores(name, scores, len(host_boxes))
    iou_threshold = _check_threshold(name, iou_threshold)
    if not isinstance(idxs, Tensor) or idxs.shape != (len(host_boxes),):
        shape = idxs.shape if isinstance(idxs, Tensor) else type(idxs).__name__
        raise ValueError(
            f"{name}: idxs must be a Tensor of shape ({len(host_boxes)},), one category per "
            f"box, got {shape}"
        )
    if idxs.dtype.kind not in "iub":
        raise TypeError(f"{name}: idxs must be an integer Tensor, got dtype {idxs.dtype}")
    if len(host_boxes) == 0:
        return _run_nms(host_boxes, host_scores, iou_threshold, boxes.device)
    _, rank = np.unique(idxs.numpy(), return_inverse=True)
    if boxes.device == "cpu":
        return _nms_per_category(host_boxes, host_scores, rank, iou_threshold)
    low, high = host_boxes.min(), host_boxes.max()
    shifted = host_boxes - low + (rank.reshape(-1, 1) * (high - low + 1.0))
    return _run_nms(shifted, host_scores, iou_threshold, boxes.device)


def _nms_per_category(boxes, scores, rank, iou_threshold):
    """batched_nms on the CPU: NMS within each category rank, the survivors merged into
    NMS order (score descending, equal scores lower index first: a stable sort of the
    indices, which are ascending within each category's run)."""
    xp = backend_for("cpu")
    kept = []
    for category in range(rank.max() + 1):
        members = np.flatnonzero(rank == category)
        kept.append(members[xp.nms(boxes[members], scores[members], iou_threshold)])
    kept = np.sort(np.concatenate(kept))
    return Tensor(kept[np.argsort(-scores[kept], kind="stable")], "cpu")
