"""Training on real COCO images: a small COCO set in COCO's own layout
(annotations/instances_{train,val}.json, images/{train,val}/), named by --coco or the
MINIMASK_COCO environment variable. The README's runs used coco-tiny: 80 train2017 and 80
val2017 images with their original annotations, one image per category per split. The
images are read in place.

    python benchmarks/coco_tiny.py overfit --out RUN [--coco DIR] [--images 8] [--iters 2000]
        trains on the first N train images (sorted by id) and evaluates on the same images:
        can the model memorise real data? (The README's run: 2000 steps, segm AP50 >= 0.7
        within 20 minutes on 2 cores.)
    python benchmarks/coco_tiny.py full --out RUN [--iters 2000] [--min-size S] [--lr 0.02]
        trains on all train images and evaluates on the held-out val images. Trained
        from scratch on 80 images, the model is expected to generalise poorly; the number is
        reported as it comes.

The subset's annotation file is written into RUN (a filtered copy of the JSON, all
categories kept so labels keep their meaning); the images are read from the COCO folder.
Prints the COCOeval tables, the wall time and the peak memory.
"""

import argparse
import dataclasses
import json
import os
import pathlib
import time

from minimask.data.coco import CocoDetection
from minimask.engine.checkpoint import load_model
from minimask.engine.demo import peak_memory_gb
from minimask.engine.evaluator import evaluate
from minimask.engine.trainer import train
from minimask.models import MaskRCNNConfig


def subset_annotations(ann_file, count, out_file):
    """A copy of ``ann_file`` with only its first ``count`` images (by id) and their
    annotations; every category stays listed."""
    with open(ann_file, encoding="utf-8") as f:
        data = json.load(f)
    images = sorted(data["images"], key=lambda im: im["id"])[:count]
    keep = {im["id"] for im in images}
    data["images"] = images
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in keep]
    with open(out_file, "w", encoding="utf-8") as f:
        json.dump(data, f)
    return out_file


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("overfit", "full"))
    parser.add_argument("--out", required=True)
    parser.add_argument("--images", type=int, default=8, help="overfit: training images (8)")
    parser.add_argument("--iters", type=int, default=2000)
    parser.add_argument("--min-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument(
        "--coco", default=os.environ.get("MINIMASK_COCO"), help="COCO folder ($MINIMASK_COCO)"
    )
    args = parser.parse_args()
    if not args.coco or not os.path.isdir(args.coco):
        parser.error(f"no COCO folder: give --coco DIR or set MINIMASK_COCO (got {args.coco!r})")
    coco = pathlib.Path(args.coco)
    began = time.perf_counter()
    os.makedirs(args.out, exist_ok=True)
    train_images = coco / "images" / "train"
    train_ann = coco / "annotations" / "instances_train.json"
    if args.mode == "overfit":
        train_ann = subset_annotations(
            train_ann, args.images, os.path.join(args.out, "instances_subset.json")
        )
        eval_images, eval_ann = train_images, train_ann
    else:
        eval_images = coco / "images" / "val"
        eval_ann = coco / "annotations" / "instances_val.json"
    train_set = CocoDetection(train_images, train_ann)
    print(train_set.summary())
    cfg = dataclasses.replace(
        MaskRCNNConfig.small(len(train_set.category_ids)).scaled_to(args.min_size),
        max_iters=args.iters,
        base_lr=args.lr,
    )
    trained = train(cfg, train_set, args.out)
    model, meta = load_model(trained["checkpoint"])
    metrics = evaluate(
        model, CocoDetection(eval_images, eval_ann), meta["category_ids"], args.out + "/eval"
    )
    print(
        f"\n{args.mode}: {args.iters} steps at min size {args.min_size}, "
        f"{(time.perf_counter() - began) / 60:.1f} min, peak memory {peak_memory_gb():.2f} GB"
    )
    print(json.dumps(metrics, indent=1))


if __name__ == "__main__":
    main()
