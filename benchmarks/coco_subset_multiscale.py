"""AP per category on a COCO subset, with and without multi-scale training.

    python benchmarks/coco_subset_multiscale.py --out DIR [--coco DIR] [--categories 3]
        [--iters 1000] [--min-size 256] [--sizes 192,224,256,288] [--lr 0.01]

Takes the ``--categories`` most frequent categories of the training split (non-crowd
instances), cuts both splits of the COCO folder (``--coco`` or MINIMASK_COCO, COCO's layout)
down to them with ``minimask coco-subset``, trains the small preset at ``--min-size`` twice
through the CLI, once plainly and once with ``--min-size-train SIZES``, evaluates each on the
val subset and prints bbox and segm AP per category and overall (pycocotools, one
COCOeval per category from each run's results.json) as a Markdown table.
"""

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import time
from collections import Counter

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def _most_frequent(ann_file, count):
    with open(ann_file, encoding="utf-8") as f:
        data = json.load(f)
    names = {c["id"]: c["name"] for c in data["categories"]}
    counts = Counter(a["category_id"] for a in data["annotations"] if not a.get("iscrowd"))
    return [names[c] for c, _ in counts.most_common(count)]


def _minimask(*arguments):
    subprocess.run([sys.executable, "-m", "minimask", *arguments], check=True)


def _ap(ground_truth, results_file, iou_type, category_id=None):
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(ground_truth)
        with open(results_file, encoding="utf-8") as f:
            results = json.load(f)
        if iou_type == "segm":
            results = [{k: v for k, v in r.items() if k != "bbox"} for r in results]
        if not results:
            return 0.0
        evaluation = COCOeval(coco, coco.loadRes(results), iou_type)
        if category_id is not None:
            evaluation.params.catIds = [category_id]
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return max(0.0, float(evaluation.stats[0]))  # -1: no ground truth in range


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--coco", default=os.environ.get("MINIMASK_COCO"))
    parser.add_argument("--categories", type=int, default=3)
    parser.add_argument("--iters", type=int, default=1000)
    parser.add_argument("--min-size", type=int, default=256)
    parser.add_argument("--sizes", default="192,224,256,288")
    parser.add_argument("--lr", type=float, default=0.01)
    args = parser.parse_args()
    if not args.coco:
        raise SystemExit("give --coco DIR or set MINIMASK_COCO")
    os.makedirs(args.out, exist_ok=True)
    annotations = os.path.join(args.coco, "annotations")
    names = _most_frequent(os.path.join(annotations, "instances_train.json"), args.categories)
    subsets = {}
    for split in ("train", "val"):
        subsets[split] = os.path.join(args.out, f"{split}.json")
        _minimask(
            "coco-subset", "--ann", os.path.join(annotations, f"instances_{split}.json"),
            "--categories", ",".join(names), "--out", subsets[split],
        )  # fmt: skip
    runs = {"single scale": [], f"multi-scale {args.sizes}": ["--min-size-train", args.sizes]}
    rows, seconds = {}, {}
    for name, extra in runs.items():
        run = os.path.join(args.out, name.split()[0].replace("-", "_"))
        began = time.perf_counter()
        _minimask(
            "train", "--train-images", os.path.join(args.coco, "images", "train"),
            "--train-ann", subsets["train"], "--out", run, "--preset", "small",
            "--min-size", str(args.min_size), "--iters", str(args.iters), "--lr", str(args.lr),
            "--quiet", *extra,
        )  # fmt: skip
        seconds[name] = time.perf_counter() - began
        evaluation = os.path.join(run, "eval")
        _minimask(
            "evaluate", "--checkpoint", os.path.join(run, "checkpoint.npz"), "--images",
            os.path.join(args.coco, "images", "val"), "--ann", subsets["val"], "--out",
            evaluation,
        )  # fmt: skip
        results = os.path.join(evaluation, "results.json")
        coco = COCO(subsets["val"])
        per_category = {
            c["name"]: (_ap(subsets["val"], results, "bbox", c["id"]),
                        _ap(subsets["val"], results, "segm", c["id"]))
            for c in coco.loadCats(coco.getCatIds())
        }  # fmt: skip
        per_category["all"] = tuple(_ap(subsets["val"], results, t) for t in ("bbox", "segm"))
        rows[name] = per_category
    print(f"\nsmall preset, {args.iters} steps at {args.min_size} px, lr {args.lr}")
    print("\n| run | train time | " + " | ".join(f"{c} bbox / segm AP" for c in rows[name]) + " |")
    print("|---|---:|" + "---:|" * len(rows[name]))
    for name, per_category in rows.items():
        cells = " | ".join(f"{b:.3f} / {s:.3f}" for b, s in per_category.values())
        print(f"| {name} | {seconds[name] / 60:.1f} min | {cells} |")


if __name__ == "__main__":
    main()
