"""Tests of ``minimask.engine.coco_evaluation``: model outputs -> COCO results -> pycocotools
metrics. References: pycocotools itself (``COCO.loadRes``, ``COCOeval``, ``mask.decode``)
on real COCO data (the val split of the folder MINIMASK_COCO names, see coco_data.py) and
small hand-made cases whose answer is known."""

import contextlib
import io
import json
import os
import warnings

import numpy as np
import pytest
from coco_data import annotation_file, needs_coco
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from minimask.autograd.factories import tensor
from minimask.data import CocoDetection
from minimask.data.coco import PYCOCOTOOLS_NUMPY2_WARNING
from minimask.engine.coco_evaluation import (
    METRIC_NAMES,
    evaluate_coco,
    predictions_to_coco_results,
    write_metrics_json,
    write_results_json,
)


def _quiet_coco(dataset: dict) -> COCO:
    """A pycocotools COCO built from a dict without its progress prints."""
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _gt_predictions(coco: COCO, shift: float = 0.0):
    """("Perfect") model outputs made from the ground truth itself: per image, every
    non-crowd annotation as a detection with score 1.0, its box (xyxy, moved right by
    ``shift`` times its width), its label (sorted COCO ids -> 1..K) and its mask decoded by
    pycocotools ``annToMask`` as a float [D, 1, H, W] "probability"."""
    category_ids = sorted(coco.getCatIds())
    label_of = {cid: k + 1 for k, cid in enumerate(category_ids)}
    for image_id in sorted(coco.getImgIds()):
        info = coco.imgs[image_id]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id, iscrowd=False))
        boxes = np.array([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4)
        boxes[:, 0] += shift * boxes[:, 2]
        boxes[:, 2:] += boxes[:, :2]
        masks = np.zeros((len(anns), 1, info["height"], info["width"]), dtype=np.float32)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", PYCOCOTOOLS_NUMPY2_WARNING, DeprecationWarning)
            for n, ann in enumerate(anns):
                masks[n, 0] = coco.annToMask(ann)
        prediction = {
            "boxes": tensor(boxes.astype(np.float32)),
            "labels": tensor(np.array([label_of[a["category_id"]] for a in anns], np.int64)),
            "scores": tensor(np.ones(len(anns), dtype=np.float32)),
            "masks": tensor(masks),
        }
        yield image_id, prediction, category_ids


def _results(coco: COCO, shift: float = 0.0) -> list[dict]:
    results = []
    for image_id, prediction, category_ids in _gt_predictions(coco, shift):
        results += predictions_to_coco_results(prediction, image_id, category_ids)
    return results


@pytest.fixture(scope="module")
def coco_val():
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(annotation_file("val")))


# ---------------------------------------------------------------------------- real COCO data
@needs_coco
def test_perfect_predictions_give_ap_one(coco_val, tmp_path):
    """Reference: pycocotools. The ground truth of the val split, given back as predictions
    (crowd regions left out, as a model never predicts them), goes through the results JSON
    (``COCO.loadRes`` reads the file) and scores AP == 1.0 for bbox and segm on all six
    numbers. segm is exactly 1 because each encoded mask is the very RLE pycocotools makes
    of the gt annotation (annToMask -> encode), IoU = 1; bbox boxes went through float32,
    IoU just under 1, still above every threshold (0.95 is the highest)."""
    results = _results(coco_val)
    assert len(results) == len(coco_val.getAnnIds(iscrowd=False))
    path = tmp_path / "results.json"
    write_results_json(results, path)
    loaded = json.loads(path.read_text())
    assert loaded == results  # plain JSON types throughout
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_val.loadRes(str(path))
    assert len(coco_dt.getAnnIds()) == len(results)

    metrics = evaluate_coco(coco_val, loaded, verbose=False)
    # 1 up to one rounding (pycocotools' precision is tp / (tp + fp + eps)); it is exactly
    # 1.0 here with pycocotools 2.0.11.
    one = pytest.approx(1.0, rel=0, abs=1e-12)
    assert metrics == {t: {name: one for name in METRIC_NAMES} for t in ("bbox", "segm")}
    assert all(type(v) is float for m in metrics.values() for v in m.values())


@needs_coco
def test_shifted_boxes_give_low_bbox_ap(coco_val):
    """Reference: IoU arithmetic. A box moved right by half its width overlaps its own
    object by w/2 * h over a union of 1.5 w h: IoU = 1/3 < 0.5, never a match. It is not
    exactly 0 on real data: in crowded images (people, ...) a moved box can land on a
    neighbour of the same class (pycocotools gives AP50 about 0.002 here); the exact 0 is
    checked on isolated objects in ``test_synthetic_perfect_and_partial``. The masks are
    left in place, so segm stays 1.0: the two types are scored independently (segm ignores
    the result's bbox)."""
    metrics = evaluate_coco(coco_val, _results(coco_val, shift=0.5), verbose=False)
    assert metrics["bbox"]["AP50"] < 0.01
    assert metrics["bbox"]["AP"] < 0.01
    assert metrics["segm"]["AP"] == 1.0


