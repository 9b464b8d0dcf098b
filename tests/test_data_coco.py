"""Tests of ``minimask.data.coco.CocoDetection``: real COCO data (the folder MINIMASK_COCO
names, see coco_data.py) checked against pycocotools, and small synthetic JSON files for
category mapping and bad input."""

import json
import warnings

import numpy as np
import pytest
from coco_data import annotation_file, image_folder, needs_coco
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from minimask.cli import main
from minimask.data import CocoDetection
from minimask.data.coco import PYCOCOTOOLS_NUMPY2_WARNING

# pycocotools' decoder warns under NumPy 2 on each call (its own code, not ours).
pytestmark = pytest.mark.filterwarnings(f"ignore:{PYCOCOTOOLS_NUMPY2_WARNING}:DeprecationWarning")


def _tiny(split="train"):
    ann = annotation_file(split)
    return CocoDetection(image_folder(split), ann), COCO(str(ann))


# ---------------------------------------------------------------------------- real COCO data
@needs_coco
@pytest.mark.parametrize("split", ["train", "val"])
def test_real_coco_counts_match_pycocotools(split):
    """Reference: pycocotools' own index of the same JSON. Exact integer equality: one
    example per image, every annotation kept (as object or crowd), none skipped."""
    ds, coco = _tiny(split)
    assert len(ds) == len(coco.getImgIds())
    assert ds.ids == sorted(coco.getImgIds())
    n_crowd = len(coco.getAnnIds(iscrowd=True))
    assert ds.num_crowd == n_crowd > 0
    assert ds.num_objects == len(coco.getAnnIds()) - n_crowd
    assert ds.skipped == {}
    assert "skipped 0 annotations" in ds.summary()


@needs_coco
def test_real_coco_examples_match_pycocotools():
    """Reference: ``coco.annToMask`` (masks, exact equality), the JSON's ``bbox`` converted
    as x2 = x + w in float64 then cast (boxes, exact float32 equality), Pillow's RGB pixels
    / 255 (image, exact). Image 262145 has two iscrowd=1 annotations: they must appear as
    crowd_boxes and not among the objects."""
    ds, coco = _tiny("train")
    for image_id in (262145, ds.ids[0], ds.ids[-1]):
        image, target = ds[ds.ids.index(image_id)]
        info = coco.imgs[image_id]
        h, w = info["height"], info["width"]
        assert image.shape == (3, h, w) and image.dtype == np.float32
        with Image.open(image_folder("train") / info["file_name"]) as img:
            pixels = np.asarray(img.convert("RGB"))
        np.testing.assert_array_equal(image.numpy(), pixels.transpose(2, 0, 1) / np.float32(255))
        assert 0.0 <= image.numpy().min() and image.numpy().max() <= 1.0

        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        objects = [a for a in anns if not a["iscrowd"]]
        crowd = [a for a in anns if a["iscrowd"]]
        if image_id == 262145:
            assert len(crowd) == 2
        assert target["image_id"] == image_id
        assert target["masks"].shape == (len(objects), h, w)
        assert target["masks"].dtype == np.uint8
        for n, ann in enumerate(objects):
            np.testing.assert_array_equal(target["masks"].numpy()[n], coco.annToMask(ann))
        for key, group in (("boxes", objects), ("crowd_boxes", crowd)):
            xywh = np.array([a["bbox"] for a in group], dtype=np.float64).reshape(-1, 4)
            expected = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
            assert target[key].dtype == np.float32
            np.testing.assert_array_equal(target[key].numpy(), expected.astype(np.float32))
        labels = [ds.category_id_to_label[a["category_id"]] for a in objects]
        assert target["labels"].dtype == np.int64
        np.testing.assert_array_equal(target["labels"].numpy(), labels)


