"""Checkers of lesson 11 (real COCO images: category ids, crowd regions). References:
minimask's ``CocoDetection`` (its category map, read from a small annotation file written
here), ``minimask.models.crowd.crowd_covered`` and ``minimask.models.rpn_targets`` (the crowd
rule as training applies it), pycocotools (``mask.frPyObjects``, ``decode``, ``encode`` and
``area`` for COCO's uncompressed RLE, and ``mask.iou`` with ``iscrowd`` set, which divides
the intersection by the area of the first box: Detectron's crowd filter calls it so), and
hand computations. Ids, labels, masks, run lengths and ignore labels are integers, compared
exactly; intersections over area are float64, compared to 1e-12."""

import json
import os
import tempfile

import numpy as np
from pycocotools import mask as mask_utils

import minimask
from exercises import Wrong, exercise
from minimask.data.coco import CocoDetection
from minimask.models import BoxCoder, Matcher, rpn_targets
from minimask.models.crowd import CROWD_IGNORE_THRESHOLD, crowd_covered

COCO_UNUSED_IDS = (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)  # between 1 and 90
COCO_IDS = [i for i in range(1, 91) if i not in COCO_UNUSED_IDS]


def _coco_detection_maps(categories):
    """CocoDetection's two maps for an annotation file listing these categories."""
    data = {
        "images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 8}],
        "annotations": [],
        "categories": categories,
    }
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "instances.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f)
        ds = CocoDetection(folder, path)
    return ds.category_id_to_label, ds.label_to_category_id


@exercise("11.1", "COCO's category ids and the model's labels", "category_maps")
def check_category_maps(category_maps):
    """COCO's 80 categories (ids 1..90, 10 unused), in a shuffled order: by hand, id 1 is
    label 1, 11 is 11, 13 (after the unused 12) is 12, 90 is 80, and label k goes back to
    the k-th smallest id. Then the same list and 5 random lists of non-contiguous ids
    against the maps of minimask's CocoDetection reading a file with those categories.
    Exact (integers)."""
    rng = np.random.default_rng(110)
    shuffled = [{"id": int(i), "name": f"c{i}"} for i in rng.permutation(COCO_IDS)]
    id_to_label, label_to_id = category_maps(shuffled)
    for cid, label in ((1, 1), (11, 11), (13, 12), (25, 24), (27, 25), (90, 80)):
        if id_to_label.get(cid) != label:
            raise Wrong(
                f"COCO's 80 categories, listed in a shuffled order: id {cid} got label "
                f"{id_to_label.get(cid)}, want {label} (label k is the k-th smallest id; "
                f"ids {list(COCO_UNUSED_IDS)} are not used)"
            )
    lists = [shuffled]
    for _ in range(5):
        ids = rng.choice(np.arange(1, 500), size=int(rng.integers(1, 12)), replace=False)
        lists.append([{"id": int(i), "name": f"c{i}"} for i in ids])
    for categories in lists:
        want_to_label, want_to_id = _coco_detection_maps(categories)
        got_to_label, got_to_id = category_maps([dict(c) for c in categories])
        ids = [c["id"] for c in categories]
        if dict(got_to_label) != want_to_label:
            raise Wrong(
                f"categories with ids {ids[:12]}{' ...' if len(ids) > 12 else ''}: your id -> "
                f"label map differs from CocoDetection's, e.g. "
                + ", ".join(
                    f"id {c}: {got_to_label.get(c)} (want {want_to_label[c]})"
                    for c in sorted(want_to_label)
                    if got_to_label.get(c) != want_to_label[c]
                )[:300]
            )
        if dict(got_to_id) != want_to_id:
            raise Wrong(
                f"categories with ids {ids[:12]}: your label -> id map differs from "
                f"CocoDetection's {dict(list(want_to_id.items())[:8])}... (it is the inverse "
                "of id -> label: labels 1..K)"
            )


