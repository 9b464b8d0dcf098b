"""A fuzz of the COCO loader (``CocoDetection``) and of the command line reading its input.

A valid instances file with three small synthetic images (drawn with NumPy and Pillow) is
mutated by hypothesis: keys dropped, values replaced by values of the wrong type, NaN,
negative or huge boxes, coordinates added to or removed from polygons (an odd count), RLE
of the wrong size or with corrupt counts, duplicate ids, images of size 0, unicode and
absolute file names, a category id 0; and the image files replaced by a truncated JPEG, a
PNG with alpha, a palette PNG with a transparent colour, a 16-bit grayscale PNG, a CMYK
JPEG, an EXIF-rotated file, a header claiming 40000 x 40000 pixels, a file of another size
than the JSON says, bytes that are no image, or no file at all.

The property: each outcome is one that the loader's docstring allows,

- ``CocoDetection`` raises a ValueError that names the annotation file; or
- every annotation is kept or listed by id in ``ds.skipped[reason]``, and every image
  either loads with a well-formed example (float32 image [3, H, W] in [0, 1]; boxes float32
  [N, 4], finite, clipped to the image, x2 > x1 and y2 > y1; labels in 1..K; uint8 0/1
  masks [N, H, W]) or gives None with a warning naming its file and id, recorded in
  ``ds.bad_images``.

Values are checked wherever the mutations leave them known: an image's pixels are the ones
drawn (exact); an untouched annotation is kept with the box and mask of the rectangles it
was drawn from (exact); every kept box is its JSON box converted and clipped in NumPy
(exact); every label is the rank of its category id among the sorted ids. Any other
exception fails the test. The command line (``minimask evaluate`` with a checkpoint of the
valid set, ``minimask train --iters 1``) ends with status 0 or a one-line message naming
the annotation file, never a traceback.

The profiles of tests/conftest.py set the number of examples ("ci": 25, "dev": 50); the
long run, 2000 examples a test, is

    HYPOTHESIS_PROFILE=fuzz python -m pytest -p no:xdist tests/test_data_fuzz.py
"""

import contextlib
import copy
import io
import json
import math
import os
import shutil
import struct
import tempfile
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from PIL import Image
from pycocotools import mask as mask_utils

from minimask.cli import main
from minimask.data import CocoDetection
from minimask.data.coco import PYCOCOTOOLS_NUMPY2_WARNING

pytestmark = pytest.mark.filterwarnings(f"ignore:{PYCOCOTOOLS_NUMPY2_WARNING}:DeprecationWarning")

# --------------------------------------------------------------------------- the valid set
SIZES = [(32, 24), (24, 32), (20, 16)]  # (width, height) of images 1, 2, 3
CATEGORY_IDS = [1, 3, 7]
# annotation id -> (image id, category id, rectangles (x0, y0, x1, y1), encoding, iscrowd)
ANNOTATIONS = {
    1: (1, 1, [(2, 2, 10, 10)], "polygon", 0),
    2: (1, 3, [(12, 4, 20, 12)], "rle", 0),
    3: (2, 7, [(3, 5, 15, 20)], "uncompressed", 0),
    4: (2, 1, [(0, 0, 6, 6)], "rle", 1),
    5: (3, 3, [(1, 1, 5, 5), (8, 8, 14, 12)], "polygon", 0),
    6: (3, 7, [(10, 2, 18, 7)], "polygon", 0),
}


def _rect_mask(rects, width, height):
    """The 0/1 mask of a union of pixel rectangles: the reference for an untouched mask
    (pycocotools rasterises a polygon with integer corners to exactly these pixels)."""
    mask = np.zeros((height, width), np.uint8)
    for x0, y0, x1, y1 in rects:
        mask[y0:y1, x0:x1] = 1
    return mask


def _segmentation(rects, encoding, width, height):
    """The rectangles as polygons, compressed RLE or uncompressed (column-major) RLE."""
    if encoding == "polygon":
        return [[x0, y0, x1, y0, x1, y1, x0, y1] for x0, y0, x1, y1 in rects]
    mask = _rect_mask(rects, width, height)
    if encoding == "rle":
        rle = mask_utils.encode(np.asfortranarray(mask))
        return {"size": [height, width], "counts": rle["counts"].decode("ascii")}
    flat = mask.flatten(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], changes, [flat.size]])).tolist()
    return {"size": [height, width], "counts": runs if flat[0] == 0 else [0, *runs]}


