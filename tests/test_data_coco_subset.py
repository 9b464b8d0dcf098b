"""Tests of ``minimask.data.coco_subset`` and ``minimask coco-subset``. References: a
hand-built instances file whose expected subsets are written out by hand below, and, on
real COCO data (the folder MINIMASK_COCO names, see coco_data.py), the same selection
computed independently with plain ``json`` and loops; the documented seeded sample
(numpy's default_rng) for ``max_images``."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from coco_data import annotation_file, image_folder, needs_coco

from minimask.cli import main
from minimask.data import CocoDetection
from minimask.data.coco import PYCOCOTOOLS_NUMPY2_WARNING
from minimask.data.coco_subset import coco_subset, parse_category_names, write_coco_subset

pytestmark = pytest.mark.filterwarnings(f"ignore:{PYCOCOTOOLS_NUMPY2_WARNING}:DeprecationWarning")

CATEGORIES = [
    {"id": 1, "name": "person", "supercategory": "human"},
    {"id": 3, "name": "car", "supercategory": "vehicle"},
    {"id": 5, "name": "dog", "supercategory": "animal"},
]
# (annotation id, image id, category id, side of its square, iscrowd); area = side ** 2.
ANNOTATIONS = [
    (10, 1, 1, 10, 0),  # image 1: a person (100) and a car (49)
    (11, 1, 3, 7, 0),
    (20, 2, 1, 12, 1),  # image 2: only a crowd of persons
    (30, 3, 5, 10, 0),  # image 3: only a dog
    (40, 4, 3, 3, 0),  # image 4: a small car (9) and a crowd of cars (64)
    (41, 4, 3, 8, 1),
    (50, 5, 1, 6, 0),  # image 5: persons of 36 and 4, a dog
    (51, 5, 1, 2, 0),
    (52, 5, 5, 10, 0),
    (90, 99, 1, 5, 0),  # an image the file does not list
]  # image 6 has no annotation


def _annotation(ann_id, image_id, category_id, side, crowd):
    x = y = 4
    square = [x, y, x + side, y, x + side, y + side, x, y + side]
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "bbox": [x, y, side, side],
        "area": side * side,
        "iscrowd": crowd,
        "segmentation": [square],
    }


def hand_built():
    return {
        "info": {"description": "hand-built test file"},
        "licenses": [{"id": 1, "name": "test licence"}],
        "images": [
            {"id": i, "file_name": f"{i:03d}.png", "height": 32, "width": 48} for i in range(1, 7)
        ],
        "annotations": [_annotation(*row) for row in ANNOTATIONS],
        "categories": [dict(c) for c in CATEGORIES],
    }


def ids(records):
    return [r["id"] for r in records]


def counts(rows):
    return {r["name"]: (r["id"], r["images"], r["instances"], r["crowd"]) for r in rows}


# ---------------------------------------------------------------- the hand-built file
@pytest.mark.parametrize(
    "names, min_area, images, annotations, table",
    [
        # image 1 holds both categories and is listed once; image 2 (crowd only) and 3
        # (dog only) are left out; the dogs of image 5 and the unlisted image 99 too.
        (
            ["person", "car"],
            0,
            [1, 4, 5],
            [10, 11, 40, 41, 50, 51],
            {"person": (1, 2, 3, 0), "car": (3, 2, 2, 1)},
        ),
        # 36 keeps the person of area 36 (not below), drops the car of 9 (image 4, whose only
        # instance it was, goes with its crowd region) and the person of 4 in image 5.
        (
            ["person", "car"],
            36,
            [1, 5],
            [10, 11, 50],
            {"person": (1, 2, 2, 0), "car": (3, 1, 1, 0)},
        ),
        (["person", "car"], 37, [1], [10, 11], {"person": (1, 1, 1, 0), "car": (3, 1, 1, 0)}),
        (["car"], 0, [1, 4], [11, 40, 41], {"car": (3, 2, 2, 1)}),
        (["person"], 0, [1, 5], [10, 50, 51], {"person": (1, 2, 3, 0)}),
    ],
)
def test_hand_built_subsets(names, min_area, images, annotations, table):
    """The expected images, annotation ids and per-category counts are written by hand from
    ANNOTATIONS and the rules of the module docstring."""
    subset, rows = coco_subset(hand_built(), names, min_area=min_area)
    assert ids(subset["images"]) == images
    assert ids(subset["annotations"]) == annotations
    assert counts(rows) == table
    assert subset["categories"] == [c for c in CATEGORIES if c["name"] in names]
    assert subset["info"] == hand_built()["info"]
    assert subset["licenses"] == hand_built()["licenses"]
    assert list(subset) == ["info", "licenses", "images", "annotations", "categories"]


def test_records_are_copied_unchanged():
    """An image or annotation of the subset is the source's record, every field equal."""
    source = hand_built()
    subset, _ = coco_subset(source, ["person", "car"])
    by_id = {a["id"]: a for a in source["annotations"]}
    assert all(a == by_id[a["id"]] for a in subset["annotations"])
    assert subset["images"] == [source["images"][i - 1] for i in (1, 4, 5)]


