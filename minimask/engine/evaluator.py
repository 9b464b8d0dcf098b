"""Evaluation on a COCO-format dataset: run the model on every image, turn the detections
into COCO results (RLE masks), score them with pycocotools COCOeval (bbox and segm).

Writes, when ``out_dir`` is given: ``results.json`` (accepted by ``COCO.loadRes``) and
``metrics.json`` = {"bbox": {"AP", "AP50", "AP75", "APs", "APm", "APl"}, "segm": {...}}.
Images the dataset cannot load are skipped (it warns) and left out of the scoring.
"""

import os

from tqdm import tqdm

from minimask.engine.coco_evaluation import (
    evaluate_coco,
    predictions_to_coco_results,
    write_metrics_json,
    write_results_json,
)

RESULTS_NAME = "results.json"
METRICS_NAME = "metrics.json"


def predict_dataset(model, dataset, category_ids, device="cpu", progress=True):
    """(COCO result dicts, evaluated image ids) for every loadable image of ``dataset``."""
    model.eval()
    results, image_ids = [], []
    for index in tqdm(range(len(dataset)), desc="evaluate", disable=not progress):
        example = dataset[index]
        if example is None:
            continue
        image, target = example
        prediction = model([image.to(device)])[0]
        results += predictions_to_coco_results(
            prediction, target["image_id"], category_ids, model.cfg.mask_threshold
        )
        image_ids.append(target["image_id"])
    return results, image_ids


def evaluate(model, dataset, category_ids, out_dir=None, device="cpu", progress=True, verbose=True):
    """Metrics dict (see the module docstring); prints the COCOeval tables when verbose."""
    results, image_ids = predict_dataset(model, dataset, category_ids, device, progress)
    metrics = evaluate_coco(dataset.coco, results, verbose=verbose, image_ids=image_ids)
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        write_results_json(results, os.path.join(out_dir, RESULTS_NAME))
        write_metrics_json(metrics, os.path.join(out_dir, METRICS_NAME))
    return metrics