def _bbox(rects):
    x0, y0 = min(r[0] for r in rects), min(r[1] for r in rects)
    x1, y1 = max(r[2] for r in rects), max(r[3] for r in rects)
    return [x0, y0, x1 - x0, y1 - y0]


def _valid_json():
    images = [
        {"id": n + 1, "file_name": f"{n + 1}.png", "width": w, "height": h}
        for n, (w, h) in enumerate(SIZES)
    ]
    annotations = []
    for ann_id, (image_id, category_id, rects, encoding, iscrowd) in ANNOTATIONS.items():
        width, height = SIZES[image_id - 1]
        annotations.append(
            {
                "id": ann_id,
                "image_id": image_id,
                "category_id": category_id,
                "bbox": _bbox(rects),
                "segmentation": _segmentation(rects, encoding, width, height),
                "area": int(_rect_mask(rects, width, height).sum()),
                "iscrowd": iscrowd,
            }
        )
    categories = [{"id": c, "name": f"class{c}"} for c in CATEGORY_IDS]
    return {"images": images, "annotations": annotations, "categories": categories}


VALID = _valid_json()


def _base_pixels(index):
    """The RGB pixels image ``index`` is drawn with (image 2 is stored as grayscale)."""
    width, height = SIZES[index]
    rng = np.random.default_rng(index)
    if index == 1:
        return np.repeat(rng.integers(0, 256, (height, width, 1), dtype=np.uint8), 3, axis=2)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _write_base_images(folder):
    for index in range(len(SIZES)):
        pixels = _base_pixels(index)
        Image.fromarray(pixels[:, :, 0] if index == 1 else pixels).save(folder / f"{index + 1}.png")


# --------------------------------------------------------------------------- image files
def _png_header_only(width, height):
    """A PNG whose header claims ``width`` x ``height`` RGB pixels, with almost no data."""

    def chunk(kind, payload):
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


HUGE = 40000  # 40000^2 pixels: over Pillow's decompression-bomb limit, refused at open


def _write_image(folder, index, kind, orientation, fraction):
    """Write image ``index`` as a file of ``kind``. Returns (file name, the RGB pixels it
    must load as or None where they are not known exactly, whether it must fail to load)."""
    width, height = SIZES[index]
    rng = np.random.default_rng(100 + index)
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    png, jpg = f"{index + 1}.png", f"{index + 1}.jpg"
    if kind == "rgba":
        alpha = rng.integers(0, 256, (height, width, 1), dtype=np.uint8)
        Image.fromarray(np.concatenate([rgb, alpha], axis=2)).save(folder / png)
        return png, rgb, False  # alpha dropped, no compositing
    if kind == "palette":
        palette = rng.integers(0, 256, (4, 3), dtype=np.uint8)
        indices = rng.integers(0, 4, (height, width), dtype=np.uint8)
        img = Image.new("P", (width, height))
        img.putdata(indices.flatten().tolist())
        img.putpalette(palette.flatten().tolist())
        img.save(folder / png, transparency=0)
        return png, palette[indices], False  # the colours looked up, transparency dropped
    if kind == "gray":
        Image.fromarray(rgb[:, :, 0]).save(folder / png)
        return png, np.repeat(rgb[:, :, :1], 3, axis=2), False
    if kind == "gray16":
        values = rng.integers(0, 65536, (height, width), dtype=np.uint16)
        Image.fromarray(values).save(folder / png)
        high = (values >> 8).astype(np.uint8)[:, :, None]
        return png, np.repeat(high, 3, axis=2), False  # the high byte, as for 16-bit RGB
    if kind == "cmyk_jpeg":
        Image.fromarray(rgb).convert("CMYK").save(folder / jpg)
        return jpg, None, False
    if kind == "exif":  # the stored pixels, not rotated (COCO annotates the stored pixels)
        exif = Image.Exif()
        exif[0x0112] = orientation
        name = png if fraction < 0.5 else jpg
        Image.fromarray(rgb).save(folder / name, exif=exif)
        return name, rgb if name == png else None, False
    if kind == "truncated_jpeg":
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format="JPEG")
        data = buffer.getvalue()
        (folder / jpg).write_bytes(data[: max(1, int(fraction * (len(data) - 1)))])
        return jpg, None, False  # a file cut only in its last bytes may still decode
    if kind == "huge":
        (folder / png).write_bytes(_png_header_only(HUGE, HUGE))
        return png, None, True
    if kind == "wrong_size":
        Image.fromarray(np.zeros((height, width + 3, 3), np.uint8)).save(folder / png)
        return png, None, True
    if kind == "not_an_image":
        (folder / png).write_bytes(b"not an image at all" * (1 + orientation))
        return png, None, True
    assert kind == "missing"
    return png, None, True