@needs_coco
def test_real_coco_category_mapping_is_sorted_bijection():
    """Reference: ``sorted(coco.getCatIds())`` and the category names; exact equality. The
    COCO ids (1..90 with gaps in COCO's own files) map one-to-one onto labels 1..K in
    sorted-id order."""
    ds, coco = _tiny("val")
    cat_ids = sorted(coco.getCatIds())
    assert ds.category_ids == cat_ids
    assert sorted(ds.category_id_to_label.values()) == list(range(1, len(cat_ids) + 1))
    for k, cid in enumerate(cat_ids, start=1):
        assert ds.category_id_to_label[cid] == k and ds.label_to_category_id[k] == cid
        assert ds.class_names[k] == coco.cats[cid]["name"]
    assert ds.class_names[0] == "__background__"


# ---------------------------------------------------------------------------- synthetic
SQUARE = [[2.0, 2.0, 10.0, 2.0, 10.0, 10.0, 2.0, 10.0]]  # 8x8 square, bbox [2, 2, 8, 8]


def _write_image(path, mode, size=(16, 12)):
    """A small deterministic image in the given Pillow mode."""
    rng = np.random.default_rng(0)
    w, h = size
    if mode == "L":
        img = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L")
    elif mode == "RGBA":
        img = Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), "RGBA")
    else:
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
    img.save(path)
    return img


def _ann(ann_id, image_id=1, category_id=0, bbox=(2, 2, 8, 8), segmentation=SQUARE, **extra):
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "bbox": list(bbox),
        "segmentation": segmentation,
        "iscrowd": 0,
        **extra,
    }


def _dataset(tmp_path, images, annotations, categories=None):
    categories = categories or [
        {"id": 7, "name": "seven"},
        {"id": 0, "name": "zero"},
        {"id": 3, "name": "three"},
        {"id": 42, "name": "unused"},
    ]
    ann_file = tmp_path / "instances.json"
    data = {"images": images, "annotations": annotations, "categories": categories}
    ann_file.write_text(json.dumps(data))
    return CocoDetection(tmp_path, ann_file)


def _image(image_id, file_name, w=16, h=12):
    return {"id": image_id, "file_name": file_name, "width": w, "height": h}


def test_noncontiguous_ids_with_zero_and_unused_category(tmp_path):
    """Reference: the sorted category ids [0, 3, 7, 42] -> labels 1..4 by hand (exact).
    Category 0 is a real class (label 1), not background; category 42 has no annotations
    but still gets label 4."""
    _write_image(tmp_path / "a.png", "RGB")
    ds = _dataset(tmp_path, [_image(1, "a.png")], [_ann(1, category_id=0), _ann(2, category_id=7)])
    assert ds.category_ids == [0, 3, 7, 42]
    assert ds.category_id_to_label == {0: 1, 3: 2, 7: 3, 42: 4}
    assert ds.label_to_category_id == {1: 0, 2: 3, 3: 7, 4: 42}
    assert ds.class_names == ["__background__", "zero", "three", "seven", "unused"]
    _, target = ds[0]
    np.testing.assert_array_equal(target["labels"].numpy(), [1, 3])


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
def test_image_modes_convert_to_rgb(tmp_path, mode):
    """Reference: Pillow's ``convert("RGB")`` of the written PNG, / 255 (exact float32
    equality); shape [3, H, W], dtype float32, range [0, 1]."""
    img = _write_image(tmp_path / "a.png", mode)
    ds = _dataset(tmp_path, [_image(1, "a.png")], [_ann(1)])
    image, _ = ds[0]
    expected = np.asarray(img.convert("RGB")).transpose(2, 0, 1) / np.float32(255)
    assert image.shape == (3, 12, 16) and image.dtype == np.float32
    np.testing.assert_array_equal(image.numpy(), expected)