# ---------------------------------------------------------------------------- hand-made
def _synthetic_gt(category_ids=(7, 90)) -> COCO:
    """Two 64x64 images, one small (20x20) square object each, categories listed out of
    order with non-contiguous ids."""
    images = [{"id": i, "file_name": f"{i}.png", "height": 64, "width": 64} for i in (1, 2)]
    anns = []
    for n, (image_id, cid, x) in enumerate([(1, category_ids[0], 5), (2, category_ids[1], 30)]):
        poly = [x, 10, x + 20, 10, x + 20, 30, x, 30]
        anns.append(
            {
                "id": n + 1,
                "image_id": image_id,
                "category_id": cid,
                "bbox": [x, 10, 20, 20],
                "area": 400.0,
                "iscrowd": 0,
                "segmentation": [poly],
            }
        )
    categories = [{"id": cid, "name": f"c{cid}"} for cid in reversed(category_ids)]
    return _quiet_coco({"images": images, "annotations": anns, "categories": categories})


def test_rle_of_hand_made_mask_decodes_back():
    """Reference: pycocotools ``mask.decode``. A 4x4 probability mask thresholded at 0.5
    (>=: the 0.5 pixel is in, 0.49 is out) encodes to an RLE with a str ``counts`` that
    decodes back to the 0/1 mask; bbox becomes [x, y, w, h]."""
    probs = np.array(
        [[0.0, 0.9, 0.0, 0.0], [0.0, 0.5, 1.0, 0.0], [0.0, 0.49, 0.7, 0.0], [0.0, 0.0, 0.0, 0.2]],
        dtype=np.float32,
    )
    expected = (probs >= 0.5).astype(np.uint8)
    prediction = {
        "boxes": tensor(np.array([[1.0, 0.5, 3.0, 3.0]], np.float32)),
        "labels": tensor(np.array([2], np.int64)),
        "scores": tensor(np.array([0.75], np.float32)),
        "masks": tensor(probs[None, None]),
    }
    (result,) = predictions_to_coco_results(prediction, 42, [5, 9])
    assert result["image_id"] == 42 and result["category_id"] == 9
    assert result["bbox"] == [1.0, 0.5, 2.0, 2.5]
    assert result["score"] == 0.75
    rle = result["segmentation"]
    assert isinstance(rle["counts"], str) and rle["size"] == [4, 4]
    json.dumps(result)  # serialisable as is
    (strict,) = predictions_to_coco_results(prediction, 42, [5, 9], mask_threshold=0.8)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", PYCOCOTOOLS_NUMPY2_WARNING, DeprecationWarning)
        np.testing.assert_array_equal(mask_utils.decode(rle), expected)
        # a stricter threshold drops the 0.5 and 0.7 pixels
        np.testing.assert_array_equal(mask_utils.decode(strict["segmentation"]), probs >= 0.8)


def test_category_ids_non_contiguous(tmp_path):
    """Reference: the JSON's own ids. Categories listed as 90, 7, 3 (out of order, with
    gaps) are labels 1, 2, 3 = ids 3, 7, 90 in ``CocoDetection.category_ids``; labels map
    back through ``category_ids[label - 1]``; 0 (background) and K + 1 are refused."""
    ann_file = tmp_path / "instances.json"
    ann_file.write_text(
        json.dumps(
            {
                "images": [],
                "annotations": [],
                "categories": [{"id": 90, "name": "a"}, {"id": 7, "name": "b"}, {"id": 3}],
            }
        )
    )
    ds = CocoDetection(tmp_path, ann_file)
    assert ds.category_ids == [3, 7, 90]
    prediction = {
        "boxes": np.tile(np.array([[0.0, 0.0, 2.0, 2.0]], np.float32), (3, 1)),
        "labels": np.array([3, 1, 2], np.int64),
        "scores": np.array([0.9, 0.8, 0.7], np.float32),
    }
    results = predictions_to_coco_results(prediction, 1, ds.category_ids)
    assert [r["category_id"] for r in results] == [90, 3, 7]
    assert all("segmentation" not in r for r in results)  # no masks given
    for label in (0, 4):
        prediction["labels"] = np.array([1, label, 2], np.int64)
        with pytest.raises(ValueError, match="labels must be in 1..3"):
            predictions_to_coco_results(prediction, 1, ds.category_ids)