IMAGE_KINDS = (
    "rgba",
    "palette",
    "gray",
    "gray16",
    "cmyk_jpeg",
    "exif",
    "truncated_jpeg",
    "huge",
    "wrong_size",
    "not_an_image",
    "missing",
)


# --------------------------------------------------------------------------- JSON paths
def _paths(value, prefix=()):
    """Every path (a tuple of keys and list indices) to a value inside ``value``."""
    out = []
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in items:
        out.append((*prefix, key))
        if isinstance(child, (dict, list)):
            out += _paths(child, (*prefix, key))
    return out


def _lookup(data, path):
    """The value at ``path``; LookupError if an earlier mutation removed a step of it."""
    for key in path:
        if isinstance(data, dict) and key in data:
            data = data[key]
        elif isinstance(data, list) and isinstance(key, int) and key < len(data):
            data = data[key]
        else:
            raise LookupError(path)
    return data


PATHS = _paths(VALID)
LIST_PATHS = [p for p in PATHS if isinstance(_lookup(VALID, p), list)]

# --------------------------------------------------------------------------- strategies
WEIRD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**66), 2**66),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.lists(st.integers(-3, 40), max_size=4),
    st.dictionaries(st.sampled_from(["size", "counts", "id"]), st.integers(0, 9), max_size=2),
)
NUMBERS = st.one_of(
    st.sampled_from([0, -1, 0.5, 1e-30, 1e-7, 31.9999999, 1e9, 1e30, 1e39, 1e300, 2**63, 10**400]),
    st.sampled_from([math.nan, math.inf, -math.inf, -1e30]),
    st.floats(-100, 100),
    st.integers(-(10**12), 10**12),
)
FILE_NAMES = st.text(
    st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="/\\"),
    min_size=1,
    max_size=8,
).map(lambda name: name + ".png")
ANN_INDEX = st.integers(0, len(ANNOTATIONS) - 1)
IMAGE_INDEX = st.integers(0, len(SIZES) - 1)
RLE_ANNS = [1, 2, 3]  # positions of annotations 2, 3, 4: compressed, uncompressed, crowd RLE
ID_PATHS = [("categories", n, "id") for n in range(3)]
ID_PATHS += [("annotations", n, "category_id") for n in range(len(ANNOTATIONS))]

JSON_MUTATIONS = st.one_of(
    st.tuples(st.just("drop"), st.sampled_from(PATHS)),
    st.tuples(st.just("set"), st.sampled_from(PATHS), st.one_of(WEIRD, NUMBERS)),
    st.tuples(st.just("insert"), st.sampled_from(LIST_PATHS), NUMBERS),
    st.tuples(st.just("box"), ANN_INDEX, st.lists(NUMBERS, min_size=4, max_size=4)),
    st.tuples(
        st.just("set"),
        st.sampled_from([("annotations", n, "segmentation", "size") for n in RLE_ANNS]),
        st.lists(st.integers(-2, 40), max_size=3),
    ),
    st.tuples(
        st.just("set"),
        st.sampled_from([("annotations", n, "segmentation", "counts") for n in (1, 3)]),  # str
        st.one_of(
            st.text(max_size=12),
            st.text(st.characters(min_codepoint=0x30, max_codepoint=0x6F), max_size=12),
        ),
    ),
    st.tuples(st.just("counts"), st.sampled_from(RLE_ANNS), st.integers(0, 40), st.integers()),
    st.tuples(
        st.just("duplicate_id"),
        st.sampled_from(["images", "annotations", "categories"]),
        st.integers(0, 5),
        st.integers(0, 5),
    ),
    st.tuples(
        st.just("set"),
        st.sampled_from([("images", n, k) for n in range(3) for k in ("width", "height")]),
        st.sampled_from([0, -1, 1]),
    ),
    st.tuples(st.just("set"), st.sampled_from([(key,) for key in VALID]), st.just([])),
    st.tuples(st.just("rename"), IMAGE_INDEX, FILE_NAMES),
    st.tuples(st.just("absolute"), IMAGE_INDEX, st.booleans()),
    st.tuples(st.just("set"), st.sampled_from(ID_PATHS), st.just(0)),
)
IMAGE_MUTATIONS = st.tuples(
    IMAGE_INDEX, st.sampled_from(IMAGE_KINDS), st.integers(1, 8), st.floats(0, 1)
)
CASES = st.tuples(st.lists(IMAGE_MUTATIONS, max_size=2), st.lists(JSON_MUTATIONS, max_size=4))


