"""Tests of multi-scale training (config ``min_size_train``, ``minimask train
--min-size-train``): the size drawn for each image (``minimask.engine.batches``), the resize
that follows it (``minimask.models.transform``), the config and checkpoint that keep it, and
resuming. References: the documented draw (batches.py docstring), sizes, boxes and pixel
positions computed by hand, the single-scale stream, and an uninterrupted run."""

import dataclasses
import json
import os

import numpy as np
import pytest

import minimask
from minimask.cli import main
from minimask.data.coco import PYCOCOTOOLS_NUMPY2_WARNING, CocoDetection
from minimask.data.shapes import make_shapes_dataset
from minimask.engine.batches import TrainingBatches
from minimask.engine.checkpoint import load_model, read_checkpoint, save_checkpoint
from minimask.engine.trainer import CHECKPOINT_NAME, LOG_NAME, train
from minimask.models import transform as transform_module
from minimask.models.config import MaskRCNNConfig
from minimask.models.mask_rcnn import MaskRCNN
from minimask.models.transform import RCNNTransform
from minimask.serialization import load, save

SIZES = (160, 176, 192)
SIZE_STREAM = 1_000_033  # the documented key of the size draws
pytestmark = pytest.mark.filterwarnings(f"ignore:{PYCOCOTOOLS_NUMPY2_WARNING}:DeprecationWarning")


class Pictures:
    """n random 20 x 30 images, each with one box: a dataset as TrainingBatches reads it."""

    def __init__(self, n):
        rng = np.random.default_rng(0)
        self.images = [rng.random((3, 20, 30), dtype=np.float32) for _ in range(n)]

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        masks = np.zeros((1, 20, 30), np.uint8)
        masks[0, 5:10, 4:12] = 1
        target = {
            "boxes": minimask.tensor(np.array([[4.0, 5.0, 12.0, 10.0]], np.float32)),
            "labels": minimask.tensor(np.array([1], np.int64)),
            "masks": minimask.tensor(masks),
            "image_id": index,
        }
        return minimask.tensor(self.images[index]), target


# ----------------------------------------------------------------------------- the draw
def test_sizes_are_the_documented_draw():
    """Position p of batch s gets SIZES[default_rng((seed, 1_000_033, s)).integers(3, B)[p]]
    as target["min_size"]; the sizes come from the list, a second instance draws the same,
    they differ between the images of one batch and between steps, and another seed draws
    others."""
    batch, seed = 3, 7
    batches = TrainingBatches(Pictures(5), batch, seed, min_sizes=SIZES)
    again = TrainingBatches(Pictures(5), batch, seed, min_sizes=SIZES)
    drawn = []
    for step in range(12):
        picks = np.random.default_rng((seed, SIZE_STREAM, step)).integers(3, size=batch)
        expected = [SIZES[k] for k in picks]
        _, targets = batches[step]
        assert [t["min_size"] for t in targets] == expected == again.sizes(step)
        drawn.append(expected)
    assert {size for sizes in drawn for size in sizes} == set(SIZES)
    assert any(len(set(sizes)) > 1 for sizes in drawn)
    assert len({tuple(sizes) for sizes in drawn}) > 1
    other = TrainingBatches(Pictures(5), batch, seed + 1, min_sizes=SIZES)
    assert [other.sizes(step) for step in range(12)] != drawn


def test_the_draw_leaves_the_order_and_the_flips_alone():
    """With and without sizes, batch s holds the same images (bitwise, flipped or not) and
    the same targets but for the "min_size" key, which single-scale targets do not get: the
    single-scale stream is the one it was before multi-scale training."""
    plain = TrainingBatches(Pictures(5), 2, 3, flip_prob=0.5)
    multi = TrainingBatches(Pictures(5), 2, 3, flip_prob=0.5, min_sizes=SIZES)
    flipped = 0
    for step in range(10):
        (images_a, targets_a), (images_b, targets_b) = plain[step], multi[step]
        assert plain.indices(step) == multi.indices(step)
        for index, a, b, ta, tb in zip(
            plain.indices(step), images_a, images_b, targets_a, targets_b
        ):
            assert np.array_equal(a.numpy(), b.numpy())
            flipped += not np.array_equal(a.numpy(), Pictures(5).images[index])
            assert "min_size" not in ta and tb["min_size"] in SIZES
            assert set(tb) == set(ta) | {"min_size"}
            for key in ("boxes", "masks", "labels"):
                assert np.array_equal(ta[key].numpy(), tb[key].numpy())
    assert 0 < flipped < 20  # the stream does flip some images and not others


# ----------------------------------------------------------------------------- the resize
def block_image():
    """A 40 x 60 black image with a white block on rows 10..19, columns 15..29: its box is
    (15, 10, 30, 20)."""
    pixels = np.zeros((3, 40, 60), np.float32)
    pixels[:, 10:20, 15:30] = 1.0
    masks = (pixels[:1] > 0).astype(np.uint8)
    target = {
        "boxes": minimask.tensor(np.array([[15.0, 10.0, 30.0, 20.0]], np.float32)),
        "labels": minimask.tensor(np.array([1], np.int64)),
        "masks": minimask.tensor(masks),
    }
    return minimask.tensor(pixels), target