def test_synthetic_perfect_shifted_and_partial():
    """Reference: AP by hand. Non-contiguous ids 7 and 90: perfect predictions score 1
    (APs, since the 400-pixel objects are small; APm/APl -1, no gt of that size). "1" up to
    one rounding: pycocotools' precision is tp / (tp + fp + eps), 1 - 2e-16 for one true
    positive. Boxes moved by half their width (IoU 1/3, no other object near): bbox AP50 and
    AP exactly 0. With only image 1 predicted, scoring all images gives AP 0.5 (category 90
    found nothing, mean of 1 and 0); ``image_ids=[1]`` scores only the image that was run:
    1 (category 90 has no gt there and drops out of the mean)."""
    one = pytest.approx(1.0, rel=0, abs=1e-12)
    gt = _synthetic_gt()
    results = _results(gt)
    assert [r["category_id"] for r in results] == [7, 90]
    metrics = evaluate_coco(gt, results, verbose=False)
    for iou_type in ("bbox", "segm"):
        assert metrics[iou_type] == {
            "AP": one,
            "AP50": one,
            "AP75": one,
            "APs": one,
            "APm": -1.0,
            "APl": -1.0,
        }
    shifted = evaluate_coco(gt, _results(gt, shift=0.5), "bbox", verbose=False)["bbox"]
    assert shifted["AP50"] == 0.0 and shifted["AP"] == 0.0
    only_first = [r for r in results if r["image_id"] == 1]
    half = evaluate_coco(gt, only_first, ("bbox",), verbose=False)["bbox"]["AP"]
    assert half == pytest.approx(0.5, rel=0, abs=1e-12)
    subset = evaluate_coco(gt, only_first, "bbox", verbose=False, image_ids=[1])
    assert subset["bbox"]["AP"] == one


def test_empty_prediction_gives_no_results():
    """Reference: the contract. D = 0 (shapes [0, 4], [0], [0], [0, 1, H, W]) -> []."""
    prediction = {
        "boxes": tensor(np.zeros((0, 4), np.float32)),
        "labels": tensor(np.zeros((0,), np.int64)),
        "scores": tensor(np.zeros((0,), np.float32)),
        "masks": tensor(np.zeros((0, 1, 8, 8), np.float32)),
    }
    assert predictions_to_coco_results(prediction, 3, [1, 2]) == []


def test_empty_results_are_scored_by_pycocotools():
    """Reference: pycocotools' COCOeval on an empty detection set. Nothing detected: 0.0
    where there is gt (AP, AP50, AP75, APs), -1.0 where the area range has none (APm, APl).
    With no gt at all every number is -1.0 (nothing to find, not "found nothing")."""
    gt = _synthetic_gt()
    metrics = evaluate_coco(gt, [], verbose=False)
    for iou_type in ("bbox", "segm"):
        assert metrics[iou_type] == {
            "AP": 0.0,
            "AP50": 0.0,
            "AP75": 0.0,
            "APs": 0.0,
            "APm": -1.0,
            "APl": -1.0,
        }
    no_gt = _quiet_coco({**gt.dataset, "annotations": []})
    metrics = evaluate_coco(no_gt, [], verbose=False)
    assert metrics == {t: {name: -1.0 for name in METRIC_NAMES} for t in ("bbox", "segm")}


def test_verbose_prints_the_summary_and_no_pycocotools_warning(capsys):
    """Reference: COCOeval.summarize's table. verbose=True prints its lines, verbose=False
    prints nothing; pycocotools' NumPy 2 DeprecationWarning does not escape either call."""
    gt = _synthetic_gt()
    results = _results(gt)
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        evaluate_coco(gt, results, verbose=False)
        assert capsys.readouterr().out == ""
        evaluate_coco(gt, results, ("segm",), verbose=True)
        out = capsys.readouterr().out
    assert out.count("Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all") == 1
    assert "Average Recall" in out
    assert not [w for w in caught if PYCOCOTOOLS_NUMPY2_WARNING in str(w.message)]


def test_results_are_not_changed_and_bad_input_is_refused():
    """Reference: the contract. loadRes writes id/area/iscrowd into its dicts; ours are
    copied first. Results for an image the gt lacks, and segm without masks, raise."""
    gt = _synthetic_gt()
    results = _results(gt)
    before = json.dumps(results)
    evaluate_coco(gt, results, verbose=False)
    assert json.dumps(results) == before
    with pytest.raises(ValueError, match="not in the ground truth"):
        evaluate_coco(gt, [{**results[0], "image_id": 99}], verbose=False)
    no_masks = [{k: v for k, v in r.items() if k != "segmentation"} for r in results]
    with pytest.raises(ValueError, match="'segmentation'"):
        evaluate_coco(gt, no_masks, verbose=False)
    bbox_only = evaluate_coco(gt, no_masks, ("bbox",), verbose=False)["bbox"]["AP"]
    assert bbox_only == pytest.approx(1.0, rel=0, abs=1e-12)


def test_metrics_json_keys_and_atomic_write(tmp_path):
    """Reference: the file format. metrics.json holds exactly bbox and segm, each with
    exactly AP, AP50, AP75, APs, APm, APl as numbers; a failed write (NaN is not JSON)
    leaves the previous file whole and no temporary file behind."""
    gt = _synthetic_gt()
    path = tmp_path / "metrics.json"
    write_metrics_json(evaluate_coco(gt, _results(gt), verbose=False), path)
    loaded = json.loads(path.read_text())
    assert set(loaded) == {"bbox", "segm"}
    for values in loaded.values():
        assert list(values) == ["AP", "AP50", "AP75", "APs", "APm", "APl"]
        assert all(isinstance(v, float) for v in values.values())
    before = path.read_text()
    with pytest.raises(ValueError):
        write_metrics_json({"bbox": {"AP": float("nan")}}, path)
    assert path.read_text() == before
    assert os.listdir(tmp_path) == ["metrics.json"]
