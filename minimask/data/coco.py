"""A COCO instance-segmentation dataset: ``CocoDetection(image_dir, ann_file)``.

It reads a COCO ``instances_*.json`` file (with pycocotools) and the images it names (with
Pillow) and gives, like ``torchvision.datasets.CocoDetection`` plus the conversions that
Mask R-CNN needs, one ``(image, target)`` pair per image:

- ``image``: float32 Tensor ``[3, H, W]`` in ``[0, 1]``, RGB (``minimask.io.images``). Pillow
  converts every mode to RGB first: grayscale ``L`` is copied to the three channels, ``RGBA``
  drops its alpha channel (no compositing), palette ``P`` is looked up (through ``RGBA`` when
  it has a transparent colour), ``CMYK`` goes through Pillow's formula (no colour profile).
  16-bit grayscale keeps its high byte (``v >> 8``, as Pillow reads a 16-bit RGB PNG).
  Pixel values are divided by 255. EXIF orientation is *not* applied, because COCO's
  annotations are made on the stored pixels.
- ``target["boxes"]``: float32 ``[N, 4]`` ``(x1, y1, x2, y2)`` in pixels, from COCO's
  ``(x, y, w, h)`` as ``x2 = x + w``, ``y2 = y + h`` (no "+1": a box's width is x2 - x1, as
  in torchvision and detectron2), clipped to the image (``0 <= x <= W``, ``0 <= y <= H``, as
  torchvision's and detectron2's COCO readers do). Every box has ``x2 > x1`` and ``y2 > y1``.
- ``target["labels"]``: int64 ``[N]`` in ``1..K`` (0 is background). COCO category ids need
  not be contiguous (COCO's 80 classes use ids 1..90) and may include 0, so the ids listed in
  the JSON are sorted and numbered: ``category_ids[k - 1]`` is label ``k``. Every listed
  category gets a label, also one with no annotations, so the mapping depends on the JSON's
  category list only.
- ``target["masks"]``: uint8 ``[N, H, W]`` of 0/1, decoded by pycocotools ``annToMask`` from a
  polygon list, compressed RLE (``counts`` a string) or uncompressed RLE (``counts`` a list).
- ``target["crowd_boxes"]``: float32 ``[M, 4]`` boxes (clipped the same way) of the
  ``iscrowd=1`` annotations. A crowd region marks many objects at once; it is not a training
  target, so it is kept apart (the detector ignores proposals that fall in it instead of
  calling them background).
- ``target["image_id"]``: the COCO image id (int).

An image with no (non-crowd) objects is a valid example: ``N = 0`` with shapes ``[0, 4]``,
``[0]`` and ``[0, H, W]``.

``ds.coco`` indexes the images, the categories and the *kept* annotations, so evaluation
(``minimask.engine.evaluator``) scores against the ground truth the model trains on. A kept
annotation without ``iscrowd`` gets ``iscrowd = 0``; one without a numeric ``area`` (which
COCOeval's small / medium / large split reads) gets the area of its segmentation: the
polygons' (shoelace formula) or the RLE's foreground pixel count.

Bad input
---------
- A JSON file that is not a COCO instances file raises a ``ValueError`` naming the file and
  the record and key at construction, never mid-epoch: a missing ``images``/``annotations``/
  ``categories`` list; an image without ``id``/``file_name``/``height``/``width``, an
  annotation without ``id``/``bbox``/``category_id``/``image_id``, a category without
  ``id``; an id that is not an integer or is listed twice (images, annotations and
  categories each); a ``width`` or ``height`` that is not an integer in ``1..2**31 - 1`` (an
  image of size 0, say); a ``file_name`` that is not a non-empty string.
- An annotation that cannot be used is skipped at construction and its id recorded in
  ``ds.skipped[reason]``; ``ds.summary()`` prints the counts. The reasons:
  ``unknown_image`` / ``unknown_category`` (``image_id`` / ``category_id`` not an integer
  listed in the file); ``bad_box`` (not four finite numbers); ``empty_box`` (width or
  height <= 0, or none left in float32 after clipping); ``box_outside_image``;
  ``bad_iscrowd`` (not 0 or 1); ``missing_segmentation`` (crowd regions need one too: the
  evaluation scores masks against them); ``bad_polygon`` (not lists of at least 3 points of
  finite numbers, an odd count, or a vertex further outside the image than the image's own
  width or height: pycocotools draws a polygon's whole outline, in time and memory growing
  with its size, and crashes on coordinates that overflow its integers); ``empty_polygon``
  (zero area); ``bad_rle`` (``size`` not ``[H, W]`` of its image, ``counts`` neither a list of
  run lengths nor a compressed string that decodes to runs >= 0 covering the H x W pixels:
  pycocotools decodes other strings into memory it does not own); ``empty_rle`` (no
  foreground pixel).
- An image file that is missing, unreadable, truncated, over Pillow's decompression-bomb
  limit (about 179 million pixels, refused before decoding), of 32-bit integer or float
  pixels (Pillow modes ``I`` and ``F``: no standard 8-bit scale), or of another size than
  its JSON record is found only when it is read: ``ds[i]`` then warns (``warnings.warn``
  naming the file and the image id), records it in ``ds.bad_images`` and returns ``None``.
  **Contract: the caller skips a ``None`` example** (the training loop drops it from the
  batch). ``ds.valid_indices()`` pre-filters the images whose file is missing or has no
  readable header.
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
MAX_IMAGE_SIDE = 2**31  # widths and heights are below it: Pillow's and pycocotools' C ints
# pycocotools' rleFrString reads 5 bits a character into a C int: a sixth character is the
# last whose shift (25) keeps the value inside the int (enough for runs up to 2**29).
RLE_MAX_CHARS_PER_VALUE = 6


def _is_integer(value) -> bool:
    """An int, and not a bool (which JSON's true/false become): what an id or size must be."""
    return isinstance(value, int) and not isinstance(value, bool)


def _polygon_area(xy: list) -> float:
    """Shoelace area of one polygon ``[x0, y0, x1, y1, ...]``."""
    x = np.asarray(xy[0::2], dtype=np.float64)
    y = np.asarray(xy[1::2], dtype=np.float64)
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _compressed_rle_runs(counts: str) -> list[int] | None:
    """The run lengths a compressed RLE string stands for, decoded as pycocotools'
    ``rleFrString`` does, or None where pycocotools would read past the string or overflow.

    Each run is a group of characters ``chr(48 + c)``, 5 bits of ``c`` per character, least
    significant first, continued while ``c & 0x20``; the last character's ``0x10`` is the
    sign; from the third run on, each is stored as the difference to the run two before it.
    """
    runs = []
    value = shift = 0
    for char in counts:
        code = ord(char) - 48
        if not 0 <= code < 64 or shift == 5 * RLE_MAX_CHARS_PER_VALUE:
            return None
        value |= (code & 0x1F) << shift
        shift += 5
        if code & 0x20:
            continue
        if code & 0x10:
            value -= 1 << shift
        if len(runs) > 2:
            value += runs[-2]
        if value < 0:
            return None
        runs.append(value)
        value = shift = 0
    return None if shift else runs


class CocoDetection:
    """COCO instances as ``(image, target)`` pairs for Mask R-CNN (see the module docstring).

    ``image_dir``: folder the images' ``file_name`` is relative to (an absolute ``file_name``
    is used as is). ``ann_file``: the ``instances_*.json`` file.

    Attributes: ``coco`` (the pycocotools ``COCO`` of the images, categories and kept
    annotations), ``ids`` (image ids in sorted order, ``ds[i]`` is image ``ids[i]``),
    ``category_ids``, ``category_id_to_label``, ``label_to_category_id``, ``class_names``
    (``class_names[0] == "__background__"``), ``num_objects`` / ``num_crowd`` (annotations
    kept), ``skipped`` (reason -> annotation ids), ``bad_images`` (image id -> reason, filled
    as images fail to load).
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
        self._check_records(data)

        # Category mapping: sorted COCO ids -> labels 1..K, label 0 is the background.
        names = {cat["id"]: str(cat.get("name", cat["id"])) for cat in data["categories"]}
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
        kept = []
        for ann in data["annotations"]:
            reason = self._problem(ann)
            if reason is not None:
                self.skipped[reason].append(ann["id"])
                continue
            self._complete(ann)
            kept.append(ann)
            group = self._crowd if ann["iscrowd"] else self._objects
            group[ann["image_id"]].append(ann)
        self.skipped = dict(self.skipped)
        self.num_objects = sum(len(v) for v in self._objects.values())
        self.num_crowd = sum(len(v) for v in self._crowd.values())

        # pycocotools' COCO(path) prints progress and re-reads the file; build it from the
        # dict we already checked instead (createIndex also prints, hence the redirect).
        self.coco = COCO()
        self.coco.dataset = {**data, "annotations": kept}
        with contextlib.redirect_stdout(io.StringIO()):
            self.coco.createIndex()

    # ----------------------------------------------------------------- checking the JSON
    def _check_records(self, data) -> None:
        """Raise a ValueError naming the file, the record and the key of the first record
        that makes the JSON unusable (see "Bad input" in the module docstring)."""
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
            for key in ("width", "height"):
                if not _is_integer(img[key]) or not 1 <= img[key] < MAX_IMAGE_SIDE:
                    raise ValueError(
                        f"{self.ann_file}: image {img['id']!r:.40} has {key} {img[key]!r:.40}, "
                        f"not an integer in 1..{MAX_IMAGE_SIDE - 1}"
                    )
            if not isinstance(img["file_name"], str) or not img["file_name"]:
                raise ValueError(
                    f"{self.ann_file}: image {img['id']!r:.40} has file_name "
                    f"{img['file_name']!r:.40}, not a file name"
                )
        for n, cat in enumerate(data["categories"]):
            if not isinstance(cat, dict) or "id" not in cat:
                raise ValueError(f"{self.ann_file}: category #{n} is missing key 'id'")
        for n, ann in enumerate(data["annotations"]):
            if not isinstance(ann, dict) or "id" not in ann:
                raise ValueError(f"{self.ann_file}: annotation #{n} is missing key 'id'")
            for key in REQUIRED_ANNOTATION_KEYS:
                if key not in ann:
                    raise ValueError(
                        f"{self.ann_file}: annotation id {ann['id']!r:.40} is missing key {key!r}"
                    )
        for key, kind in (
            ("images", "image"),
            ("categories", "category"),
            ("annotations", "annotation"),
        ):
            seen = set()
            for n, record in enumerate(data[key]):
                record_id = record["id"]
                if not _is_integer(record_id):
                    raise ValueError(
                        f"{self.ann_file}: {kind} #{n} has id {record_id!r:.40}, not an integer"
                    )
                if record_id in seen:
                    raise ValueError(f"{self.ann_file}: {kind} id {record_id} is listed twice")
                seen.add(record_id)

    def _problem(self, ann) -> str | None:
        """Why ``ann`` cannot be used (a key of ``skipped``), or None if it is fine."""
        image_id, category_id = ann["image_id"], ann["category_id"]
        img = self.images.get(image_id) if _is_integer(image_id) else None
        if img is None:
            return "unknown_image"
        if not _is_integer(category_id) or category_id not in self.category_id_to_label:
            return "unknown_category"
        box = ann["bbox"]
        if not isinstance(box, list) or len(box) != 4:
            return "bad_box"
        if not all(is_real_number(v, finite=True) for v in box):
            return "bad_box"
        x, y, w, h = box
        if w <= 0 or h <= 0:
            return "empty_box"
        if x >= img["width"] or y >= img["height"] or x + w <= 0 or y + h <= 0:
            return "box_outside_image"
        x1, y1, x2, y2 = _xywh_to_xyxy([box], img["width"], img["height"])[0]
        if not (x2 > x1 and y2 > y1):  # thinner than float32 resolves at this position
            return "empty_box"
        if ann.get("iscrowd", 0) not in (0, 1):
            return "bad_iscrowd"
        if "segmentation" not in ann:
            return "missing_segmentation"
        return self._segmentation_problem(ann["segmentation"], img)

    @staticmethod
    def _segmentation_problem(segm, img) -> str | None:
        width, height = img["width"], img["height"]
        if isinstance(segm, list):  # polygons: [[x0, y0, x1, y1, ...], ...]
            if not segm:
                return "empty_polygon"
            for poly in segm:
                # pycocotools reads a 4-number "polygon" as a box and crashes on fewer.
                if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2:
                    return "bad_polygon"
                if not all(is_real_number(v, finite=True) for v in poly):
                    return "bad_polygon"
                xs, ys = poly[0::2], poly[1::2]
                if min(xs) < -width or max(xs) > 2 * width:
                    return "bad_polygon"
                if min(ys) < -height or max(ys) > 2 * height:
                    return "bad_polygon"
            if sum(_polygon_area(poly) for poly in segm) == 0:
                return "empty_polygon"
            return None
        if isinstance(segm, dict):  # RLE: {"size": [h, w], "counts": str or list}
            if segm.get("size") != [height, width] or not all(map(_is_integer, segm["size"])):
                return "bad_rle"
            runs = _rle_runs(segm.get("counts"))
            if runs is None or sum(runs) != height * width:
                return "bad_rle"
            if sum(runs[1::2]) == 0:
                return "empty_rle"
            return None
        return "bad_polygon"

    @staticmethod
    def _complete(ann) -> None:
        """Give a kept annotation the ``iscrowd`` and ``area`` COCOeval reads (module
        docstring): iscrowd 0 when missing, the segmentation's area when not a number."""
        ann["iscrowd"] = int(ann.get("iscrowd", 0))
        area = ann.get("area")
        if not is_real_number(area, finite=True) or area < 0:
            segm = ann["segmentation"]
            if isinstance(segm, list):
                ann["area"] = sum(_polygon_area(poly) for poly in segm)
            else:
                ann["area"] = sum(_rle_runs(segm["counts"])[1::2])

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
            "boxes": tensor(_xywh_to_xyxy([a["bbox"] for a in objects], width, height)),
            "labels": tensor(
                np.array([self.category_id_to_label[a["category_id"]] for a in objects], np.int64)
            ),
            "masks": tensor(masks),
            "crowd_boxes": tensor(_xywh_to_xyxy([a["bbox"] for a in crowd], width, height)),
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


def _rle_runs(counts) -> list[int] | None:
    """The run lengths of an RLE's ``counts`` (a list of them, or a compressed string), or
    None if it is neither."""
    if isinstance(counts, list):
        return counts if all(_is_integer(c) and c >= 0 for c in counts) else None
    if isinstance(counts, str):
        return _compressed_rle_runs(counts)
    return None


def _xywh_to_xyxy(boxes: list, width: int, height: int) -> np.ndarray:
    """COCO ``[x, y, w, h]`` rows -> float32 ``[N, 4]`` ``(x1, y1, x2, y2)`` clipped to the
    ``width`` x ``height`` image (computed in float64, then cast)."""
    out = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    out[:, 2:] += out[:, :2]
    np.clip(out[:, 0::2], 0, width, out=out[:, 0::2])
    np.clip(out[:, 1::2], 0, height, out=out[:, 1::2])
    return out.astype(np.float32)