def test_the_sample_is_the_documented_seeded_draw():
    """max_images 2 of the eligible images [1, 4, 5]: numpy's
    default_rng(seed).choice([1, 4, 5], 2, replace=False), sorted (the documented rule);
    the same seed gives the same images, the seeds 0..9 do not all give one subset, and a
    max_images of 3 or more keeps all three."""
    drawn = set()
    for seed in range(10):
        subset, rows = coco_subset(hand_built(), ["person", "car"], max_images=2, seed=seed)
        expected = sorted(np.random.default_rng(seed).choice([1, 4, 5], 2, replace=False))
        assert ids(subset["images"]) == expected
        again, _ = coco_subset(hand_built(), ["person", "car"], max_images=2, seed=seed)
        assert again == subset
        assert {a["image_id"] for a in subset["annotations"]} == set(expected)
        assert sum(r["instances"] + r["crowd"] for r in rows) == len(subset["annotations"])
        drawn.add(tuple(expected))
    assert len(drawn) > 1
    for max_images in (3, 4):
        subset, _ = coco_subset(hand_built(), ["person", "car"], max_images=max_images, seed=1)
        assert ids(subset["images"]) == [1, 4, 5]


def test_category_names_are_split_at_commas():
    assert parse_category_names(" person,car ,, traffic light,car") == [
        "person",
        "car",
        "traffic light",
    ]
    assert parse_category_names(" , ") == []


def test_an_unknown_category_lists_the_valid_ones():
    with pytest.raises(ValueError, match="no category named 'pedestrian'") as error:
        coco_subset(hand_built(), ["person", "pedestrian"], source="hand.json")
    assert "hand.json" in str(error.value)
    assert "its categories are: person, car, dog" in str(error.value)


@pytest.mark.parametrize(
    "edit, kwargs, problem",
    [
        (lambda d: d["annotations"][0].pop("area"), {"min_area": 1}, "annotation id 10 has no"),
        (lambda d: d["annotations"][0].update(area=float("nan")), {"min_area": 1}, "id 10"),
        (lambda d: d["images"].append(dict(d["images"][0])), {}, "images id 1 is listed twice"),
        (lambda d: d["annotations"][1].update(id=10), {}, "annotations id 10 is listed twice"),
        (lambda d: d["categories"][2].update(name="car"), {}, "'car' has several ids"),
        (lambda d: d["annotations"][3].pop("image_id"), {}, "annotations #3 is missing"),
        (lambda d: d.pop("categories"), {}, "no 'categories' list"),
        (lambda d: None, {"min_area": 101}, "no image holds an instance of person, car"),
        (lambda d: None, {"min_area": -1}, "min_area must be a finite number >= 0"),
        (lambda d: None, {"max_images": 0}, "max_images must be a positive"),
    ],
)
def test_bad_input_names_the_problem(edit, kwargs, problem):
    data = hand_built()
    edit(data)
    with pytest.raises(ValueError, match=problem):
        coco_subset(data, ["person", "car"], source="hand.json", **kwargs)


def test_an_image_without_area_is_fine_without_min_area():
    """area is only read when min_area asks for it (the subset of the first case above)."""
    data = hand_built()
    for annotation in data["annotations"]:
        del annotation["area"]
    subset, _ = coco_subset(data, ["person", "car"])
    assert ids(subset["annotations"]) == [10, 11, 40, 41, 50, 51]