# --------------------------------------------------------------------------- mutating
class Case:
    """A mutated copy of the valid set written into ``folder``: the JSON (``data``), the
    pixels each image record's file must load as (``expected``, by record), the records
    whose file must fail (``must_fail``), and what the mutations touched (``touched``:
    records by ``id()``, and the names of replaced top-level lists)."""

    def __init__(self, folder, image_mutations, json_mutations):
        self.folder = folder
        self.data = copy.deepcopy(VALID)
        self.touched = set()
        self.expected, self.must_fail = {}, set()
        _write_base_images(folder)
        for index, record in enumerate(self.data["images"]):
            self.expected[id(record)] = _base_pixels(index)
        for mutation in image_mutations:
            self._mutate_image(*mutation)
        for mutation in json_mutations:
            try:
                self._mutate_json(*mutation)
            except LookupError:
                pass  # an earlier mutation removed what this one changes
        self.ann_file = folder / "instances.json"
        self.ann_file.write_text(json.dumps(self.data), encoding="utf-8")

    def _mutate_image(self, index, kind, orientation, fraction):
        record = self.data["images"][index]
        (self.folder / record["file_name"]).unlink(missing_ok=True)
        name, pixels, must_fail = _write_image(self.folder, index, kind, orientation, fraction)
        record["file_name"] = name
        record["width"], record["height"] = SIZES[index]
        self.expected[id(record)] = pixels
        self.must_fail.discard(id(record))
        if must_fail:
            self.must_fail.add(id(record))
        if kind == "huge":  # the JSON agrees with the file's header
            record["width"] = record["height"] = HUGE
            self.touched.add(id(record))

    def _touch(self, path):
        if len(path) == 1:
            self.touched.add(path[0])
        else:
            self.touched.add(id(_lookup(self.data, path[:2])))
        if path[0] == "categories":
            self.touched.add("categories")

    def _mutate_json(self, kind, *args):
        if kind in ("drop", "set", "insert"):
            path = args[0]
            parent = _lookup(self.data, path[:-1])
            self._touch(path)
            key = path[-1]
            if kind == "insert":
                target = _lookup(self.data, path)
                if isinstance(target, list):
                    target.append(copy.deepcopy(args[1]))
            elif isinstance(parent, dict):
                if kind == "drop":
                    parent.pop(key, None)
                else:
                    parent[key] = copy.deepcopy(args[1])
            elif isinstance(parent, list) and isinstance(key, int) and key < len(parent):
                if kind == "drop":
                    del parent[key]
                else:
                    parent[key] = copy.deepcopy(args[1])
        elif kind == "box":
            self._mutate_json("set", ("annotations", args[0], "bbox"), list(args[1]))
        elif kind == "counts":  # change one run or one character of an RLE's counts
            index, position, delta = args
            path = ("annotations", index, "segmentation", "counts")
            counts = _lookup(self.data, path)
            if isinstance(counts, list) and counts:
                counts = list(counts)
                counts[position % len(counts)] = counts[position % len(counts)] + delta
            elif isinstance(counts, str) and counts:
                n = position % len(counts)
                char = chr(0x20 + (ord(counts[n]) + delta) % 0x60)  # printable ASCII
                counts = counts[:n] + char + counts[n + 1 :]
            self._mutate_json("set", path, counts)
        elif kind == "duplicate_id":
            key, source, target = args
            records = _lookup(self.data, (key,))
            if not isinstance(records, list) or not records:
                return
            value = _lookup(self.data, (key, source % len(records), "id"))
            self._mutate_json("set", (key, target % len(records), "id"), value)
        elif kind == "rename":  # a unicode file name, the file renamed with it
            index, name = args
            record = _lookup(self.data, ("images", index))
            old = record.get("file_name") if isinstance(record, dict) else None
            if isinstance(old, str) and (self.folder / old).is_file():
                if not (self.folder / name).exists():
                    (self.folder / old).rename(self.folder / name)
                    record["file_name"] = name
        elif kind == "absolute":  # the file's absolute path, or one where there is none
            index, exists = args
            record = _lookup(self.data, ("images", index))
            name = record.get("file_name") if isinstance(record, dict) else None
            if isinstance(name, str):
                where = self.folder if exists else self.folder / "elsewhere"
                record["file_name"] = str(where / name)


