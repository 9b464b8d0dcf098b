"""Checkers of lesson 10 (train on shapes: how COCO scores a detector). References:
``minimask.ops.box_iou`` and pycocotools itself, which COCOeval runs: its box IoU
(``pycocotools.mask.iou`` on (x, y, w, h) boxes, the function COCOeval calls for ``bbox``),
the ground truth a ``COCOeval.evaluate()`` keeps in each of its area ranges (``gtIgnore``),
and the precision that ``COCOeval.accumulate()`` stores in ``eval["precision"]``, on small
hand-made ground truth and detections. Plus hand computations. IoUs and precisions are
float64, compared to 1e-12 (a few roundings of numbers below 1000 err by ~1e-13); area-range
memberships (booleans) exactly."""

import contextlib
import io

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import minimask
from exercises import Wrong, exercise
from minimask.ops import box_iou

AREA_RANGES = ("small", "medium", "large")


def _xywh(boxes):
    """(x1, y1, x2, y2) -> COCO's (x, y, w, h)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


def _random_boxes(rng, count, image=128.0):
    """count boxes (x1, y1, x2, y2) of positive width and height inside an image."""
    xy = rng.uniform(0, image * 0.8, (count, 2))
    wh = rng.uniform(1.0, image * 0.4, (count, 2))
    return np.concatenate([xy, xy + wh], axis=1)


@exercise("10.1", "the IoU matrix of two sets of boxes", "box_iou_matrix")
def check_box_iou(box_iou_matrix):
    """Hand computations: identical boxes 1, disjoint boxes and boxes that only touch 0, a
    box inside another the ratio of their areas, two 2x2 squares shifted by 1 pixel
    2 / 6 = 1/3. Then random boxes (5 x 7, 1 x 4, 0 x 3) against minimask.ops.box_iou
    (float64) and against pycocotools.mask.iou on the same boxes as (x, y, w, h). 1e-12."""
    hand = [  # box a, box b, IoU, why
        ((10, 20, 40, 60), (10, 20, 40, 60), 1.0, "the same box"),
        ((0, 0, 10, 10), (20, 20, 30, 30), 0.0, "disjoint boxes"),
        ((0, 0, 10, 10), (10, 0, 20, 10), 0.0, "boxes that share an edge but no area"),
        ((0, 0, 10, 10), (2, 2, 7, 6), 20 / 100, "a 5 x 4 box inside a 10 x 10 box"),
        ((0, 0, 2, 2), (1, 0, 3, 2), 2 / 6, "2x2 squares 1 pixel apart: inter 2, union 6"),
        ((0.5, 0.5, 2.5, 1.5), (1.5, 0.0, 3.5, 1.0), 0.5 / 3.5, "inter 1 x 0.5, union 2 + 2 - 0.5"),
    ]
    for a, b, want, why in hand:
        got = np.asarray(box_iou_matrix(np.array([a], float), np.array([b], float)), float)
        if got.shape != (1, 1):
            raise Wrong(f"one box against one box: got shape {got.shape}, want (1, 1)")
        if abs(got[0, 0] - want) > 1e-12:
            raise Wrong(
                f"box {a} against box {b}: got IoU {got[0, 0]:.6f}, want {want:.6f} ({why})"
            )
    rng = np.random.default_rng(100)
    for n, m in ((5, 7), (1, 4), (8, 1), (0, 3)):
        boxes1, boxes2 = _random_boxes(rng, n), _random_boxes(rng, m)
        k = min(n, m)  # overlapping pairs too: the first boxes of boxes1, grown a little
        boxes2[:k] = boxes1[:k] + rng.uniform(0, 4, (k, 4)) * [-1, -1, 1, 1]
        got = np.asarray(box_iou_matrix(boxes1.copy(), boxes2.copy()), float)
        if got.shape != (n, m):
            raise Wrong(f"{n} boxes against {m} boxes: got shape {got.shape}, want ({n}, {m})")
        if n == 0:
            continue
        want = box_iou(minimask.tensor(boxes1), minimask.tensor(boxes2)).numpy()
        coco = np.asarray(mask_utils.iou(_xywh(boxes1), _xywh(boxes2), [0] * m))
        assert np.allclose(want, coco.reshape(n, m), rtol=0, atol=1e-12)
        if not np.allclose(got, want, rtol=0, atol=1e-12):
            i, j = np.unravel_index(np.argmax(np.abs(got - want)), want.shape)
            raise Wrong(
                f"random boxes, pair ({i}, {j}): {boxes1[i].round(2).tolist()} and "
                f"{boxes2[j].round(2).tolist()}: got IoU {got[i, j]:.6f}, minimask's box_iou "
                f"and pycocotools' mask.iou give {want[i, j]:.6f}"
            )


def _quiet():
    """pycocotools prints its progress: keep the checker silent."""
    return contextlib.redirect_stdout(io.StringIO())


def _coco_gt(images, annotations, categories=(1,)):
    """A pycocotools COCO built from dicts (no file)."""
    gt = COCO()
    gt.dataset = {
        "images": [{"id": i, "width": 1000, "height": 1000} for i in images],
        "categories": [{"id": c, "name": f"class {c}"} for c in categories],
        "annotations": annotations,
    }
    with _quiet():
        gt.createIndex()
    return gt


def _coco_area_membership(areas):
    """(N, 3) bool: whether COCOeval keeps each ground-truth object (gtIgnore == 0) in its
    small, medium and large area ranges. One image per object, so the order is known."""
    annotations = [
        {
            "id": n + 1,
            "image_id": n + 1,
            "category_id": 1,
            "bbox": [0, 0, 10, 10],
            "area": float(a),
            "iscrowd": 0,
        }
        for n, a in enumerate(areas)
    ]
    gt = _coco_gt(range(1, len(areas) + 1), annotations)
    with _quiet():
        dt = gt.loadRes([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 1.0}])
        evaluator = COCOeval(gt, dt, "bbox")
        evaluator.evaluate()
    assert evaluator.params.areaRngLbl == ["all", *AREA_RANGES]
    kept = np.zeros((len(areas), 3), dtype=bool)
    for record in evaluator.evalImgs:
        if record is None:
            continue
        column = evaluator.params.areaRng.index(record["aRng"])  # 0 is "all"
        if column > 0:
            kept[record["image_id"] - 1, column - 1] = record["gtIgnore"][0] == 0
    return kept


@exercise("10.2", "COCO's area ranges", "area_ranges")
def check_area_ranges(area_ranges):
    """Areas around the limits 32^2 = 1024 and 96^2 = 9216 (both limits belong to both of
    their neighbouring ranges: pycocotools keeps an object when lo <= area <= hi), 0, and
    random areas up to 20000, against the ground truth COCOeval.evaluate() itself keeps in
    each area range (gtIgnore == 0, COCOeval's default params.areaRng). Exact."""
    areas = np.array(
        [0.0, 1.0, 500.0, 1023.99, 1024.0, 1024.01, 5000.0, 9215.5, 9216.0, 9216.5, 40000.0]
    )
    areas = np.concatenate([areas, np.random.default_rng(101).uniform(0, 20000, 30).round(2)])
    want = _coco_area_membership(areas)
    got = np.asarray(area_ranges(areas.copy()))
    if got.shape != want.shape:
        raise Wrong(
            f"{len(areas)} areas: got shape {got.shape}, want {want.shape} (small, medium, large)"
        )
    for n in range(len(areas)):
        if not np.array_equal(got[n].astype(bool), want[n]):
            said = [r for r, k in zip(AREA_RANGES, got[n]) if k] or ["none"]
            coco = [r for r, k in zip(AREA_RANGES, want[n]) if k] or ["none"]
            raise Wrong(
                f"area {areas[n]}: you put it in {', '.join(said)}; COCOeval keeps it in "
                f"{', '.join(coco)} (range [lo, hi] with lo <= area <= hi: small [0, 1024], "
                "medium [1024, 9216], large [9216, 1e10])"
            )


def _coco_precision(seed):
    """A random one-class problem scored by COCOeval (bbox): [(scores, is_tp, n_gt, the 101
    precisions of eval["precision"], IoU threshold)] at IoU 0.5 and 0.75, area "all",
    maxDets 100, with the detections in the order accumulate() sorts them."""
    rng = np.random.default_rng(seed)
    annotations, results = [], []
    images = range(1, 7)
    for image in images:
        gt_boxes = _random_boxes(rng, int(rng.integers(1, 5)), 200.0)
        for box in gt_boxes:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image,
                    "category_id": 1,
                    "bbox": _xywh([box])[0].tolist(),
                    "area": float(np.prod(box[2:] - box[:2])),
                    "iscrowd": 0,
                }
            )
            for _ in range(int(rng.integers(0, 3))):  # detections near the object
                noisy = box + rng.normal(0, 0.08 * (box[2] - box[0]), 4)
                results.append(
                    {
                        "image_id": image,
                        "category_id": 1,
                        "bbox": _xywh([noisy])[0].tolist(),
                        "score": float(rng.choice([0.9, 0.7, 0.5, rng.uniform()])),
                    }
                )
        for box in _random_boxes(rng, int(rng.integers(0, 3)), 200.0):  # background
            results.append(
                {
                    "image_id": image,
                    "category_id": 1,
                    "bbox": _xywh([box])[0].tolist(),
                    "score": float(rng.uniform()),
                }
            )
    gt = _coco_gt(images, annotations)
    with _quiet():
        dt = gt.loadRes(results)
        evaluator = COCOeval(gt, dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
    params = evaluator.params
    records = [
        e
        for e in evaluator.evalImgs
        if e is not None and e["aRng"] == params.areaRng[0] and e["maxDet"] == params.maxDets[-1]
    ]
    scores = np.concatenate([e["dtScores"] for e in records])
    order = np.argsort(-scores, kind="mergesort")  # as accumulate() does
    n_gt = int(sum(np.count_nonzero(e["gtIgnore"] == 0) for e in records))
    cases = []
    for t in (0, 5):  # IoU 0.5 and 0.75
        matched = np.concatenate([e["dtMatches"][t] for e in records]) > 0
        ignored = np.concatenate([e["dtIgnore"][t] for e in records]).astype(bool)
        keep = order[~ignored[order]]
        precision = evaluator.eval["precision"][t, :, 0, 0, -1]
        cases.append((scores[keep], matched[keep], n_gt, precision, params.iouThrs[t]))
    return cases


@exercise("10.3", "average precision, COCO's 101-point way", "ap_101")
def check_ap_101(ap_101):
    """A hand example (4 detections, 3 objects: precision 1 up to recall 1/3, 2/3 up to
    recall 2/3, 0 beyond, so AP = (34 + 33 * 2/3) / 101 = 56/101), no detections (AP 0),
    ties in score (kept in their given order). Then three random one-class problems
    (6 images) scored by pycocotools' COCOeval at IoU 0.5 and 0.75: the 101 precisions
    against eval["precision"][t, :, 0, 0, -1] and AP against their mean. 1e-12."""
    hand = [  # scores, is_tp, n_gt, precision at 101 recall points, why
        (
            [0.9, 0.8, 0.7, 0.6],
            [True, False, True, False],
            3,
            np.array([1.0] * 34 + [2 / 3] * 33 + [0.0] * 34),
            "precision 1, 1/2, 2/3, 1/2 at recall 1/3, 1/3, 2/3, 2/3: made non-increasing, "
            "1 for recall <= 1/3, 2/3 up to 2/3, 0 beyond the last recall",
        ),
        ([], [], 2, np.zeros(101), "no detections: every precision is 0"),
        (
            [0.5, 0.5, 0.2],
            [False, True, True],
            2,
            np.array([2 / 3] * 101),
            "equal scores keep their order: precision 0, 1/2, 2/3 at recall 0, 1/2, 1",
        ),
    ]
    for scores, is_tp, n_gt, want, why in hand:
        precision, ap = ap_101(np.array(scores, float), np.array(is_tp, bool), n_gt)
        precision = np.asarray(precision, float)
        if precision.shape != (101,):
            raise Wrong(f"got {precision.shape} precisions, want 101 (one per recall threshold)")
        if not np.allclose(precision, want, rtol=0, atol=1e-12):
            r = int(np.argmax(np.abs(precision - want)))
            raise Wrong(
                f"scores {scores}, true positives {is_tp}, {n_gt} objects: at recall "
                f"{r / 100:.2f} got precision {precision[r]:.6f}, want {want[r]:.6f} ({why})"
            )
        if abs(float(ap) - want.mean()) > 1e-12:
            raise Wrong(
                f"scores {scores}, true positives {is_tp}, {n_gt} objects: got AP {float(ap):.6f},"
                f" want {want.mean():.6f}, the mean of the 101 precisions"
            )
    for seed in (102, 103, 104):
        for scores, is_tp, n_gt, want, iou in _coco_precision(seed):
            precision, ap = ap_101(scores.copy(), is_tp.copy(), n_gt)
            precision = np.asarray(precision, float)
            where = (
                f"a random problem (seed {seed}) at IoU {iou:.2f}: {len(scores)} detections, "
                f"{int(is_tp.sum())} true positives, {n_gt} objects"
            )
            if precision.shape != (101,) or not np.allclose(precision, want, rtol=0, atol=1e-12):
                if precision.shape != (101,):
                    raise Wrong(f"{where}: got {precision.shape} precisions, want 101")
                r = int(np.argmax(np.abs(precision - want)))
                raise Wrong(
                    f"{where}: at recall {r / 100:.2f} got precision {precision[r]:.6f}, "
                    f"COCOeval's eval['precision'] has {want[r]:.6f}"
                )
            if abs(float(ap) - want.mean()) > 1e-12:
                raise Wrong(f"{where}: got AP {float(ap):.6f}, COCOeval gives {want.mean():.6f}")