@pytest.mark.parametrize(
    "min_size, size, box",
    [
        # scale min(80 / 40, 200 / 60) = 2
        (80, (80, 120), (30.0, 20.0, 60.0, 40.0)),
        # scale min(100 / 40, 200 / 60) = 2.5
        (100, (100, 150), (37.5, 25.0, 75.0, 50.0)),
        # the cap: min(160 / 40, 200 / 60) = 3.33..., floor(40 * 3.33...) = 133, 60 -> 200;
        # x times 200 / 60, y times 133 / 40 = 3.325
        (160, (133, 200), (50.0, 33.25, 100.0, 66.5)),
    ],
)
def test_an_image_and_its_box_are_resized_together(min_size, size, box):
    """By hand: the drawn size replaces the config's 64, max_size 200 caps it; the box is
    scaled by the same factors as the image, and mask_scale maps it back to the original
    masks (original / resized). The white block of the resized image lies where the box
    says: bilinear resizing (align_corners=False) by a factor s reads output pixel centre c
    at source c / s, so a centre at least s / 2 inside the box edges is pure white and one
    at least s / 2 outside is pure black (box rtol 1e-6, pixels rtol 1e-6 of the normalised
    values: float32 sums of bilinear weights)."""
    cfg = dataclasses.replace(MaskRCNNConfig.tiny(2), max_size=200, min_size_train=SIZES)
    image, target = block_image()
    batch, image_sizes, targets = RCNNTransform(cfg)([image], [{**target, "min_size": min_size}])
    assert image_sizes == [size]
    np.testing.assert_allclose(targets[0]["boxes"].numpy(), [box], rtol=1e-6)
    assert targets[0]["mask_scale"] == (60 / size[1], 40 / size[0])

    red = batch.numpy()[0, 0, : size[0], : size[1]]
    white = (1 - cfg.image_mean[0]) / cfg.image_std[0]
    black = (0 - cfg.image_mean[0]) / cfg.image_std[0]
    x1, y1, x2, y2 = box
    rows, columns = (np.arange(n) + 0.5 for n in size)
    half_y, half_x = size[0] / 40 / 2, size[1] / 60 / 2
    inside_rows = (rows >= y1 + half_y) & (rows <= y2 - half_y)
    inside_columns = (columns >= x1 + half_x) & (columns <= x2 - half_x)
    outside_rows = (rows <= y1 - half_y) | (rows >= y2 + half_y)
    outside_columns = (columns <= x1 - half_x) | (columns >= x2 + half_x)
    assert inside_rows.sum() >= 8 and inside_columns.sum() >= 13  # most of the block
    np.testing.assert_allclose(red[np.ix_(inside_rows, inside_columns)], white, rtol=1e-6)
    np.testing.assert_allclose(red[outside_rows], black, rtol=1e-6)
    np.testing.assert_allclose(red[:, outside_columns], black, rtol=1e-6)


def test_inference_and_targets_without_a_size_use_the_config_size():
    """The tiny config's 64 / 96: a 40 x 60 image becomes 64 x 96 (scale 1.6) without
    targets (inference) and with a target that has no "min_size", whatever min_size_train."""
    cfg = MaskRCNNConfig.tiny(2, min_size_train=SIZES)
    transform = RCNNTransform(cfg)
    image, target = block_image()
    assert transform([image])[1] == [(64, 96)]
    assert transform([image], [target])[1] == [(64, 96)]


@pytest.mark.parametrize("bad", [0, -5, 1.5, True, "160"])
def test_a_bad_target_size_is_named(bad):
    image, target = block_image()
    with pytest.raises(ValueError, match="target 0: min_size must be a whole number >= 1"):
        RCNNTransform(MaskRCNNConfig.tiny(2))([image], [{**target, "min_size": bad}])


# ----------------------------------------------------------------------------- the config
def test_the_option_round_trips_through_the_config_and_a_checkpoint(tmp_path):
    """to_dict -> JSON -> from_dict gives the same config; a checkpoint's model has it; the
    default is (), single-scale training."""
    assert MaskRCNNConfig.tiny(2).min_size_train == ()
    cfg = MaskRCNNConfig.tiny(2, min_size_train=SIZES)
    assert MaskRCNNConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    path = tmp_path / "model.npz"
    save_checkpoint(path, MaskRCNN(cfg), 0, {"category_ids": [1, 2]})
    model, meta = load_model(path)
    assert model.cfg.min_size_train == SIZES and meta["config"]["min_size_train"] == list(SIZES)


@pytest.mark.parametrize("bad", [(0,), (160, -1), (160.0,), (True,), [160], "160"])
def test_bad_config_sizes_are_refused(bad):
    with pytest.raises(ValueError, match="min_size_train must be a tuple of shortest sides"):
        MaskRCNNConfig.tiny(2, min_size_train=bad)


# ----------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    return make_shapes_dataset(str(root), n_train=6, n_val=2, size=64, seed=0)


@pytest.fixture(scope="module")
def train_set(shapes):
    return CocoDetection(shapes["train_images"], shapes["train_annotations"])


