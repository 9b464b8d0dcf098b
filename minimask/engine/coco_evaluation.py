"""COCO evaluation: model outputs -> COCO result dicts -> pycocotools ``COCOeval`` metrics.

The model output follows torchvision's convention: per image a dict with

- ``boxes``: float ``[D, 4]`` ``(x1, y1, x2, y2)`` in pixels of the original image,
- ``labels``: int64 ``[D]`` in ``1..K`` (the dataset's labels, 0 is the background),
- ``scores``: float ``[D]``,
- ``masks``: float ``[D, 1, H, W]`` probabilities pasted into the original image,

as minimask Tensors (anything with ``.numpy()``) or NumPy arrays.

``predictions_to_coco_results`` turns one such dict into COCO *result* dicts (the format of
the official ``*_results.json`` files), ``evaluate_coco`` scores a list of them with
pycocotools, and ``write_results_json`` / ``write_metrics_json`` save both atomically.

Choices (and where they differ from torchvision's ``CocoEvaluator``):

- A mask pixel is foreground when its probability is ``>= mask_threshold`` (default 0.5;
  torchvision uses ``> 0.5``, which differs only for a pixel of exactly 0.5).
- Labels go back to COCO ids as ``category_ids[label - 1]``, the same list as
  ``CocoDetection.category_ids`` (sorted COCO ids), so non-contiguous ids (COCO's 1..90)
  survive the round trip.
- For ``segm`` the result's ``bbox`` is dropped before ``loadRes``: otherwise pycocotools
  takes the *box* area as the instance area and the small/medium/large split of mask AP
  would use box areas (detectron2 does the same).
- Empty ``results``: ``COCO.loadRes`` fails on an empty list (it reads ``anns[0]``), so
  the empty result set is built the way ``loadRes`` would build it (all gt images and
  categories, no annotations) and evaluated by ``COCOeval`` as usual. The numbers are
  therefore pycocotools' own: 0.0 for every metric whose area range has ground truth
  (nothing was detected) and -1.0 where it has none, also when the ground truth is empty.
- -1.0 is kept as pycocotools gives it: "no ground truth in this area range for these
  images" (e.g. ``APs`` on a set with no small objects), not a score. Do not average it.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
import warnings

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from minimask.data.coco import PYCOCOTOOLS_NUMPY2_WARNING
from minimask.io.atomic import atomic_write

IOU_TYPES = ("bbox", "segm")
# COCOeval.stats[0..5] for bbox and segm, in this order.
METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")

__all__ = [
    "IOU_TYPES",
    "METRIC_NAMES",
    "evaluate_coco",
    "predictions_to_coco_results",
    "write_metrics_json",
    "write_results_json",
]


@contextlib.contextmanager
def _quiet_pycocotools():
    """Hide pycocotools' NumPy 2 DeprecationWarning (about its own code, raised on every
    mask decode) for the pycocotools calls inside the block only."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", re.escape(PYCOCOTOOLS_NUMPY2_WARNING), DeprecationWarning)
        yield


def _to_numpy(value) -> np.ndarray:
    """A minimask Tensor (or anything with ``.numpy()``) or array-like as a NumPy array."""
    if hasattr(value, "numpy"):
        value = value.numpy()
    return np.asarray(value)


# ------------------------------------------------------------------------ model -> results
def predictions_to_coco_results(
    prediction, image_id, category_ids, mask_threshold: float = 0.5
) -> list[dict]:
    """COCO result dicts for the detections of one image (see the module docstring).

    ``prediction``: the model's dict for this image (``boxes``, ``labels``, ``scores`` and,
    optionally, ``masks``; without ``masks`` the results have no ``segmentation`` and can
    only be scored as ``bbox``). ``image_id``: the COCO image id. ``category_ids``: COCO id
    of each label, ``category_ids[label - 1]`` (e.g. ``CocoDetection.category_ids``).

    Each result: ``image_id`` (int), ``category_id`` (int), ``bbox`` ``[x, y, w, h]`` floats
    with ``w = x2 - x1``, ``h = y2 - y1``, ``score`` (float) and ``segmentation``: the
    compressed RLE (pycocotools ``encode`` of the Fortran-ordered uint8 mask
    ``probability >= mask_threshold``) with ``counts`` as a str, so it is JSON-ready.
    No detections (``D = 0``) gives ``[]``.

    Raises ValueError on mismatched lengths, a label outside ``1..len(category_ids)``, a
    non-finite box or score (JSON has no NaN), or masks of the wrong shape.
    """
    boxes = _to_numpy(prediction["boxes"]).astype(np.float64).reshape(-1, 4)
    labels = _to_numpy(prediction["labels"]).reshape(-1)
    scores = _to_numpy(prediction["scores"]).astype(np.float64).reshape(-1)
    num = len(boxes)
    if len(labels) != num or len(scores) != num:
        raise ValueError(
            f"image {image_id}: {num} boxes but {len(labels)} labels and {len(scores)} scores"
        )
    masks = prediction.get("masks")
    if masks is not None:
        masks = _to_numpy(masks)
        if masks.ndim == 4 and masks.shape[1] == 1:
            masks = masks[:, 0]
        if masks.ndim != 3 or masks.shape[0] != num:
            raise ValueError(
                f"image {image_id}: masks must be [D, 1, H, W] (or [D, H, W]) with D = {num}, "
                f"got shape {tuple(_to_numpy(prediction['masks']).shape)}"
            )
    if num == 0:
        return []

    category_ids = list(category_ids)
    if not np.all(labels == np.round(labels)):
        raise ValueError(f"image {image_id}: labels must be integers, got {labels}")
    labels = labels.astype(np.int64)
    bad = (labels < 1) | (labels > len(category_ids))
    if bad.any():
        raise ValueError(
            f"image {image_id}: labels must be in 1..{len(category_ids)} "
            f"(0 is the background), got {sorted(set(labels[bad].tolist()))}"
        )
    if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
        raise ValueError(f"image {image_id}: boxes and scores must be finite")

    rles = None
    if masks is not None:
        binary = np.asfortranarray((masks >= mask_threshold).transpose(1, 2, 0), dtype=np.uint8)
        with _quiet_pycocotools():
            rles = mask_utils.encode(binary)  # one RLE per detection, from [H, W, D]

    results = []
    for n in range(num):
        x1, y1, x2, y2 = (float(v) for v in boxes[n])
        result = {
            "image_id": int(image_id),
            "category_id": int(category_ids[labels[n] - 1]),
            "bbox": [x1, y1, x2 - x1, y2 - y1],
            "score": float(scores[n]),
        }
        if rles is not None:
            rle = rles[n]
            result["segmentation"] = {
                "size": [int(s) for s in rle["size"]],
                "counts": rle["counts"].decode("ascii"),
            }
        results.append(result)
    return results