def test_jpeg_and_absolute_file_name(tmp_path):
    """Reference: the JPEG decoded by Pillow, / 255 (exact). The image lives outside
    image_dir and its file_name is absolute."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "root").mkdir()
    _write_image(elsewhere / "a.jpg", "RGB")
    ann_file = tmp_path / "instances.json"
    data = {
        "images": [_image(5, str(elsewhere / "a.jpg"))],
        "annotations": [_ann(1, image_id=5)],
        "categories": [{"id": 0, "name": "zero"}],
    }
    ann_file.write_text(json.dumps(data))
    ds = CocoDetection(tmp_path / "root", ann_file)
    image, target = ds[0]
    expected = np.asarray(Image.open(elsewhere / "a.jpg").convert("RGB")).transpose(2, 0, 1)
    np.testing.assert_array_equal(image.numpy(), expected / np.float32(255))
    assert target["image_id"] == 5


def test_rle_compressed_and_uncompressed_and_crowd(tmp_path):
    """Reference: the pixel mask the RLEs were encoded from (exact). One polygon, one
    compressed RLE, one uncompressed RLE (column-major run lengths) and one crowd region
    (goes to crowd_boxes only); boxes are xywh -> xyxy by hand."""
    _write_image(tmp_path / "a.png", "RGB")
    mask = np.zeros((12, 16), np.uint8)
    mask[3:7, 4:12] = 1
    rle = mask_utils.encode(np.asfortranarray(mask))
    compressed = {"size": [12, 16], "counts": rle["counts"].decode("ascii")}
    flat = mask.flatten(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], changes, [flat.size]])).tolist()
    uncompressed = {"size": [12, 16], "counts": runs}  # flat starts with 0, as RLE wants
    anns = [
        _ann(1),
        _ann(2, bbox=(4, 3, 8, 4), segmentation=compressed),
        _ann(3, bbox=(4, 3, 8, 4), segmentation=uncompressed, category_id=3),
        _ann(4, bbox=(0, 0, 5, 5), segmentation=compressed, iscrowd=1),
    ]
    ds = _dataset(tmp_path, [_image(1, "a.png")], anns)
    _, target = ds[0]
    masks = target["masks"].numpy()
    assert masks.shape == (3, 12, 16) and masks.dtype == np.uint8
    square = np.zeros((12, 16), np.uint8)
    square[2:10, 2:10] = 1
    np.testing.assert_array_equal(masks[0], square)
    np.testing.assert_array_equal(masks[1], mask)
    np.testing.assert_array_equal(masks[2], mask)
    np.testing.assert_array_equal(
        target["boxes"].numpy(), [[2, 2, 10, 10], [4, 3, 12, 7], [4, 3, 12, 7]]
    )
    np.testing.assert_array_equal(target["crowd_boxes"].numpy(), [[0, 0, 5, 5]])
    assert ds.num_objects == 3 and ds.num_crowd == 1


def test_bad_annotations_are_skipped_and_counted(tmp_path):
    """Reference: the reason each annotation was written to have (exact id lists); the one
    good annotation (id 1) is kept and indexing does not crash."""
    _write_image(tmp_path / "a.png", "RGB")
    anns = [
        _ann(1),
        _ann(10, segmentation=[[1.0, 2.0, 3.0, 4.0]]),  # too few coordinates
        _ann(11, segmentation=[[1.0, 2.0, 3.0, 4.0, 5.0]]),  # odd length
        _ann(12, segmentation=[[1.0, 2.0, "x", 4.0, 5.0, 6.0]]),  # not a number
        _ann(20, segmentation=[]),  # no polygon
        _ann(21, segmentation=[[1.0, 1.0, 2.0, 2.0, 3.0, 3.0]]),  # collinear: zero area
        _ann(30, bbox=(2, 2, 0, 8)),  # zero width
        _ann(31, bbox=(2, 2, 8, -1)),  # negative height
        _ann(40, bbox=(16, 2, 4, 4)),  # right of the image (x >= width)
        _ann(41, bbox=(-9, -9, 4, 4)),  # above and left of it
        _ann(50, bbox=(1, 2, 3)),  # three numbers
        _ann(60, category_id=99),  # unknown category
        _ann(70, image_id=123),  # unknown image
        _ann(80, segmentation={"size": [5, 5], "counts": "abc"}),  # wrong size
        _ann(81, segmentation={"size": [12, 16], "counts": [3, 4]}),  # runs do not cover
        _ann(90, segmentation=None),
    ]
    del anns[-1]["segmentation"]
    ds = _dataset(tmp_path, [_image(1, "a.png")], anns)
    assert ds.skipped == {
        "bad_polygon": [10, 11, 12],
        "empty_polygon": [20, 21],
        "empty_box": [30, 31],
        "box_outside_image": [40, 41],
        "bad_box": [50],
        "unknown_category": [60],
        "unknown_image": [70],
        "bad_rle": [80, 81],
        "missing_segmentation": [90],
    }
    assert ds.num_objects == 1
    _, target = ds[0]
    assert target["masks"].shape == (1, 12, 16)
    summary = ds.summary()
    assert "kept 1 objects" in summary and "skipped 15 annotations" in summary
    assert "skipped 3 (bad_polygon): ids 10, 11, 12" in summary


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda d: d.pop("images"), "'images'"),
        (lambda d: d.pop("annotations"), "'annotations'"),
        (lambda d: d.pop("categories"), "'categories'"),
        (lambda d: d["annotations"][0].pop("bbox"), "annotation id 1 is missing key 'bbox'"),
        (lambda d: d["annotations"][0].pop("category_id"), "id 1 is missing key 'category_id'"),
        (lambda d: d["annotations"][0].pop("image_id"), "id 1 is missing key 'image_id'"),
        (lambda d: d["images"][0].pop("height"), "image 1 is missing key 'height'"),
    ],
)
def test_missing_keys_raise_value_error_naming_file_and_key(tmp_path, edit, key):
    """Reference: the message text (exact substrings): the file path and the missing key,
    with the annotation or image id where there is one."""
    data = {
        "images": [_image(1, "a.png")],
        "annotations": [_ann(1)],
        "categories": [{"id": 0, "name": "zero"}],
    }
    edit(data)
    ann_file = tmp_path / "broken.json"
    ann_file.write_text(json.dumps(data))
    with pytest.raises(ValueError) as info:
        CocoDetection(tmp_path, ann_file)
    assert str(ann_file) in str(info.value) and key in str(info.value)


def test_missing_and_corrupt_images_warn_and_return_none(tmp_path):
    """Reference: the contract (None + a warning naming the file and image id, recorded in
    ``bad_images``); the good image still loads and ``valid_indices`` drops the missing and
    the header-less file. A size mismatch with the JSON is reported the same way."""
    _write_image(tmp_path / "good.png", "RGB")
    (tmp_path / "corrupt.png").write_bytes(b"this is not a png")
    _write_image(tmp_path / "small.png", "RGB", size=(8, 8))
    images = [
        _image(1, "good.png"),
        _image(2, "missing.png"),
        _image(3, "corrupt.png"),
        _image(4, "small.png"),
    ]
    ds = _dataset(tmp_path, images, [_ann(i, image_id=i) for i in (1, 2, 3, 4)])
    for index, name in ((1, "missing.png"), (2, "corrupt.png"), (3, "small.png")):
        with pytest.warns(UserWarning) as record:
            assert ds[index] is None
        message = str(record[0].message)
        assert name in message and f"image id {ds.ids[index]}" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ds[0] is not None
    assert sorted(ds.bad_images) == [2, 3, 4]
    assert ds.valid_indices() == [0, 3]  # small.png has a good header: found only by ds[3]
    assert "unreadable images so far: [2, 3, 4]" in ds.summary()


def test_image_without_objects_gives_empty_targets(tmp_path):
    """Reference: the documented empty shapes [0, 4], [0], [0, H, W], [0, 4] and dtypes
    (exact). Image 2 has only a crowd region, image 1 has nothing at all."""
    _write_image(tmp_path / "a.png", "RGB")
    _write_image(tmp_path / "b.png", "L")
    images = [_image(1, "a.png"), _image(2, "b.png")]
    ds = _dataset(tmp_path, images, [_ann(1, image_id=2, iscrowd=1)])
    for index, n_crowd in ((0, 0), (1, 1)):
        image, target = ds[index]
        assert image.shape == (3, 12, 16)
        assert target["boxes"].shape == (0, 4) and target["boxes"].dtype == np.float32
        assert target["labels"].shape == (0,) and target["labels"].dtype == np.int64
        assert target["masks"].shape == (0, 12, 16) and target["masks"].dtype == np.uint8
        assert target["crowd_boxes"].shape == (n_crowd, 4)
        assert target["crowd_boxes"].dtype == np.float32


def test_reads_the_shapes_dataset(tmp_path):
    """Reference: the generator's own JSON through pycocotools (``annToMask``, exact) on a
    few 64 x 64 images; its partly hidden shapes are compressed RLE with iscrowd 0 and must
    be objects, not crowd regions."""
    from minimask.data import make_shapes_dataset

    paths = make_shapes_dataset(str(tmp_path), n_train=6, n_val=0, size=64, seed=3)
    ds = CocoDetection(paths["train_images"], paths["train_annotations"])
    coco = COCO(paths["train_annotations"])
    assert ds.skipped == {} and ds.num_crowd == 0
    assert any(isinstance(a["segmentation"], dict) for a in coco.dataset["annotations"])
    assert ds.num_objects == len(coco.getAnnIds())
    assert ds.class_names == ["__background__", "circle", "square", "triangle"]
    for index, image_id in enumerate(ds.ids):
        _, target = ds[index]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        expected = np.stack([coco.annToMask(a) for a in anns])
        np.testing.assert_array_equal(target["masks"].numpy(), expected)
        np.testing.assert_array_equal(target["labels"].numpy(), [a["category_id"] for a in anns])


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"", "not a COCO JSON file"),
        (b"{images: []", "not a COCO JSON file"),
        (b"\xff\xfe\x00garbage", "not a COCO JSON file"),
        (b"[1, 2, 3]", "not a COCO instances file"),
    ],
)
def test_an_annotation_file_that_is_not_coco_json_names_the_file(tmp_path, content, problem):
    """A file that is not JSON (empty, broken, not UTF-8) or JSON of the wrong shape: one
    ValueError naming the file, and through the CLI a message without a traceback."""
    ann = tmp_path / "instances.json"
    ann.write_bytes(content)
    with pytest.raises(ValueError, match=problem) as error:
        CocoDetection(tmp_path, ann)
    assert str(ann) in str(error.value)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--train-images", str(tmp_path), "--train-ann", str(ann), "--out", "x"])
    assert str(exit_info.value.code).startswith("minimask train: ") and str(ann) in str(
        exit_info.value.code
    )


# ---------------------------------------------------------------------------- fuzz regressions
def _write_json(tmp_path, images, annotations, categories=({"id": 0, "name": "zero"},)):
    ann_file = tmp_path / "instances.json"
    data = {"images": images, "annotations": annotations, "categories": list(categories)}
    ann_file.write_text(json.dumps(data))
    return ann_file


@pytest.mark.parametrize(
    "images, annotations, problem",
    [
        ([_image(1, "a.png"), _image(1, "b.png")], [], "image id 1 is listed twice"),
        ([_image(1, "a.png")], [_ann(5), _ann(5)], "annotation id 5 is listed twice"),
        ([_image(None, "a.png")], [], "image #0 has id None, not an integer"),
        ([_image(True, "a.png")], [], "image #0 has id True, not an integer"),
        ([_image(1, None)], [], "image 1 has file_name None, not a file name"),
        ([_image(1, "")], [], "image 1 has file_name '', not a file name"),
        ([_image(1, "a.png", w=0)], [], "image 1 has width 0, not an integer in 1.."),
        ([_image(1, "a.png", h=-1)], [], "image 1 has height -1, not an integer in 1.."),
        ([_image(1, "a.png", h=12.0)], [], "image 1 has height 12.0, not an integer"),
        ([_image(1, "a.png", w=2**31)], [], "has width 2147483648, not an integer in 1.."),
        ([_image(1, "a.png")], [_ann("x")], "annotation #0 has id 'x', not an integer"),
    ],
)
def test_records_that_cannot_be_indexed_raise_naming_the_file(
    tmp_path, images, annotations, problem
):
    """Duplicate or non-integer ids, a file name that is not a string, a size that is not a
    positive integer: one ValueError naming the file and the record (reference: the
    message text), where they used to shadow a record silently (duplicates) or raise a
    TypeError from sorting or ``os.path.join`` mid-epoch."""
    ann_file = _write_json(tmp_path, images, annotations)
    with pytest.raises(ValueError) as info:
        CocoDetection(tmp_path, ann_file)
    assert str(ann_file) in str(info.value) and problem in str(info.value)


def test_boxes_are_clipped_to_the_image(tmp_path):
    """Reference: (x, y, x + w, y + h) clipped to [0, 16] x [0, 12] by hand (exact). A box
    reaching past the image, one of 1e39 pixels (inf in float32 unclipped) and one too thin
    for float32 at x = 8 (x2 == x1 after the cast) are clipped or skipped."""
    _write_image(tmp_path / "a.png", "RGB")
    anns = [
        _ann(1, bbox=(-3, 2, 8, 20)),
        _ann(2, bbox=(4, 4, 1e39, 1e39)),
        _ann(3, bbox=(8, 2, 1e-7, 4)),
        _ann(4, bbox=(2, 2, 10**400, 4)),  # an int too large for a float
    ]
    ds = _dataset(tmp_path, [_image(1, "a.png")], anns)
    assert ds.skipped == {"empty_box": [3], "bad_box": [4]}
    _, target = ds[0]
    np.testing.assert_array_equal(target["boxes"].numpy(), [[0, 2, 5, 12], [4, 4, 16, 12]])


def test_bad_iscrowd_corrupt_rle_and_far_polygons_are_skipped(tmp_path):
    """Reference: the reason each annotation was written to have (exact id lists). Before,
    iscrowd NaN made a crowd region, the compressed strings below made pycocotools raise
    mid-epoch or decode into memory it does not own (mask values other than 0 and 1), and
    the far vertex crashed pycocotools' polygon rasteriser."""
    _write_image(tmp_path / "a.png", "RGB")
    blank = {"size": [12, 16], "counts": [12 * 16]}
    anns = [
        _ann(1),
        _ann(10, iscrowd=float("nan")),
        _ann(11, iscrowd="1"),
        _ann(20, segmentation={"size": [12, 16], "counts": ""}),
        _ann(21, segmentation={"size": [12, 16], "counts": "@"}),  # not an RLE character
        _ann(22, segmentation={"size": [12, 16], "counts": "hC73"}),  # runs past 12 x 16
        _ann(23, segmentation={"size": [12, 16], "counts": "0R0R0"}),  # negative runs
        _ann(24, segmentation={"size": [12, 16], "counts": "o"}),  # ends inside a run
        _ann(25, segmentation={"size": 12, "counts": "abc"}),
        _ann(26, segmentation={"size": [12.0, 16.0], "counts": [192]}),
        _ann(30, segmentation=[[2.0, 2.0, 1e12, 2.0, 10.0, 10.0]]),
        _ann(40, segmentation=blank),
        _ann(50, iscrowd=1),
    ]
    del anns[-1]["segmentation"]
    ds = _dataset(tmp_path, [_image(1, "a.png")], anns)
    assert ds.skipped == {
        "bad_iscrowd": [10, 11],
        "bad_rle": [20, 21, 22, 23, 24, 25, 26],
        "bad_polygon": [30],
        "empty_rle": [40],
        "missing_segmentation": [50],
    }
    _, target = ds[0]
    assert target["masks"].shape == (1, 12, 16)


