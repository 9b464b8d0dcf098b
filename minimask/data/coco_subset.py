"""A COCO instances file cut down to some categories (``minimask coco-subset``).

``coco_subset(data, names, max_images, min_area, seed)`` takes a COCO instances file (the
parsed JSON) and a list of category names and returns a new one, indexed with pycocotools,
that holds:

- **categories**: the chosen ones, in the file's order, with their original ids, names and
  other fields. A subset of person (id 1) and car (id 3) keeps ids 1 and 3; the loader
  numbers them as labels 1 and 2 (``minimask.data.coco``), and evaluation maps the labels
  back to the ids.
- **images**: those holding at least one *instance* of a chosen category: an annotation
  with ``iscrowd`` 0 and, with ``min_area``, an ``area`` of at least ``min_area``. Each
  image is listed once however many chosen categories it holds, in increasing id order.
  With ``max_images``, at most that many: the eligible ids sorted, then
  ``numpy.random.default_rng(seed).choice(ids, max_images, replace=False)``, sorted; the
  same file, names, options and seed always give the same subset.
- **annotations**: in the images kept, the chosen categories' instances and crowd regions
  (``iscrowd`` 1), image by image in the file's order. The other categories' annotations
  are left out, as are annotations of images the file does not list.
- every other top-level key (``info``, ``licenses``, ...) unchanged.

``min_area`` compares with COCO's ``area`` field (the object's pixel area in the original
image, the number COCOeval's small / medium / large ranges use) and drops every instance
with ``area < min_area``: an image whose only instances are smaller is not selected, and a
smaller instance in a selected image is removed too, so that training and evaluation never
see it (as torchvision's and detectron2's area filters do; such an object is then
unlabelled, background to the model). Crowd regions are kept whatever their area: they mark
where detections are neither right nor wrong, and dropping one would make its objects
background as well. An instance with ``area == min_area`` is kept.

``category_table(rows, n_images)`` formats the per-category counts (images, instances,
crowd) that ``coco_subset`` returns; ``write_coco_subset`` reads a file, writes the subset
atomically (``minimask.io.atomic``) and returns those counts.

Bad input raises a ``ValueError`` that names the file and the problem: JSON that is not a
COCO instances file, an id listed twice, an unknown category name (the message lists the
valid ones), an instance without a finite ``area`` when ``min_area`` is given, no image left
to keep, or a value JSON cannot hold (NaN). Nothing is written then.
"""

import contextlib
import io
import json
import os
from collections import Counter

import numpy as np
from pycocotools.coco import COCO

from minimask.io.atomic import atomic_write
from minimask.io.json_numbers import is_real_number

REQUIRED_KEYS = {
    "images": ("id",),
    "annotations": ("id", "image_id", "category_id"),
    "categories": ("id", "name"),
}


def parse_category_names(text):
    """``"person, car,traffic light"`` -> ``["person", "car", "traffic light"]``: split at
    commas, spaces around a name removed, repeats and empty names dropped."""
    names = []
    for name in (part.strip() for part in text.split(",")):
        if name and name not in names:
            names.append(name)
    return names


def _check_coco(data, source):
    """A ValueError naming ``source`` and the record if ``data`` is not a COCO instances file
    with unique image, annotation and category ids."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: not a COCO instances file (the JSON is not an object)")
    for key, fields in REQUIRED_KEYS.items():
        records = data.get(key)
        if not isinstance(records, list):
            raise ValueError(f"{source}: not a COCO instances file (no {key!r} list)")
        seen = set()
        for n, record in enumerate(records):
            missing = [f for f in fields if not isinstance(record, dict) or f not in record]
            if missing:
                raise ValueError(f"{source}: {key} #{n} is missing {missing[0]!r}")
            if record["id"] in seen:
                raise ValueError(f"{source}: {key} id {record['id']} is listed twice")
            seen.add(record["id"])


def _chosen_category_ids(data, names, source):
    """The ids of the categories called ``names``, in the file's order."""
    if not names:
        raise ValueError("no category names given")
    by_name = {}
    for category in data["categories"]:
        by_name.setdefault(str(category["name"]), []).append(category["id"])
    unknown = [name for name in names if name not in by_name]
    if unknown:
        valid = ", ".join(str(c["name"]) for c in data["categories"])
        raise ValueError(
            f"{source} has no category named {', '.join(map(repr, unknown))}; its categories "
            f"are: {valid}"
        )
    twice = [name for name in names if len(by_name[name]) > 1]
    if twice:
        raise ValueError(f"{source}: category {twice[0]!r} has several ids {by_name[twice[0]]}")
    chosen = {by_name[name][0] for name in names}
    return [c["id"] for c in data["categories"] if c["id"] in chosen]


def _check_options(max_images, min_area):
    if max_images is not None and (isinstance(max_images, bool) or max_images < 1):
        raise ValueError(f"max_images must be a positive number of images, got {max_images!r}")
    if not is_real_number(min_area, finite=True) or min_area < 0:
        raise ValueError(f"min_area must be a finite number >= 0, got {min_area!r}")