# ------------------------------------------------------------------------ COCOeval
def _load_results(coco_gt: COCO, results: list[dict], iou_type: str) -> COCO:
    """The pycocotools result object for ``iou_type``; the caller's dicts are not changed
    (``loadRes`` writes ``id``/``area``/``iscrowd`` into the dicts it is given)."""
    needed = "segmentation" if iou_type == "segm" else "bbox"
    anns = []
    for n, result in enumerate(results):
        if needed not in result:
            raise ValueError(f"{iou_type} evaluation needs {needed!r} in every result (#{n})")
        ann = dict(result)
        if iou_type == "segm":
            ann.pop("bbox", None)  # area from the mask, not the box (module docstring)
        anns.append(ann)
    if anns:
        return coco_gt.loadRes(anns)
    # loadRes cannot take an empty list; build what it would build.
    coco_dt = COCO()
    coco_dt.dataset = {
        "images": list(coco_gt.dataset["images"]),
        "categories": copy.deepcopy(coco_gt.dataset["categories"]),
        "annotations": [],
    }
    coco_dt.createIndex()
    return coco_dt


def evaluate_coco(
    coco_gt: COCO,
    results: list[dict],
    iou_types=IOU_TYPES,
    verbose: bool = True,
    *,
    image_ids=None,
) -> dict[str, dict[str, float]]:
    """Score ``results`` against ``coco_gt`` with pycocotools' ``COCOeval``.

    ``coco_gt``: the pycocotools ``COCO`` of the ground truth (``CocoDetection.coco``).
    ``results``: COCO result dicts (``predictions_to_coco_results``); they are not changed.
    ``iou_types``: ``"bbox"`` and/or ``"segm"``. ``verbose``: print pycocotools' progress
    lines and its standard 12-line summary table per type; otherwise nothing is printed.
    ``image_ids``: the images that were evaluated (default: every image of ``coco_gt``).
    Pass it when only some images were run (a subset, or images that failed to load):
    images left out would otherwise count their ground truth as missed. Results for images
    outside ``image_ids`` are ignored (COCOeval's ``params.imgIds``).

    Returns ``{iou_type: {"AP", "AP50", "AP75", "APs", "APm", "APl"}}`` as plain floats
    (``COCOeval.stats[0..5]``; -1.0 where an area range has no ground truth, see the module
    docstring, also for what an empty ``results`` gives).
    """
    iou_types = (iou_types,) if isinstance(iou_types, str) else tuple(iou_types)
    for iou_type in iou_types:
        if iou_type not in IOU_TYPES:
            raise ValueError(f"iou_types must be among {IOU_TYPES}, got {iou_type!r}")
    gt_ids = set(coco_gt.getImgIds())
    if image_ids is None:
        image_ids = gt_ids
    image_ids = sorted({int(i) for i in image_ids})
    unknown = sorted(set(image_ids) - gt_ids)
    if unknown:
        raise ValueError(f"image_ids not in the ground truth: {unknown[:10]}")
    unknown = sorted({r["image_id"] for r in results} - gt_ids)
    if unknown:
        raise ValueError(f"results for image ids not in the ground truth: {unknown[:10]}")

    metrics = {}
    with contextlib.ExitStack() as stack:
        if not verbose:
            stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        stack.enter_context(_quiet_pycocotools())
        for iou_type in iou_types:
            coco_dt = _load_results(coco_gt, results, iou_type)
            evaluator = COCOeval(coco_gt, coco_dt, iou_type)
            evaluator.params.imgIds = image_ids
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()  # prints the table (into the void when not verbose)
            stats = evaluator.stats
            metrics[iou_type] = {name: float(stats[i]) for i, name in enumerate(METRIC_NAMES)}
    return metrics


# ------------------------------------------------------------------------ files
def _write_json_atomic(obj, path, indent=None) -> None:
    """Write ``obj`` as JSON (NaN refused) with ``atomic_write``: a reader sees the old file
    or the whole new one, never a partial one."""
    with atomic_write(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=indent, allow_nan=False)
        f.write("\n")


def write_results_json(results: list[dict], path) -> None:
    """Save COCO result dicts as a JSON list (the file ``COCO.loadRes`` reads), atomically."""
    _write_json_atomic(list(results), path)


def write_metrics_json(metrics: dict, path) -> None:
    """Save ``evaluate_coco``'s dict as indented JSON, atomically."""
    _write_json_atomic(metrics, path, indent=2)