# ---------------------------------------------------------------- the command line
@pytest.fixture
def hand_file(tmp_path):
    path = tmp_path / "instances_hand.json"
    path.write_text(json.dumps(hand_built()))
    return path


def test_the_cli_writes_the_subset_and_prints_the_table(hand_file, tmp_path, capsys):
    out = tmp_path / "sub" / "subset.json"
    code = main(
        ["coco-subset", "--ann", str(hand_file), "--categories", "person,car", "--out", str(out)]
    )
    assert code == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split() == ["category", "id", "images", "instances", "crowd"]
    assert printed[1].split() == ["person", "1", "2", "3", "0"]
    assert printed[2].split() == ["car", "3", "2", "2", "1"]
    assert printed[3].split() == ["all", "3", "5", "1"]  # images 1, 4 and 5 once each
    assert printed[4] == f"wrote {out}"
    written = json.loads(out.read_text())
    assert ids(written["images"]) == [1, 4, 5]
    assert ids(written["annotations"]) == [10, 11, 40, 41, 50, 51]
    assert os.listdir(out.parent) == ["subset.json"]
    dataset = CocoDetection(tmp_path, out)  # the loader takes it as any COCO file
    assert dataset.category_ids == [1, 3]
    assert dataset.class_names == ["__background__", "person", "car"]
    assert (dataset.num_objects, dataset.num_crowd, dataset.skipped) == (5, 1, {})