def test_compressed_rle_runs_match_the_masks_they_encode():
    """Reference: the column-major run lengths of random masks computed with NumPy, against
    the loader's decoding of pycocotools' ``encode`` of the same masks (exact)."""
    from minimask.data.coco import _compressed_rle_runs

    rng = np.random.default_rng(0)
    for height, width, density in ((12, 16, 0.5), (40, 7, 0.05), (300, 400, 0.999)):
        mask = (rng.random((height, width)) < density).astype(np.uint8)
        mask[rng.integers(height), :] = 1  # a long run
        flat = mask.flatten(order="F")
        changes = np.flatnonzero(np.diff(flat)) + 1
        runs = np.diff(np.concatenate([[0], changes, [flat.size]])).tolist()
        runs = runs if flat[0] == 0 else [0, *runs]
        counts = mask_utils.encode(np.asfortranarray(mask))["counts"].decode("ascii")
        assert _compressed_rle_runs(counts) == runs


def test_coco_index_holds_the_kept_annotations_with_area_and_iscrowd(tmp_path):
    """``ds.coco`` (what evaluation scores against) lists the kept annotations only, each
    with ``iscrowd`` and ``area``; without them COCOeval raised KeyError. References: the
    square's shoelace area 64 and the RLE's 32 foreground pixels, by hand (exact)."""
    from minimask.engine.coco_evaluation import evaluate_coco

    _write_image(tmp_path / "a.png", "RGB")
    mask = np.zeros((12, 16), np.uint8)
    mask[3:7, 4:12] = 1
    rle = mask_utils.encode(np.asfortranarray(mask))
    compressed = {"size": [12, 16], "counts": rle["counts"].decode("ascii")}
    anns = [_ann(1), _ann(2, bbox=(4, 3, 8, 4), segmentation=compressed), _ann(3, bbox=(1, 2))]
    del anns[0]["iscrowd"]
    anns[1]["area"] = "big"
    ds = _dataset(tmp_path, [_image(1, "a.png")], anns)
    assert sorted(ds.coco.anns) == [1, 2]
    assert ds.coco.anns[1]["iscrowd"] == 0 and ds.coco.anns[1]["area"] == 64.0
    assert ds.coco.anns[2]["area"] == 32
    results = [
        {"image_id": 1, "category_id": 0, "bbox": [2, 2, 8, 8], "score": 0.9},
        {"image_id": 1, "category_id": 0, "bbox": [4, 3, 8, 4], "score": 0.8},
    ]
    metrics = evaluate_coco(ds.coco, results, iou_types=("bbox",), verbose=False)
    assert metrics["bbox"]["AP"] == pytest.approx(1.0)  # both found; the skipped one not asked


