"""Tests for the synthetic shapes dataset (minimask.data.shapes).

Every check here is exact (tolerance 0): masks, boxes, areas and bytes are integers.
"""

import hashlib
import json
import os

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from minimask.data import CATEGORIES, make_shapes_dataset

N_TRAIN, N_VAL, SIZE, SEED = 30, 10, 128, 0

# pycocotools' decode trips a NumPy 2 DeprecationWarning inside pycocotools; not ours.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _file_hashes(root):
    """``{relative path: sha256}`` of every file under ``root``."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    paths = make_shapes_dataset(str(root), n_train=N_TRAIN, n_val=N_VAL, size=SIZE, seed=SEED)
    return root, paths


def _splits(paths):
    for split, n in [("train", N_TRAIN), ("val", N_VAL)]:
        yield split, n, COCO(paths[f"{split}_annotations"]), paths[f"{split}_images"]


def _load(image_dir, info):
    return np.asarray(Image.open(os.path.join(image_dir, info["file_name"])))


def test_layout_counts_sizes_and_categories(dataset):
    """Reference: the requested arguments and the 3 documented categories. Tolerance: exact."""
    root, paths = dataset
    assert paths["train_annotations"] == str(root / "annotations" / "instances_train.json")
    assert paths["val_annotations"] == str(root / "annotations" / "instances_val.json")
    for split, n, coco, image_dir in _splits(paths):
        assert image_dir == str(root / "images" / split)
        assert len(coco.getImgIds()) == n
        assert len(os.listdir(image_dir)) == n
        cats = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
        assert cats == {1: "circle", 2: "square", 3: "triangle"}
        for info in coco.loadImgs(coco.getImgIds()):
            img = Image.open(os.path.join(image_dir, info["file_name"]))
            assert img.mode == "RGB"
            assert img.size == (SIZE, SIZE) == (info["width"], info["height"])
            n_anns = len(coco.getAnnIds(imgIds=info["id"]))
            assert 1 <= n_anns <= 4
    assert [c["id"] for c in CATEGORIES] == [1, 2, 3]


def test_masks_equal_rerasterized_visible_parts(dataset):
    """Reference: each image's shapes re-rasterized in the test from the stored full polygons
    (pycocotools frPyObjects/decode), painted in the stored order, each minus all later ones.
    Tolerance: exact pixel equality with annToMask."""
    _, paths = dataset
    for _, _, coco, _ in _splits(paths):
        for image_id in coco.getImgIds():
            anns = sorted(
                coco.loadAnns(coco.getAnnIds(imgIds=image_id)), key=lambda a: a["shape"]["order"]
            )
            assert [a["shape"]["order"] for a in anns] == list(range(len(anns)))
            full = []
            for a in anns:
                rle = mask_utils.merge(mask_utils.frPyObjects([a["shape"]["polygon"]], SIZE, SIZE))
                full.append(mask_utils.decode(rle).astype(bool))
            for i, a in enumerate(anns):
                expected = full[i].copy()
                for later in full[i + 1 :]:
                    expected &= ~later
                np.testing.assert_array_equal(coco.annToMask(a).astype(bool), expected)


def test_masks_equal_painted_pixels(dataset):
    """Reference: the PNG itself; an instance's visible pixels are exactly those painted in its
    colour (colours are distinct from each other and from the noisy background), and no pixel
    outside every annotation has a shape colour. Tolerance: exact."""
    _, paths = dataset
    for _, _, coco, image_dir in _splits(paths):
        for info in coco.loadImgs(coco.getImgIds()):
            pixels = _load(image_dir, info)
            union = np.zeros((SIZE, SIZE), dtype=bool)
            for a in coco.loadAnns(coco.getAnnIds(imgIds=info["id"])):
                painted = (pixels == np.array(a["shape"]["color"], dtype=np.uint8)).all(axis=-1)
                np.testing.assert_array_equal(coco.annToMask(a).astype(bool), painted)
                union |= painted
            # The background is one colour +-8 per channel: its spread is at most 16.
            background = pixels[~union].astype(int)
            assert (background.max(axis=0) - background.min(axis=0)).max() <= 16


def test_bbox_area_nonempty_and_segmentation_kind(dataset):
    """Reference: box and area recomputed from the decoded mask with numpy (COCO convention,
    pixel (r, c) covers [c, c+1) x [r, r+1)). Tolerance: exact. Also: no empty or tiny
    annotation (visible area >= 128 * 128 // 500 = 32 px, the default min_area), iscrowd 0,
    polygons exactly for unoccluded shapes and RLE for occluded ones."""
    _, paths = dataset
    n_rle = 0
    for _, _, coco, _ in _splits(paths):
        for a in coco.loadAnns(coco.getAnnIds()):
            m = coco.annToMask(a).astype(bool)
            ys, xs = np.nonzero(m)
            assert m.sum() >= SIZE * SIZE // 500
            assert a["area"] == float(m.sum())
            w, h = xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()
            assert a["bbox"] == [float(xs.min()), float(ys.min()), float(w), float(h)]
            assert a["iscrowd"] == 0
            assert a["category_id"] == {"circle": 1, "square": 2, "triangle": 3}[a["shape"]["kind"]]
            full = mask_utils.decode(
                mask_utils.merge(mask_utils.frPyObjects([a["shape"]["polygon"]], SIZE, SIZE))
            ).astype(bool)
            if isinstance(a["segmentation"], list):
                assert a["segmentation"] == [a["shape"]["polygon"]]
                np.testing.assert_array_equal(m, full)
            else:
                n_rle += 1
                assert a["segmentation"]["size"] == [SIZE, SIZE]
                assert m.sum() < full.sum()
    assert n_rle > 0, "the dataset should contain some occluded instances"


def test_shapes_have_expected_vertex_counts(dataset):
    """Reference: circle = 48 vertices, square = 4 (equal sides), triangle = 3.
    Tolerance: side lengths equal within 0.02 px (vertices are rounded to 2 decimals)."""
    _, paths = dataset
    with open(paths["train_annotations"]) as f:
        data = json.load(f)
    for a in data["annotations"]:
        xy = np.array(a["shape"]["polygon"]).reshape(-1, 2)
        n = {"circle": 48, "square": 4, "triangle": 3}[a["shape"]["kind"]]
        assert len(xy) == n
        assert (xy >= 0).all() and (xy <= SIZE).all()
        if n == 4:
            sides = np.linalg.norm(xy - np.roll(xy, 1, axis=0), axis=1)
            assert np.ptp(sides) <= 0.02


def test_same_seed_same_bytes_different_seed_different(tmp_path, dataset):
    """Reference: sha256 of every written file. Tolerance: byte-identical for the same seed;
    some file differs for another seed."""
    root, _ = dataset
    again = tmp_path / "again"
    make_shapes_dataset(str(again), n_train=N_TRAIN, n_val=N_VAL, size=SIZE, seed=SEED)
    reference = _file_hashes(str(root))
    assert _file_hashes(str(again)) == reference
    other = tmp_path / "other"
    make_shapes_dataset(str(other), n_train=N_TRAIN, n_val=N_VAL, size=SIZE, seed=SEED + 1)
    other_hashes = _file_hashes(str(other))
    assert other_hashes.keys() == reference.keys()
    for name in ["annotations/instances_train.json", "annotations/instances_val.json"]:
        assert other_hashes[name] != reference[name]


def test_val_split_does_not_depend_on_n_train(tmp_path, dataset):
    """Reference: the val files of the module dataset. Tolerance: byte-identical."""
    root, _ = dataset
    make_shapes_dataset(str(tmp_path), n_train=3, n_val=N_VAL, size=SIZE, seed=SEED)
    val = {k: v for k, v in _file_hashes(str(root)).items() if "val" in k}
    assert {k: v for k, v in _file_hashes(str(tmp_path)).items() if "val" in k} == val


def test_other_image_size(tmp_path):
    """Reference: the requested size 64. Tolerance: exact."""
    paths = make_shapes_dataset(str(tmp_path), n_train=4, n_val=0, size=64, seed=3)
    coco = COCO(paths["train_annotations"])
    assert len(coco.getImgIds()) == 4 and len(COCO(paths["val_annotations"]).getImgIds()) == 0
    for info in coco.loadImgs(coco.getImgIds()):
        assert Image.open(os.path.join(paths["train_images"], info["file_name"])).size == (64, 64)
        assert len(coco.getAnnIds(imgIds=info["id"])) >= 1


def test_invalid_arguments(tmp_path):
    """Reference: the documented argument checks."""
    with pytest.raises(ValueError, match="size"):
        make_shapes_dataset(str(tmp_path), size=16)
    with pytest.raises(ValueError, match="min_area"):
        make_shapes_dataset(str(tmp_path), size=64, min_area=64 * 64 // 200 + 1)
    with pytest.raises(ValueError, match="n_train"):
        make_shapes_dataset(str(tmp_path), n_train=-1)


def test_large_min_area_drops_small_visible_parts(tmp_path):
    """Reference: min_area=80 on 128 x 128 images (the largest allowed is 81). Tolerance: exact.
    Every kept annotation has a visible area >= 80, and dropped shapes are not painted: every
    pixel outside the annotations is background (spread <= 16 around one colour)."""
    paths = make_shapes_dataset(str(tmp_path), n_train=20, n_val=0, seed=7, min_area=80)
    coco = COCO(paths["train_annotations"])
    for info in coco.loadImgs(coco.getImgIds()):
        pixels = _load(paths["train_images"], info)
        union = np.zeros((SIZE, SIZE), dtype=bool)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=info["id"]))
        assert len(anns) >= 1
        for a in anns:
            m = coco.annToMask(a).astype(bool)
            assert a["area"] == m.sum() >= 80
            np.testing.assert_array_equal(
                m, (pixels == np.array(a["shape"]["color"], dtype=np.uint8)).all(axis=-1)
            )
            union |= m
        background = pixels[~union].astype(int)
        assert (background.max(axis=0) - background.min(axis=0)).max() <= 16
