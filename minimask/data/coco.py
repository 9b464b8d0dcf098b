"""A COCO instance-segmentation dataset: ``CocoDetection(image_dir, ann_file)``.

It reads a COCO ``instances_*.json`` file (with pycocotools) and the images it names (with
Pillow) and gives, like ``torchvision.datasets.CocoDetection`` plus the conversions that
Mask R-CNN needs, one ``(image, target)`` pair per image:

- ``image``: float32 Tensor ``[3, H, W]`` in ``[0, 1]``, RGB. Pillow converts every mode to
  RGB first: grayscale ``L`` is copied to the three channels, ``RGBA`` drops its alpha
  channel (no compositing), palette ``P`` is looked up (through ``RGBA`` when it has a
  transparent colour). Pixel values are divided by 255. EXIF orientation is *not* applied,
  because COCO's annotations are made on the stored pixels.
- ``target["boxes"]``: float32 ``[N, 4]`` ``(x1, y1, x2, y2)`` in pixels, from COCO's
  ``(x, y, w, h)`` as ``x2 = x + w``, ``y2 = y + h`` (no "+1": a box's width is x2 - x1, as
  in torchvision and detectron2). Boxes are not clipped to the image.
- ``target["labels"]``: int64 ``[N]`` in ``1..K`` (0 is background). COCO category ids need
  not be contiguous (COCO's 80 classes use ids 1..90) and may include 0, so the ids listed in
  the JSON are sorted and numbered: ``category_ids[k - 1]`` is label ``k``. Every listed
  category gets a label, also one with no annotations, so the mapping depends on the JSON's
  category list only.
- ``target["masks"]``: uint8 ``[N, H, W]`` of 0/1, decoded by pycocotools ``annToMask`` from a
  polygon list, compressed RLE (``counts`` a string) or uncompressed RLE (``counts`` a list).
- ``target["crowd_boxes"]``: float32 ``[M, 4]`` boxes of the ``iscrowd=1`` annotations. A
  crowd region marks many objects at once; it is not a training target, so it is kept apart
  (the detector ignores proposals that fall in it instead of calling them background).
- ``target["image_id"]``: the COCO image id (int).

An image with no (non-crowd) objects is a valid example: ``N = 0`` with shapes ``[0, 4]``,
``[0]`` and ``[0, H, W]``.

Bad input
---------
- A JSON file that is not a COCO instances file (missing ``images``/``annotations``/
  ``categories``, an image without ``id``/``file_name``/``height``/``width``, an annotation
  without ``id``/``bbox``/``category_id``/``image_id``, a category without ``id``) raises a
  ``ValueError`` naming the file and the key at construction, never mid-epoch.
- An annotation that cannot be used (malformed or empty polygon, bad RLE, a box of zero size
  or wholly outside its image, an unknown category or image id) is skipped at construction
  and its id recorded in ``ds.skipped[reason]``; ``ds.summary()`` prints the counts.
- An image file that is missing, unreadable or of another size than its JSON record is found
  only when it is read: ``ds[i]`` then warns (``warnings.warn`` naming the file and the image
  id), records it in ``ds.bad_images`` and returns ``None``. **Contract: the caller skips a
  ``None`` example** (the training loop drops it from the batch). ``ds.valid_indices()``
  pre-filters the images whose file is missing or has no readable header.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from collections import defaultdict

import numpy as np
from PIL import Image
from pycocotools.coco import COCO

from minimask.autograd.factories import tensor
from minimask.io.images import IMAGE_ERRORS, load_rgb, pixels_to_chw
from minimask.io.json_numbers import is_real_number

REQUIRED_TOP_KEYS = ("images", "annotations", "categories")
REQUIRED_IMAGE_KEYS = ("id", "file_name", "height", "width")
REQUIRED_ANNOTATION_KEYS = ("bbox", "category_id", "image_id")
PYCOCOTOOLS_NUMPY2_WARNING = "__array__ implementation doesn't accept a copy keyword"


def _polygon_area(xy: list) -> float:
    """Shoelace area of one polygon ``[x0, y0, x1, y1, ...]``."""
    x = np.asarray(xy[0::2], dtype=np.float64)
    y = np.asarray(xy[1::2], dtype=np.float64)
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


class CocoDetection:
    """COCO instances as ``(image, target)`` pairs for Mask R-CNN (see the module docstring).

    ``image_dir``: folder the images' ``file_name`` is relative to (an absolute ``file_name``
    is used as is). ``ann_file``: the ``instances_*.json`` file.

    Attributes: ``coco`` (the pycocotools ``COCO`` object), ``ids`` (image ids in sorted
    order, ``ds[i]`` is image ``ids[i]``), ``category_ids``, ``category_id_to_label``,
    ``label_to_category_id``, ``class_names`` (``class_names[0] == "__background__"``),
    ``num_objects`` / ``num_crowd`` (annotations kept), ``skipped`` (reason -> annotation ids),
    ``bad_images`` (image id -> reason, filled as images fail to load).
    """

    def __init__(self, image_dir, ann_file):
        self.image_dir = os.fspath(image_dir)
        self.ann_file = os.fspath(ann_file)
        try:
            with open(self.ann_file, encoding="utf-8") as f:
                data = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{self.ann_file}: not a COCO JSON file ({error})") from None
        if not isinstance(data, dict):
            raise ValueError(
                f"{self.ann_file}: not a COCO instances file (the JSON is a "
                f"{type(data).__name__}, not an object with images, annotations, categories)"
            )
        self._check_keys(data)

        # pycocotools' COCO(path) prints progress and re-reads the file; build it from the
        # dict we already checked instead (createIndex also prints, hence the redirect).
        self.coco = COCO()
        self.coco.dataset = data
        with contextlib.redirect_stdout(io.StringIO()):
            self.coco.createIndex()

        # Category mapping: sorted COCO ids -> labels 1..K, label 0 is the background.
        names = {}
        for cat in data["categories"]:
            if cat["id"] in names:
                raise ValueError(f"{self.ann_file}: category id {cat['id']} is listed twice")
            names[cat["id"]] = str(cat.get("name", cat["id"]))
        self.category_ids = sorted(names)
        self.category_id_to_label = {cid: k + 1 for k, cid in enumerate(self.category_ids)}
        self.label_to_category_id = {k: cid for cid, k in self.category_id_to_label.items()}
        self.class_names = ["__background__"] + [names[cid] for cid in self.category_ids]

        self.images = {img["id"]: img for img in data["images"]}
        self.ids = sorted(self.images)
        self.skipped = defaultdict(list)
        self.bad_images = {}
        self._objects = defaultdict(list)  # image id -> kept non-crowd annotations
        self._crowd = defaultdict(list)  # image id -> kept crowd annotations
        for ann in data["annotations"]:
            reason = self._problem(ann)
            if reason is not None:
                self.skipped[reason].append(ann["id"])
            elif ann.get("iscrowd", 0):
                self._crowd[ann["image_id"]].append(ann)
            else:
                self._objects[ann["image_id"]].append(ann)
        self.skipped = dict(self.skipped)
        self.num_objects = sum(len(v) for v in self._objects.values())
        self.num_crowd = sum(len(v) for v in self._crowd.values())

    # ----------------------------------------------------------------- checking the JSON
    def _check_keys(self, data) -> None:
        """Raise a ValueError naming the file and the key if a required key is missing."""
        if not isinstance(data, dict):
            raise ValueError(f"{self.ann_file}: expected a JSON object, got {type(data).__name__}")
        for key in REQUIRED_TOP_KEYS:
            if key not in data:
                raise ValueError(f"{self.ann_file}: missing required key {key!r}")
            if not isinstance(data[key], list):
                raise ValueError(f"{self.ann_file}: {key!r} must be a list")
        for n, img in enumerate(data["images"]):
            for key in REQUIRED_IMAGE_KEYS:
                if not isinstance(img, dict) or key not in img:
                    where = img.get("id", f"#{n}") if isinstance(img, dict) else f"#{n}"
                    raise ValueError(f"{self.ann_file}: image {where} is missing key {key!r}")
        for n, cat in enumerate(data["categories"]):
            if not isinstance(cat, dict) or "id" not in cat:
                raise ValueError(f"{self.ann_file}: category #{n} is missing key 'id'")
        for n, ann in enumerate(data["annotations"]):
            if not isinstance(ann, dict) or "id" not in ann:
                raise ValueError(f"{self.ann_file}: annotation #{n} is missing key 'id'")
            for key in REQUIRED_ANNOTATION_KEYS:
                if key not in ann:
                    raise ValueError(
                        f"{self.ann_file}: annotation id {ann['id']} is missing key {key!r}"
                    )

    def _problem(self, ann) -> str | None:
        """Why ``ann`` cannot be used (a key of ``skipped``), or None if it is fine."""
        img = self.images.get(ann["image_id"])
        if img is None:
            return "unknown_image"
        if ann["category_id"] not in self.category_id_to_label:
            return "unknown_category"
        box = ann["bbox"]
        if not isinstance(box, (list, tuple)) or len(box) != 4:
            return "bad_box"
        if not all(is_real_number(v, finite=True) for v in box):
            return "bad_box"
        x, y, w, h = box
        if w <= 0 or h <= 0:
            return "empty_box"
        if x >= img["width"] or y >= img["height"] or x + w <= 0 or y + h <= 0:
            return "box_outside_image"
        if ann.get("iscrowd", 0):
            return None  # only its box is used
        if "segmentation" not in ann:
            return "missing_segmentation"
        return self._segmentation_problem(ann["segmentation"], img)

    @staticmethod
    def _segmentation_problem(segm, img) -> str | None:
        if isinstance(segm, list):  # polygons: [[x0, y0, x1, y1, ...], ...]
            if not segm:
                return "empty_polygon"
            for poly in segm:
                # pycocotools reads a 4-number "polygon" as a box and crashes on fewer.
                if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2:
                    return "bad_polygon"
                if not all(is_real_number(v, finite=True) for v in poly):
                    return "bad_polygon"
            if sum(_polygon_area(poly) for poly in segm) == 0:
                return "empty_polygon"
            return None
        if isinstance(segm, dict):  # RLE: {"size": [h, w], "counts": str or list}
            size, counts = segm.get("size"), segm.get("counts")
            if size is None or counts is None or list(size) != [img["height"], img["width"]]:
                return "bad_rle"
            if isinstance(counts, list):  # uncompressed: run lengths covering every pixel
                if not all(isinstance(c, int) and c >= 0 for c in counts):
                    return "bad_rle"
                if sum(counts) != img["height"] * img["width"]:
                    return "bad_rle"
            elif not isinstance(counts, (str, bytes)):
                return "bad_rle"
            return None
        return "bad_polygon"

    # ----------------------------------------------------------------- the dataset API
    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, index: int) -> str:
        """Path of image ``index`` (``os.path.join`` keeps an absolute ``file_name``)."""
        return os.path.join(self.image_dir, self.images[self.ids[index]]["file_name"])

    def __getitem__(self, index: int):
        """``(image, target)`` for image ``ids[index]``, or ``None`` (with a warning) if its
        file is missing, unreadable or not the size its JSON record says."""
        image_id = self.ids[index]
        info = self.images[image_id]
        path = self.image_path(index)
        try:
            pixels = load_rgb(path)
        except IMAGE_ERRORS as err:
            return self._bad_image(image_id, path, f"cannot read image: {err}")
        height, width = pixels.shape[:2]
        if (height, width) != (info["height"], info["width"]):
            return self._bad_image(
                image_id,
                path,
                f"image is {width}x{height} but the JSON says {info['width']}x{info['height']}",
            )
        image = pixels_to_chw(pixels)

        objects, crowd = self._objects[image_id], self._crowd[image_id]
        masks = np.zeros((len(objects), height, width), dtype=np.uint8)
        with warnings.catch_warnings():
            # pycocotools' decoder trips a NumPy 2 DeprecationWarning on every call; it is
            # about pycocotools' code, not the mask, so keep it out of the training log.
            warnings.filterwarnings("ignore", PYCOCOTOOLS_NUMPY2_WARNING, DeprecationWarning)
            for n, ann in enumerate(objects):
                masks[n] = self.coco.annToMask(ann)
        target = {
            "boxes": tensor(_xywh_to_xyxy([a["bbox"] for a in objects])),
            "labels": tensor(
                np.array([self.category_id_to_label[a["category_id"]] for a in objects], np.int64)
            ),
            "masks": tensor(masks),
            "crowd_boxes": tensor(_xywh_to_xyxy([a["bbox"] for a in crowd])),
            "image_id": int(image_id),
        }
        return tensor(image), target

    def _bad_image(self, image_id, path, reason):
        self.bad_images[image_id] = reason
        warnings.warn(f"skipping image id {image_id} ({path}): {reason}", stacklevel=3)
        return None

    def valid_indices(self) -> list[int]:
        """Indices whose image file exists and has a readable header (cheap: nothing is
        decoded, so a truncated file still passes and ``ds[i]`` may still return None)."""
        good = []
        for index in range(len(self)):
            try:
                with Image.open(self.image_path(index)):
                    good.append(index)
            except IMAGE_ERRORS:
                pass
        return good

    def summary(self) -> str:
        """Kept and skipped annotation counts, one line per skip reason."""
        n_skipped = sum(len(v) for v in self.skipped.values())
        lines = [
            f"{self.ann_file}: {len(self)} images, {len(self.category_ids)} categories, "
            f"kept {self.num_objects} objects + {self.num_crowd} crowd regions, "
            f"skipped {n_skipped} annotations"
        ]
        for reason in sorted(self.skipped):
            ids = self.skipped[reason]
            shown = ", ".join(map(str, ids[:10])) + (", ..." if len(ids) > 10 else "")
            lines.append(f"  skipped {len(ids)} ({reason}): ids {shown}")
        if self.bad_images:
            lines.append(f"  unreadable images so far: {sorted(self.bad_images)}")
        return "\n".join(lines)


def _xywh_to_xyxy(boxes: list) -> np.ndarray:
    """COCO ``[x, y, w, h]`` rows -> float32 ``[N, 4]`` ``(x1, y1, x2, y2)``."""
    out = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    out[:, 2:] += out[:, :2]
    return out.astype(np.float32)