def _header_only_png(width, height):
    """A PNG whose header claims ``width`` x ``height`` RGB pixels, with no pixel data."""
    import struct
    import zlib

    def chunk(kind, payload):
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def test_sixteen_bit_grayscale_keeps_its_high_byte(tmp_path):
    """Reference: ``values >> 8`` in NumPy, copied to three channels, / 255 (exact); Pillow's
    own conversion clipped every value above 255 to white."""
    values = np.random.default_rng(0).integers(0, 65536, (12, 16), dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "a.png")
    assert Image.open(tmp_path / "a.png").mode == "I;16"
    ds = _dataset(tmp_path, [_image(1, "a.png")], [_ann(1)])
    image, _ = ds[0]
    high = (values >> 8).astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(image.numpy(), np.stack([high] * 3))


@pytest.mark.parametrize("kind", ["int32", "float32", "bomb"])
def test_unscalable_and_oversized_images_are_bad_images(tmp_path, kind):
    """32-bit integer or float pixels (a TIFF: no 8-bit scale) and a PNG header claiming
    40000 x 40000 pixels (over Pillow's decompression-bomb limit): None, a warning naming
    the file and the image id, the image recorded in ``bad_images``."""
    if kind == "bomb":
        name, size = "a.png", {"w": 40000, "h": 40000}
        (tmp_path / name).write_bytes(_header_only_png(40000, 40000))
    else:
        name, size = "a.tif", {}
        Image.fromarray(np.ones((12, 16), getattr(np, kind))).save(tmp_path / name)
    ds = _dataset(tmp_path, [_image(1, name, **size)], [_ann(1)])
    with pytest.warns(UserWarning, match=rf"image id 1 \(.*{name}\): cannot read image"):
        assert ds[0] is None
    assert list(ds.bad_images) == [1]