def _is_instance(annotation, min_area, source):
    """Whether ``annotation`` is a kept instance: not crowd and not smaller than min_area."""
    if annotation.get("iscrowd", 0):
        return False
    if min_area == 0:
        return True
    area = annotation.get("area")
    if not is_real_number(area, finite=True):
        raise ValueError(
            f"{source}: annotation id {annotation['id']} has no finite 'area' ({area!r}), "
            f"which min_area needs"
        )
    return area >= min_area


def _sample(image_ids, max_images, seed):
    """At most ``max_images`` of the sorted ``image_ids``, drawn with ``seed``, sorted."""
    if max_images is None or len(image_ids) <= max_images:
        return image_ids
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(image_ids, size=max_images, replace=False))


def coco_subset(data, names, max_images=None, min_area=0.0, seed=0, source="the file"):
    """``(subset, rows)``: the COCO dict of the module docstring and, per chosen category,
    ``{"id", "name", "images", "instances", "crowd"}`` counted in the subset. ``source``
    names the file in error messages."""
    _check_coco(data, source)
    _check_options(max_images, min_area)
    category_ids = _chosen_category_ids(data, names, source)
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # createIndex prints its progress
        coco.createIndex()

    annotations = coco.loadAnns(coco.getAnnIds(catIds=category_ids))
    annotations = [a for a in annotations if a["image_id"] in coco.imgs]
    instances = [a for a in annotations if _is_instance(a, min_area, source)]
    eligible = sorted({a["image_id"] for a in instances})
    if not eligible:
        area = f" with an area of at least {min_area}" if min_area else ""
        raise ValueError(
            f"{source}: no image holds an instance of {', '.join(names)}{area}; nothing to keep"
        )
    image_ids = _sample(eligible, max_images, seed)

    kept_instances = {a["id"] for a in instances}
    kept = [
        a
        for a in coco.loadAnns(coco.getAnnIds(imgIds=image_ids, catIds=category_ids))
        if a["id"] in kept_instances or a.get("iscrowd", 0)
    ]
    replaced = {
        "images": coco.loadImgs(image_ids),
        "annotations": kept,
        "categories": [c for c in data["categories"] if c["id"] in category_ids],
    }
    subset = {key: replaced.get(key, value) for key, value in data.items()}  # the file's order
    return subset, _count(subset, kept_instances)


def _count(subset, instance_ids):
    """Per category of ``subset``: the images holding one of its instances, its instances
    and its crowd regions."""
    instances, crowd, images = Counter(), Counter(), {}
    for annotation in subset["annotations"]:
        category = annotation["category_id"]
        if annotation["id"] in instance_ids:
            instances[category] += 1
            images.setdefault(category, set()).add(annotation["image_id"])
        else:
            crowd[category] += 1
    return [
        {
            "id": c["id"],
            "name": str(c["name"]),
            "images": len(images.get(c["id"], ())),
            "instances": instances[c["id"]],
            "crowd": crowd[c["id"]],
        }
        for c in subset["categories"]
    ]


def category_table(rows, n_images):
    """The counts of ``coco_subset`` as a text table, with a total row (``n_images``: the
    subset's images, each counted once however many categories it holds)."""
    width = max(len("category"), *(len(r["name"]) for r in rows))
    lines = [f"{'category':{width}s} {'id':>5s} {'images':>7s} {'instances':>10s} {'crowd':>6s}"]
    for r in rows:
        lines.append(
            f"{r['name']:{width}s} {r['id']:>5} {r['images']:>7d} {r['instances']:>10d} "
            f"{r['crowd']:>6d}"
        )
    total_instances = sum(r["instances"] for r in rows)
    total_crowd = sum(r["crowd"] for r in rows)
    lines.append(
        f"{'all':{width}s} {'':>5s} {n_images:>7d} {total_instances:>10d} {total_crowd:>6d}"
    )
    return "\n".join(lines)


def write_coco_subset(ann_file, out_file, names, max_images=None, min_area=0.0, seed=0):
    """Read ``ann_file``, write its subset (``coco_subset``) to ``out_file`` atomically;
    returns ``(rows, number of images)``. ``out_file`` may not be ``ann_file``."""
    ann_file, out_file = os.fspath(ann_file), os.fspath(out_file)
    if os.path.realpath(out_file) == os.path.realpath(ann_file):
        raise ValueError(f"{out_file}: the subset would overwrite the file it is read from")
    try:
        with open(ann_file, encoding="utf-8") as file:
            data = json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{ann_file}: not a JSON file ({error})") from None
    subset, rows = coco_subset(data, names, max_images, min_area, seed, source=ann_file)
    try:
        with atomic_write(out_file, "w", encoding="utf-8") as file:
            json.dump(subset, file, allow_nan=False)
    except ValueError as error:  # json's message for NaN and Infinity
        raise ValueError(
            f"{out_file} not written: {ann_file} holds a number JSON cannot store ({error})"
        ) from None
    return rows, len(subset["images"])