def _new_case(root, image_mutations, json_mutations):
    return Case(Path(tempfile.mkdtemp(dir=root)), image_mutations, json_mutations)


# --------------------------------------------------------------------------- the property
def _expected_box(bbox, width, height):
    """COCO (x, y, w, h) -> (x1, y1, x2, y2) in float64, clipped to the image, as float32."""
    x, y, w, h = (float(v) for v in bbox)
    box = np.array([x, y, x + w, y + h], np.float64)
    box[0::2] = np.clip(box[0::2], 0, width)
    box[1::2] = np.clip(box[1::2], 0, height)
    return box.astype(np.float32)


def _check_boxes(boxes, width, height):
    boxes = boxes.numpy()
    assert boxes.dtype == np.float32 and boxes.ndim == 2 and boxes.shape[1] == 4
    assert np.isfinite(boxes).all()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    assert (boxes[:, 0::2] >= 0).all() and (boxes[:, 0::2] <= width).all()
    assert (boxes[:, 1::2] >= 0).all() and (boxes[:, 1::2] <= height).all()
    return boxes


def _record_of(records, image_id):
    """The image record an annotation's ``image_id`` names: an int (not a bool) that is
    the id of a listed image, else None."""
    return records.get(image_id) if type(image_id) is int else None


def _check_case(case):
    """The property of the module docstring for one mutated set."""
    try:
        ds = CocoDetection(case.folder, case.ann_file)
    except ValueError as error:
        assert str(case.ann_file) in str(error)
        event("ValueError")
        return
    data = case.data
    annotations = data["annotations"]
    ann_ids = [a["id"] for a in annotations]
    assert len(set(ann_ids)) == len(ann_ids), "duplicate annotation ids accepted"
    image_ids = [img["id"] for img in data["images"]]
    assert len(set(image_ids)) == len(image_ids), "duplicate image ids accepted"
    skipped = {i for ids in ds.skipped.values() for i in ids}
    for reason in ds.skipped:
        event(f"skipped: {reason}")
    assert sum(len(ids) for ids in ds.skipped.values()) == len(skipped) <= len(annotations)
    assert skipped <= set(ann_ids)
    assert ds.num_objects + ds.num_crowd + len(skipped) == len(annotations)
    categories = sorted(c["id"] for c in data["categories"])
    records = {img["id"]: img for img in data["images"]}
    assert ds.ids == sorted(records)
    for ann in annotations:
        record = _record_of(records, ann["image_id"])
        pristine = not case.touched & {id(ann), id(record), "categories", "annotations"}
        if pristine and record is not None and "images" not in case.touched:
            assert ann["id"] not in skipped, f"untouched annotation {ann['id']} skipped"

    loaded = []
    for index, image_id in enumerate(ds.ids):
        record = records[image_id]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            example = ds[index]
        if example is None:
            reason = ds.bad_images[image_id]
            event("bad image: " + ("size" if "JSON says" in reason else reason.split(":")[0]))
            assert image_id in ds.bad_images
            messages = [str(w.message) for w in caught]
            assert any(
                ds.image_path(index) in m and f"image id {image_id}" in m for m in messages
            ), messages
            continue
        assert id(record) not in case.must_fail, f"{record['file_name']} loaded"
        loaded.append(index)
        _check_example(case, ds, record, example, skipped, categories)
    assert set(loaded) <= set(ds.valid_indices())
    assert str(case.ann_file) in ds.summary()