def test_an_unknown_category_exits_non_zero_without_a_traceback(hand_file, tmp_path):
    """Run as a user would (a subprocess): the message names the unknown name and every
    valid one; exit status 1; nothing written."""
    out = tmp_path / "subset.json"
    done = subprocess.run(
        [sys.executable, "-m", "minimask", "coco-subset", "--ann", str(hand_file)]
        + ["--categories", "person,pedestrian", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("minimask coco-subset: ")
    assert "no category named 'pedestrian'" in done.stderr
    assert "its categories are: person, car, dog" in done.stderr
    assert not out.exists()


def test_a_failed_write_leaves_the_old_file_and_no_partial_one(hand_file, tmp_path):
    """A NaN in the source (Python's json reads it; JSON cannot hold it) fails the write
    midway, after the images and annotations were written out: the file already at --out
    is unchanged and no temporary file is left."""
    data = hand_built()
    data["categories"][0]["rank"] = float("nan")  # written last, after every annotation
    hand_file.write_text(json.dumps(data))
    out = tmp_path / "out" / "subset.json"
    out.parent.mkdir()
    out.write_text("the previous subset")
    with pytest.raises(SystemExit, match="subset.json not written: .* a number JSON cannot"):
        main(["coco-subset", "--ann", str(hand_file), "--categories", "person", "--out", str(out)])
    assert out.read_text() == "the previous subset"
    assert os.listdir(out.parent) == ["subset.json"]


def test_the_cli_refuses_to_overwrite_its_source(hand_file):
    before = hand_file.read_text()
    with pytest.raises(SystemExit, match="would overwrite the file it is read from"):
        main(
            ["coco-subset", "--ann", str(hand_file), "--categories", "car", "--out", str(hand_file)]
        )
    assert hand_file.read_text() == before


@pytest.mark.parametrize(
    "flag, value, problem",
    [
        ("--max-images", "0", "argument --max-images: expected a positive whole number"),
        ("--max-images", "two", "argument --max-images: expected a positive whole number"),
        ("--categories", ",", "argument --categories: expected comma-separated category"),
    ],
)
def test_bad_flags_are_named(hand_file, tmp_path, capsys, flag, value, problem):
    args = {"--ann": str(hand_file), "--categories": "car", "--out": str(tmp_path / "s.json")}
    args[flag] = value
    with pytest.raises(SystemExit) as exit_info:
        main(["coco-subset", *[part for pair in args.items() for part in pair]])
    assert exit_info.value.code == 2
    assert problem in capsys.readouterr().err


# ---------------------------------------------------------------- real COCO data
def plain_json_selection(data, names, min_area):
    """The rules of the module docstring, written with dicts and loops only: (eligible
    image ids, ids of the annotations to keep given the kept images, per-category rows)."""
    chosen = {c["id"]: c["name"] for c in data["categories"] if c["name"] in names}
    listed = {image["id"] for image in data["images"]}
    mine = [
        a for a in data["annotations"] if a["category_id"] in chosen and a["image_id"] in listed
    ]
    instance = {a["id"]: not a["iscrowd"] and a["area"] >= min_area for a in mine}
    eligible = sorted({a["image_id"] for a in mine if instance[a["id"]]})

    def keep(image_ids):
        kept = [
            a for a in mine if a["image_id"] in image_ids and (instance[a["id"]] or a["iscrowd"])
        ]
        rows = {}
        for cid, name in chosen.items():
            objects = [a for a in kept if a["category_id"] == cid and not a["iscrowd"]]
            crowd = [a for a in kept if a["category_id"] == cid and a["iscrowd"]]
            rows[name] = (cid, len({a["image_id"] for a in objects}), len(objects), len(crowd))
        return sorted(a["id"] for a in kept), rows

    return eligible, keep


@needs_coco
@pytest.mark.parametrize("min_area", [0, 1000])
def test_real_coco_subset_matches_plain_json(min_area):
    data = json.loads(annotation_file("train").read_text())
    names = ["person", "car"]
    eligible, keep = plain_json_selection(data, names, min_area)
    subset, rows = coco_subset(data, names, min_area=min_area)
    expected_annotations, expected_rows = keep(set(eligible))
    assert ids(subset["images"]) == eligible
    assert sorted(ids(subset["annotations"])) == expected_annotations
    assert counts(rows) == expected_rows
    assert expected_rows["person"][3] > 0  # the file has crowds of persons: they are kept
    assert len(set(ids(subset["images"]))) == len(subset["images"])


@needs_coco
def test_real_coco_sample_and_loader(tmp_path):
    """A sample of 10 images with seed 3: the documented draw from the sorted eligible ids,
    their annotations as plain json selects them, and CocoDetection reads the file written
    (same counts, nothing skipped, an example with labels 1..2)."""
    data = json.loads(annotation_file("train").read_text())
    eligible, keep = plain_json_selection(data, ["person", "car"], 0)
    expected_images = sorted(np.random.default_rng(3).choice(eligible, 10, replace=False))
    out = tmp_path / "subset.json"
    rows, n_images = write_coco_subset(
        annotation_file("train"), out, ["person", "car"], max_images=10, seed=3
    )
    written = json.loads(out.read_text())
    expected_annotations, expected_rows = keep(set(expected_images))
    assert ids(written["images"]) == expected_images and n_images == 10
    assert sorted(ids(written["annotations"])) == expected_annotations
    assert counts(rows) == expected_rows

    dataset = CocoDetection(image_folder("train"), out)
    assert dataset.ids == expected_images
    assert dataset.category_ids == [1, 3]
    assert dataset.num_objects == sum(r["instances"] for r in rows)
    assert dataset.num_crowd == sum(r["crowd"] for r in rows)
    assert dataset.skipped == {}
    image, target = dataset[0]
    assert image.shape[0] == 3
    assert set(target["labels"].numpy().tolist()) <= {1, 2}


@needs_coco
def test_train_and_evaluate_take_a_subset(tmp_path, capsys):
    """coco-subset of both splits, then one training step of the tiny model and evaluate
    on the held-out subset, all through the command line: each exits 0 and writes its
    files; the checkpoint knows the subset's two categories."""
    files = {}
    for split in ("train", "val"):
        files[split] = tmp_path / f"{split}_subset.json"
        args = ["coco-subset", "--ann", str(annotation_file(split)), "--categories", "person,car"]
        assert main(args + ["--max-images", "2", "--out", str(files[split])]) == 0
    run = tmp_path / "run"
    train = ["train", "--train-images", str(image_folder("train")), "--train-ann"]
    train += [str(files["train"]), "--out", str(run), "--preset", "tiny", "--iters", "1"]
    assert main(train + ["--quiet"]) == 0
    evaluate = ["evaluate", "--checkpoint", str(run / "checkpoint.npz")]
    evaluate += ["--images", str(image_folder("val")), "--ann", str(files["val"])]
    assert main(evaluate + ["--out", str(tmp_path / "eval"), "--quiet"]) == 0
    assert (tmp_path / "eval" / "metrics.json").is_file()
    assert "segm" in capsys.readouterr().out