def _uncompressed(mask):
    """COCO's uncompressed RLE of a 0/1 mask, written out: run lengths of the pixels in
    column-major order, starting with a run of zeros (maybe of length 0)."""
    flat = mask.reshape(-1, order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(bounds).tolist()
    return ([0] + runs) if flat[0] == 1 else runs


def _random_masks(rng):
    masks = [np.zeros((3, 4), np.uint8), np.ones((2, 5), np.uint8)]
    for h, w in ((5, 7), (9, 4), (1, 6), (16, 16)):
        masks.append((rng.uniform(size=(h, w)) < rng.uniform(0.2, 0.8)).astype(np.uint8))
    blob = np.zeros((20, 30), np.uint8)
    blob[4:15, 6:25] = 1  # a rectangle with a hole, as a crowd region can be
    blob[8:10, 10:12] = 0
    masks.append(blob)
    return masks


@exercise("11.2", "COCO's uncompressed RLE (crowd regions)", "rle_encode", "rle_decode")
def check_rle(rle_encode, rle_decode):
    """By hand: counts [2, 3, 1] of a 2 x 3 mask are 2 zeros, 3 ones, 1 zero in column-major
    order, [[0, 1, 1], [0, 1, 0]]; a mask whose first pixel is 1 starts with a run of 0
    zeros. Then 7 masks (empty, full, random, a rectangle with a hole): rle_encode against
    the run lengths written out in NumPy and, through pycocotools.mask.frPyObjects, against
    pycocotools' own encoding of the mask; rle_decode against pycocotools.mask.decode, and
    the area (the sum of the runs of ones) against pycocotools.mask.area. Exact."""
    hand = [
        ([2, 3, 1], 2, 3, np.array([[0, 1, 1], [0, 1, 0]]), "2 zeros, 3 ones, 1 zero, by columns"),
        (
            [0, 1, 3],
            2,
            2,
            np.array([[1, 0], [0, 0]]),
            "the first pixel is 1: a run of 0 zeros first",
        ),
    ]
    for counts, h, w, want, why in hand:
        got = np.asarray(rle_decode(list(counts), h, w))
        if got.shape != (h, w) or not np.array_equal(got, want):
            raise Wrong(
                f"rle_decode({counts}, {h}, {w}): got {got.tolist()}, want {want.tolist()} ({why})"
            )
        encoded = [int(c) for c in rle_encode(want.astype(np.uint8))]
        if encoded != counts:
            raise Wrong(f"rle_encode({want.tolist()}): got {encoded}, want {counts} ({why})")
    for mask in _random_masks(np.random.default_rng(111)):
        h, w = mask.shape
        want = _uncompressed(mask)
        got = [int(c) for c in rle_encode(mask.copy())]
        coco = mask_utils.encode(np.asfortranarray(mask))
        assert (
            mask_utils.frPyObjects({"counts": want, "size": [h, w]}, h, w)["counts"]
            == coco["counts"]
        )
        if got != want:
            raise Wrong(
                f"rle_encode of a {h} x {w} mask with {int(mask.sum())} ones: got {got[:12]}"
                f"{' ...' if len(got) > 12 else ''}, want {want[:12]}"
                f"{' ...' if len(want) > 12 else ''} (runs in column-major order, zeros first)"
            )
        decoded = np.asarray(rle_decode(list(want), h, w))
        reference = mask_utils.decode(
            mask_utils.frPyObjects({"counts": want, "size": [h, w]}, h, w)
        )
        if decoded.shape != (h, w) or not np.array_equal(decoded, reference):
            raise Wrong(
                f"rle_decode of counts {want[:10]}... ({h} x {w}): got a mask of shape "
                f"{decoded.shape} with {int(np.sum(decoded))} ones, pycocotools decodes "
                f"{int(reference.sum())} ones; rows and columns swapped? (COCO runs go down "
                "the columns)"
            )
        assert int(sum(want[1::2])) == int(mask_utils.area(coco))


def _hand_boxes():
    """The lesson's boxes against the crowd box (100, 100, 300, 200) and their IoA."""
    crowd = np.array([[100.0, 100.0, 300.0, 200.0]])
    boxes = np.array(
        [
            [150, 120, 200, 180],  # inside
            [250, 120, 350, 180],  # half inside
            [240, 120, 340, 180],  # 60% inside
            [0, 0, 60, 60],  # outside
            [50, 50, 350, 250],  # holds the crowd box: 200 x 100 of 300 x 200
            [120, 150, 120, 190],  # no width: IoA 0
        ],
        dtype=np.float64,
    )
    return boxes, crowd, np.array([[1.0], [0.5], [0.6], [0.0], [1 / 3], [0.0]])


def _xywh(boxes):
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


def _random_case(rng, anchors_n=300, image=200.0):
    xy = rng.uniform(-20, image, (anchors_n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(4, 80, (anchors_n, 2))], axis=1)
    crowd_xy = rng.uniform(0, image * 0.6, (2, 2))
    crowd = np.concatenate([crowd_xy, crowd_xy + rng.uniform(30, 90, (2, 2))], axis=1)
    gt_xy = rng.uniform(0, image * 0.7, (3, 2))
    gt = np.concatenate([gt_xy, gt_xy + rng.uniform(10, 60, (3, 2))], axis=1)
    return boxes, crowd, gt


@exercise("11.3", "the crowd rule: intersection over the box's area", "crowd_ioa", "crowd_ignore")
def check_crowd(crowd_ioa, crowd_ignore):
    """crowd_ioa: the lesson's 5 boxes and a box of no width against one crowd box, by hand
    (1, 0.5, 0.6, 0, 1/3, 0), then 300 random boxes against 2 crowd boxes against
    pycocotools.mask.iou(boxes, crowd, iscrowd=[1, 1]) (1e-12). crowd_ignore: labels
    {1, 0, -1} of those boxes with the threshold 0.5 against minimask's crowd_covered; with
    0.7 (Detectron's) against the same rule on pycocotools' intersections over area; and
    the labels of rpn_targets without crowd boxes turned into those of rpn_targets with
    them, on random anchors, objects and crowds. Exact."""
    boxes, crowd, want = _hand_boxes()
    got = np.asarray(crowd_ioa(boxes.copy(), crowd.copy()), float)
    if got.shape != want.shape or not np.allclose(got, want, rtol=0, atol=1e-12):
        raise Wrong(
            f"crowd_ioa of the boxes {boxes.astype(int).tolist()} against the crowd box "
            f"{crowd[0].astype(int).tolist()}: got {np.round(got, 4).ravel().tolist()} (shape "
            f"{got.shape}), want {np.round(want, 4).ravel().tolist()} (shape {want.shape}): "
            "intersection / the box's own area, 0 for a box of no area"
        )
    rng = np.random.default_rng(112)
    for case in range(4):
        boxes, crowd, gt = _random_case(rng)
        reference = np.asarray(mask_utils.iou(_xywh(boxes), _xywh(crowd), [1] * len(crowd)))
        got = np.asarray(crowd_ioa(boxes.copy(), crowd.copy()), float)
        if got.shape != reference.shape or not np.allclose(got, reference, rtol=0, atol=1e-12):
            if got.shape != reference.shape:
                raise Wrong(
                    f"{len(boxes)} boxes, {len(crowd)} crowd boxes: got shape {got.shape}, "
                    f"want {reference.shape}"
                )
            i, j = np.unravel_index(np.argmax(np.abs(got - reference)), got.shape)
            raise Wrong(
                f"box {boxes[i].round(2).tolist()} against crowd box {crowd[j].round(2).tolist()}: "
                f"got {got[i, j]:.6f}, pycocotools' mask.iou with iscrowd gives "
                f"{reference[i, j]:.6f}"
            )
        labels = rng.choice(np.array([1, 0, 0, 0, -1]), len(boxes))
        for threshold in (CROWD_IGNORE_THRESHOLD, 0.7):
            if threshold == CROWD_IGNORE_THRESHOLD:
                covered = crowd_covered(boxes, crowd)
                source = "minimask's crowd_covered"
            else:
                covered = reference.max(axis=1) > threshold
                source = "pycocotools' intersections over area"
            want = np.where(covered & (labels == 0), -1, labels)
            got = np.asarray(crowd_ignore(labels.copy(), boxes.copy(), crowd.copy(), threshold))
            if got.shape != want.shape or not np.array_equal(got, want):
                if got.shape != want.shape:
                    raise Wrong(f"crowd_ignore of {len(labels)} labels: got shape {got.shape}")
                n = int(np.flatnonzero(got != want)[0])
                raise Wrong(
                    f"threshold {threshold}: box {boxes[n].round(2).tolist()} with label "
                    f"{labels[n]} and largest intersection over area {reference[n].max():.3f}: "
                    f"got {got[n]}, {source} gives {want[n]} (only a background box, label 0, "
                    "lying more than the threshold inside a crowd box becomes -1)"
                )
        if case < 2:  # the rule inside the RPN's targets
            matcher = Matcher(0.7, 0.3, allow_low_quality_matches=True)
            coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
            anchors, gt_t = (
                minimask.tensor(boxes.astype(np.float32)),
                minimask.tensor(gt.astype(np.float32)),
            )
            crowd32 = crowd.astype(np.float32)
            without = rpn_targets(anchors, gt_t, None, matcher, coder)[0].numpy()
            with_crowd = rpn_targets(anchors, gt_t, minimask.tensor(crowd32), matcher, coder)[
                0
            ].numpy()
            got = np.asarray(
                crowd_ignore(
                    without.copy(), boxes.astype(np.float32), crowd32, CROWD_IGNORE_THRESHOLD
                )
            )
            if not np.array_equal(got, with_crowd):
                n = int(np.flatnonzero(got != with_crowd)[0])
                raise Wrong(
                    f"rpn_targets' labels without crowd boxes, through your crowd_ignore: anchor "
                    f"{boxes[n].round(2).tolist()} gets {got[n]}, rpn_targets with the crowd "
                    f"boxes gives {with_crowd[n]}"
                )