def _check_example(case, ds, record, example, skipped, categories):
    """One loaded (image, target) against its JSON record and the mutations."""
    image, target = example
    width, height = record["width"], record["height"]
    pixels = image.numpy()
    assert pixels.dtype == np.float32 and pixels.shape == (3, height, width)
    assert 0.0 <= pixels.min() and pixels.max() <= 1.0
    if case.expected.get(id(record)) is not None:
        expected = case.expected[id(record)].transpose(2, 0, 1).astype(np.float32) / 255
        np.testing.assert_array_equal(pixels, expected)
    assert target["image_id"] == record["id"]

    kept = [
        a
        for a in case.data["annotations"]
        if _record_of({record["id"]: record}, a["image_id"]) is record and a["id"] not in skipped
    ]
    objects = [a for a in kept if a.get("iscrowd", 0) != 1]
    crowd = [a for a in kept if a.get("iscrowd", 0) == 1]
    boxes = _check_boxes(target["boxes"], width, height)
    crowd_boxes = _check_boxes(target["crowd_boxes"], width, height)
    assert len(boxes) == len(objects) and len(crowd_boxes) == len(crowd)
    for group, found in ((objects, boxes), (crowd, crowd_boxes)):
        for ann, box in zip(group, found):
            np.testing.assert_array_equal(box, _expected_box(ann["bbox"], width, height))

    labels = target["labels"].numpy()
    assert labels.dtype == np.int64 and labels.shape == (len(objects),)
    expected_labels = [categories.index(a["category_id"]) + 1 for a in objects]
    np.testing.assert_array_equal(labels, expected_labels)
    masks = target["masks"].numpy()
    assert masks.dtype == np.uint8 and masks.shape == (len(objects), height, width)
    assert set(np.unique(masks)) <= {0, 1}
    untouched = {"categories", "annotations", "images", id(record)}
    for ann, mask in zip(objects, masks):
        if not case.touched & (untouched | {id(ann)}):
            _, _, rects, _, _ = ANNOTATIONS[ann["id"]]
            np.testing.assert_array_equal(mask, _rect_mask(rects, width, height))


@given(case=CASES)
def test_mutated_sets_load_skip_or_raise_naming_the_file(tmp_path_factory, case):
    root = tmp_path_factory.getbasetemp() / "fuzz_loader"
    root.mkdir(exist_ok=True)
    mutated = _new_case(root, *case)
    try:
        _check_case(mutated)
    finally:
        shutil.rmtree(mutated.folder)


def test_the_valid_set_loads_unchanged(tmp_path):
    """The unmutated set: nothing skipped, every image loads with its drawn pixels and
    every annotation's rectangle as box and mask (the checks of ``_check_case``)."""
    case = Case(tmp_path, [], [])
    ds = CocoDetection(case.folder, case.ann_file)
    assert ds.skipped == {} and ds.num_objects == 5 and ds.num_crowd == 1
    _check_case(case)
    assert ds.valid_indices() == [0, 1, 2]


# --------------------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny model trained one step on the valid set (categories 1, 3, 7)."""
    folder = tmp_path_factory.mktemp("fuzz_valid")
    case = Case(folder, [], [])
    out = folder / "run"
    args = ["train", "--train-images", str(folder), "--train-ann", str(case.ann_file)]
    args += ["--out", str(out), "--preset", "tiny", "--iters", "1", "--min-size", "32"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*args, "--quiet"]) == 0
    return out / "checkpoint.npz"


def _run_cli(args):
    """(exit status or SystemExit message, everything printed) of ``main(args)`` run
    in-process; any exception but SystemExit propagates and fails the test."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            status = main(args)
        except SystemExit as stop:
            status = stop.code
    return status, out.getvalue()


@given(case=CASES)
def test_cli_reports_bad_input_in_one_line_naming_the_file(tmp_path_factory, checkpoint, case):
    root = tmp_path_factory.getbasetemp() / "fuzz_cli"
    root.mkdir(exist_ok=True)
    mutated = _new_case(root, *case)
    images, ann = str(mutated.folder), str(mutated.ann_file)
    commands = {
        "evaluate": ["evaluate", "--checkpoint", str(checkpoint), "--images", images],
        "train": ["train", "--train-images", images, "--train-ann", ann, "--preset", "tiny"],
    }
    commands["evaluate"] += ["--ann", ann, "--quiet"]
    commands["train"] += ["--out", os.path.join(images, "run"), "--iters", "1"]
    commands["train"] += ["--batch-size", "3", "--min-size", "32", "--quiet"]
    try:
        for name, args in commands.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # the skipped images' warnings
                status, printed = _run_cli(args)
            assert "Traceback" not in printed
            if status not in (0, None):
                assert isinstance(status, str), f"{name}: exit status {status}: {printed}"
                assert "\n" not in status.strip() and ann in status, status
    finally:
        shutil.rmtree(mutated.folder)