def multi_cfg(train_set, **overrides):
    values = {"max_iters": 4, "checkpoint_period": 2, "min_size_train": (48, 64, 80)}
    return MaskRCNNConfig.tiny(len(train_set.category_ids), **{**values, **overrides})


def read_losses(run):
    with open(os.path.join(run, LOG_NAME), encoding="utf-8") as log:
        return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in log]


def crash_at_step_3(cfg, train_set, out, monkeypatch):
    """Train until step 3 fails: the checkpoint holds 2 steps, the log 3."""

    class Crash(Exception):
        pass

    original = TrainingBatches.examples

    def crash(self, step, positions=None):
        if step == 3:
            raise Crash
        return original(self, step, positions)

    with monkeypatch.context() as patch:
        patch.setattr(TrainingBatches, "examples", crash)
        with pytest.raises(Crash):
            train(cfg, train_set, out, progress=False)


@pytest.fixture(scope="module")
def multi_run(train_set, tmp_path_factory):
    """Four steps of multi-scale training in one go, recording the size of every image the
    model's transform resized."""
    out = str(tmp_path_factory.mktemp("multi"))
    seen = []
    original = transform_module.RCNNTransform.__call__

    def record(self, images, targets=None):
        batch, image_sizes, new_targets = original(self, images, targets)
        seen.append(image_sizes)
        return batch, image_sizes, new_targets

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(transform_module.RCNNTransform, "__call__", record)
        train(multi_cfg(train_set), train_set, out, progress=False)
    return out, seen


def test_training_resizes_each_image_to_its_drawn_size(train_set, multi_run):
    """The 64 x 64 shapes images reach the network at the drawn side (48, 64 or 80, all
    under the tiny config's cap of 96), and the run differs from single-scale training."""
    out, seen = multi_run
    cfg = multi_cfg(train_set)
    batches = TrainingBatches(train_set, cfg.batch_size, cfg.seed, min_sizes=cfg.min_size_train)
    assert seen == [[(s, s) for s in batches.sizes(step)] for step in range(4)]
    assert len({s for sizes in seen for s in sizes}) > 1
    single = str(os.path.join(os.path.dirname(out), "single"))
    train(multi_cfg(train_set, min_size_train=()), train_set, single, progress=False)
    assert read_losses(single) != read_losses(out)


def test_a_resumed_multi_scale_run_equals_the_uninterrupted_one(
    train_set, multi_run, tmp_path, monkeypatch
):
    """The draws are a function of (seed, step), so a run stopped after its checkpoint at
    step 2 and resumed logs bitwise the losses of the uninterrupted run."""
    out = str(tmp_path / "resumed")
    cfg = multi_cfg(train_set)
    crash_at_step_3(cfg, train_set, out, monkeypatch)
    train(cfg, train_set, out, resume=True, progress=False)
    assert read_losses(out) == read_losses(multi_run[0])


def test_a_checkpoint_without_the_field_resumes(train_set, tmp_path, monkeypatch):
    """A checkpoint whose config predates min_size_train (the key removed from its meta)
    resumes as single-scale training, with the losses of an uninterrupted run."""
    cfg = multi_cfg(train_set, min_size_train=())
    reference = str(tmp_path / "reference")
    train(cfg, train_set, reference, progress=False)

    out = str(tmp_path / "old")
    crash_at_step_3(cfg, train_set, out, monkeypatch)
    path = os.path.join(out, CHECKPOINT_NAME)
    state = load(path)
    meta = json.loads(bytes(state["meta"].numpy()).decode("utf-8"))
    del meta["config"]["min_size_train"]
    state["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    save(state, path)
    assert "min_size_train" not in read_checkpoint(path)[0]["config"]
    train(cfg, train_set, out, resume=True, progress=False)
    assert read_losses(out) == read_losses(reference)


# ----------------------------------------------------------------------------- the flag
def train_args(shapes, out, *extra):
    return [
        "train",
        "--train-images",
        shapes["train_images"],
        "--train-ann",
        shapes["train_annotations"],
        "--out",
        str(out),
        "--preset",
        "tiny",
        "--iters",
        "1",
        "--quiet",
        *extra,
    ]


def test_the_flag_reaches_the_saved_config(shapes, tmp_path, capsys):
    """--min-size-train 48,80 is kept in the checkpoint's config; --min-size stays the
    single test size."""
    assert main(train_args(shapes, tmp_path, "--min-size", "64", "--min-size-train", "48,80")) == 0
    config = read_checkpoint(tmp_path / CHECKPOINT_NAME)[0]["config"]
    assert (config["min_size_train"], config["min_size"]) == ([48, 80], 64)


@pytest.mark.parametrize("value", ["160,x", "0,160", "", "160,,176", "-1"])
def test_a_bad_flag_value_is_named(shapes, tmp_path, capsys, value):
    with pytest.raises(SystemExit) as exit_info:
        main(train_args(shapes, tmp_path, f"--min-size-train={value}"))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --min-size-train: expected comma-separated sides in pixels" in err
    assert f"got {value!r}" in err
    assert not (tmp_path / CHECKPOINT_NAME).exists()
