"""Tests of the training engine (``minimask.engine.trainer``, ``batches``, ``checkpoint``) on
the tiny model and a tiny shapes dataset. References: an uninterrupted run of the same
config (resume), the documented data stream (batches.py docstring), detectron2's warm-up and
step-decay formula (the logged lr), and the arrays that were saved (checkpoints)."""

import json
import math
import os
import shutil

import numpy as np
import pytest
from PIL import Image

import minimask
from minimask.data.coco import PYCOCOTOOLS_NUMPY2_WARNING, CocoDetection
from minimask.data.shapes import make_shapes_dataset
from minimask.engine.batches import TrainingBatches
from minimask.engine.checkpoint import (
    load_model,
    read_checkpoint,
    restore_generator,
    save_checkpoint,
)
from minimask.engine.trainer import (
    CHECKPOINT_NAME,
    LOG_NAME,
    LOSS_CURVE_NAME,
    NONFINITE_CHECKPOINT_NAME,
    NonFiniteLossError,
    dataset_meta,
    train,
)
from minimask.models.config import MaskRCNNConfig
from minimask.models.mask_rcnn import LOSS_NAMES, MaskRCNN

STEPS = 6
PERIOD = 3
LOG_KEYS = {"step", "lr", "loss", *LOSS_NAMES, "seconds"}
# make_shapes_dataset decodes masks with pycocotools, which warns about its own NumPy 2 use.
pytestmark = pytest.mark.filterwarnings(f"ignore:{PYCOCOTOOLS_NUMPY2_WARNING}:DeprecationWarning")


def tiny_cfg(num_classes, **overrides):
    values = {"max_iters": STEPS, "checkpoint_period": PERIOD, "batch_size": 2}
    values.update(overrides)
    return MaskRCNNConfig.tiny(num_classes, **values)


def read_log(run_dir):
    with open(os.path.join(run_dir, LOG_NAME), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def without_seconds(rows):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def assert_same_arrays(a, b, what):
    assert sorted(a) == sorted(b), what
    for key in a:
        x, y = a[key].numpy(), b[key].numpy()
        assert x.dtype == y.dtype and x.shape == y.shape, f"{what}: {key}"
        assert np.array_equal(x, y), f"{what}: {key} differs"


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    paths = make_shapes_dataset(str(root), n_train=6, n_val=3, size=64, seed=0)
    paths["root"] = str(root)
    return paths


@pytest.fixture(scope="module")
def train_set(shapes):
    return CocoDetection(shapes["train_images"], shapes["train_annotations"])


@pytest.fixture(scope="module")
def run_a(train_set, tmp_path_factory):
    """The reference: STEPS steps in one go, checkpoints every PERIOD steps."""
    out = str(tmp_path_factory.mktemp("run_a"))
    cfg = tiny_cfg(len(train_set.category_ids))
    summary = train(cfg, train_set, out, progress=False)
    return {"cfg": cfg, "dir": out, "summary": summary}


# ----------------------------------------------------------------------------- resume
def test_resumed_run_equals_the_uninterrupted_run(train_set, run_a, tmp_path, monkeypatch):
    """A run stopped after step 3 was logged (its last checkpoint is at 3 steps) and then
    resumed logs exactly (bitwise) the losses and lr of the uninterrupted run for all steps
    and ends with identical weights, momentum buffers and scheduler state
    (reference: run A, same config)."""
    cfg = run_a["cfg"]
    out = str(tmp_path / "run_b")

    class Crash(Exception):
        pass

    original = TrainingBatches.examples

    def crash_at_step_4(self, step, positions=None):
        if step == 4:
            raise Crash
        return original(self, step, positions)

    with monkeypatch.context() as patch:
        patch.setattr(TrainingBatches, "examples", crash_at_step_4)
        with pytest.raises(Crash):
            train(cfg, train_set, out, progress=False)
    # The interrupted state: steps 0..3 logged, the checkpoint holds 3 steps, so step 3's
    # log line must be dropped and step 3 redone.
    assert [r["step"] for r in read_log(out)] == [0, 1, 2, 3]
    assert read_checkpoint(os.path.join(out, CHECKPOINT_NAME))[0]["step"] == PERIOD

    summary = train(cfg, train_set, out, resume=True, progress=False)
    assert summary["steps"] == STEPS - PERIOD

    reference = read_log(run_a["dir"])
    resumed = read_log(out)
    assert [r["step"] for r in resumed] == list(range(STEPS))
    assert without_seconds(resumed) == without_seconds(reference)

    meta_a, parts_a = read_checkpoint(os.path.join(run_a["dir"], CHECKPOINT_NAME))
    meta_b, parts_b = read_checkpoint(os.path.join(out, CHECKPOINT_NAME))
    assert meta_a["step"] == meta_b["step"] == STEPS
    assert meta_b["generator"] == meta_a["generator"]
    for part in ("model", "optimizer", "scheduler"):
        assert_same_arrays(parts_a[part], parts_b[part], part)


def test_resume_refuses_a_changed_config(train_set, run_a, tmp_path):
    """Resuming with other settings raises ValueError naming the changed fields and the run
    folder, before touching the run's files (reference: the fields that were changed)."""
    out = str(tmp_path / "run")
    shutil.copytree(run_a["dir"], out)
    log_before = open(os.path.join(out, LOG_NAME), encoding="utf-8").read()
    changed = tiny_cfg(len(train_set.category_ids), base_lr=0.01, seed=1)
    with pytest.raises(ValueError, match="other settings") as error:
        train(changed, train_set, out, resume=True, progress=False)
    message = str(error.value)
    assert "'base_lr'" in message and "'seed'" in message and out in message
    assert open(os.path.join(out, LOG_NAME), encoding="utf-8").read() == log_before


def test_resume_error_names_only_the_changed_fields(train_set, run_a, tmp_path):
    """The ValueError lists exactly the fields that differ (reference: base_lr and seed),
    and resuming with the unchanged config is accepted."""
    out = str(tmp_path / "run")
    shutil.copytree(run_a["dir"], out)
    changed = tiny_cfg(len(train_set.category_ids), base_lr=0.01, seed=1)
    with pytest.raises(ValueError) as error:
        train(changed, train_set, out, resume=True, progress=False)
    assert str(error.value).endswith("['base_lr', 'seed']")
    # The same config resumes a finished run: nothing left to do, the log is kept.
    summary = train(run_a["cfg"], train_set, out, resume=True, progress=False)
    assert summary["steps"] == 0
    assert without_seconds(read_log(out)) == without_seconds(read_log(run_a["dir"]))


def test_resume_without_a_checkpoint_raises_file_not_found(train_set, tmp_path):
    """--resume in a folder with no checkpoint.npz: FileNotFoundError naming the path."""
    out = str(tmp_path / "empty")
    cfg = tiny_cfg(len(train_set.category_ids))
    with pytest.raises(FileNotFoundError, match="no checkpoint") as error:
        train(cfg, train_set, out, resume=True, progress=False)
    assert os.path.join(out, CHECKPOINT_NAME) in str(error.value)


# ----------------------------------------------------------------------------- NaN stop
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_non_finite_loss_stops_with_the_step_terms_and_a_checkpoint(train_set, tmp_path):
    """base_lr = 1e30 with no warm-up blows the weights up in the first update, so step 1's
    loss is non-finite: NonFiniteLossError names step 1 and every term, the state that gave
    it is in checkpoint_nonfinite.npz (step 1), and restoring that state reproduces the
    non-finite loss on batch 1 (reference: the documented contract)."""
    out = str(tmp_path / "nan")
    cfg = tiny_cfg(len(train_set.category_ids), base_lr=1e30, warmup_iters=0)
    with pytest.raises(NonFiniteLossError) as caught:
        train(cfg, train_set, out, progress=False)
    error = caught.value
    assert error.step == 1
    assert isinstance(error, FloatingPointError)
    assert list(error.losses) == list(LOSS_NAMES)
    assert not all(math.isfinite(v) for v in error.losses.values())
    message = str(error)
    assert "step 1" in message
    for name, value in error.losses.items():
        assert f"{name}={value}" in message
    path = os.path.join(out, NONFINITE_CHECKPOINT_NAME)
    assert error.checkpoint == path and path in message
    assert [r["step"] for r in read_log(out)] == [0]  # only the finite step was logged

    meta, parts = read_checkpoint(path)
    assert meta["step"] == error.step
    assert MaskRCNNConfig.from_dict(meta["config"]) == cfg
    model = MaskRCNN(cfg)
    model.load_state_dict(parts["model"])
    model.train()
    restore_generator(meta)
    images, targets = TrainingBatches(
        train_set, cfg.batch_size, cfg.seed, cfg.horizontal_flip_prob
    )[error.step]
    losses = model(images, targets)
    assert not all(math.isfinite(losses[k].item()) for k in LOSS_NAMES)


def test_an_infinite_loss_stops_training_as_a_nan_does(train_set, tmp_path, monkeypatch):
    """A loss term of +inf (not NaN) at step 1: the model is replaced by one whose second
    call returns loss_mask = inf, the other terms finite. Training must stop at step 1 with
    that term in the error (reference: the contract, non-finite means NaN or inf)."""
    import minimask.engine.trainer as trainer

    class InfiniteOnSecondCall(MaskRCNN):
        calls = 0

        def forward(self, images, targets=None):
            losses = super().forward(images, targets)
            InfiniteOnSecondCall.calls += 1
            if InfiniteOnSecondCall.calls == 2:
                losses["loss_mask"] = losses["loss_mask"] * float("inf")
            return losses

    monkeypatch.setattr(trainer, "MaskRCNN", InfiniteOnSecondCall)
    cfg = tiny_cfg(len(train_set.category_ids), max_iters=3)
    with pytest.raises(NonFiniteLossError) as caught:
        train(cfg, train_set, str(tmp_path / "inf"), progress=False)
    assert caught.value.step == 1
    assert caught.value.losses["loss_mask"] == math.inf
    assert all(math.isfinite(v) for k, v in caught.value.losses.items() if k != "loss_mask")


# ----------------------------------------------------------------------------- bad images
def broken_copy(shapes, tmp_path):
    """A copy of the train split; returns its CocoDetection."""
    root = str(tmp_path / "data")
    shutil.copytree(shapes["root"], root)
    return CocoDetection(
        os.path.join(root, "images", "train"),
        os.path.join(root, "annotations", "instances_train.json"),
    )


def test_a_broken_image_is_skipped_with_a_warning(shapes, tmp_path):
    """One corrupt PNG: a warning names it, its batch trains on the other image, and every
    step of one epoch is trained and logged, with the final checkpoint written."""
    dataset = broken_copy(shapes, tmp_path)
    cfg = tiny_cfg(len(dataset.category_ids), max_iters=3)  # one epoch of 6 images
    index = 1
    with open(dataset.image_path(index), "wb") as f:
        f.write(b"this is not a PNG file")
    image_id = dataset.ids[index]
    out = str(tmp_path / "run")
    with pytest.warns(UserWarning, match=f"skipping image id {image_id} "):
        train(cfg, dataset, out, progress=False)
    assert image_id in dataset.bad_images
    assert [r["step"] for r in read_log(out)] == [0, 1, 2]
    assert all(math.isfinite(r["loss"]) for r in read_log(out))
    assert read_checkpoint(os.path.join(out, CHECKPOINT_NAME))[0]["step"] == 3

    batches = TrainingBatches(dataset, cfg.batch_size, cfg.seed, cfg.horizontal_flip_prob)
    step = next(s for s in range(3) if index in batches.indices(s))
    with pytest.warns(UserWarning, match="skipping image id"):
        images, targets = batches[step]
    assert len(images) == len(targets) == 1


def test_a_batch_of_broken_images_skips_its_step(shapes, tmp_path):
    """Both images of batch 1 corrupt: step 1 is skipped (no log line), steps 0 and 2 train,
    and step 2 runs at the lr of the uninterrupted schedule (the scheduler still counts 1)."""
    dataset = broken_copy(shapes, tmp_path)
    cfg = tiny_cfg(len(dataset.category_ids), max_iters=3)
    batches = TrainingBatches(dataset, cfg.batch_size, cfg.seed, cfg.horizontal_flip_prob)
    for index in batches.indices(1):
        with open(dataset.image_path(index), "wb") as f:
            f.write(b"junk")
    out = str(tmp_path / "run")
    with pytest.warns(UserWarning, match="skipping image id"):
        train(cfg, dataset, out, progress=False)
    rows = read_log(out)
    assert [r["step"] for r in rows] == [0, 2]
    assert rows[1]["lr"] == expected_lr(cfg, 2)
    assert read_checkpoint(os.path.join(out, CHECKPOINT_NAME))[0]["step"] == 3


def test_an_empty_last_batch_still_writes_the_final_checkpoint(shapes, tmp_path):
    """Both images of the last batch corrupt: the run still ends with checkpoint.npz at
    max_iters steps (reference: the module docstring, 'and at the end')."""
    dataset = broken_copy(shapes, tmp_path)
    cfg = tiny_cfg(len(dataset.category_ids), max_iters=3)
    batches = TrainingBatches(dataset, cfg.batch_size, cfg.seed, cfg.horizontal_flip_prob)
    for index in batches.indices(2):
        with open(dataset.image_path(index), "wb") as f:
            f.write(b"junk")
    out = str(tmp_path / "run")
    with pytest.warns(UserWarning, match="skipping image id"):
        summary = train(cfg, dataset, out, progress=False)
    assert os.path.exists(summary["checkpoint"])
    assert read_checkpoint(summary["checkpoint"])[0]["step"] == 3


# ----------------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip(train_set, tmp_path):
    """save_checkpoint then load_model: the same weights (bitwise), config and category map,
    the model in eval mode; the file is written through a temporary file that is gone."""
    cfg = tiny_cfg(len(train_set.category_ids))
    minimask.manual_seed(3)
    model = MaskRCNN(cfg)
    meta = dataset_meta(train_set)
    path = str(tmp_path / "ck" / "model.npz")
    save_checkpoint(path, model, 7, meta)
    assert os.listdir(tmp_path / "ck") == ["model.npz"]

    loaded, loaded_meta = load_model(path)
    assert not loaded.training
    assert loaded.cfg == cfg
    assert loaded_meta["step"] == 7
    assert loaded_meta["category_ids"] == [1, 2, 3]
    assert loaded_meta["class_names"] == ["__background__", "circle", "square", "triangle"]
    assert_same_arrays(model.state_dict(), loaded.state_dict(), "model")
    _, parts = read_checkpoint(path)
    assert parts["optimizer"] == {} and parts["scheduler"] == {}


def test_checkpoint_write_is_atomic(train_set, tmp_path, monkeypatch):
    """A save that fails mid-write leaves the previous checkpoint whole and no temporary
    file behind (reference: the first checkpoint's contents)."""
    cfg = tiny_cfg(len(train_set.category_ids))
    minimask.manual_seed(0)
    model = MaskRCNN(cfg)
    path = str(tmp_path / "checkpoint.npz")
    save_checkpoint(path, model, 1, dataset_meta(train_set))

    def fail_mid_write(file, **arrays):
        file.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", fail_mid_write)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, 2, dataset_meta(train_set))
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["checkpoint.npz"]
    meta, parts = read_checkpoint(path)
    assert meta["step"] == 1
    assert_same_arrays(model.state_dict(), parts["model"], "model")


# ----------------------------------------------------------------------------- the data stream
def test_batches_are_a_pure_function_of_seed_and_step(train_set):
    """Two instances asked in different orders give the same indices; another seed gives
    another order; batch s is positions s*B .. s*B + B - 1 of the documented stream of
    epoch permutations default_rng((seed, e)).permutation(n)."""
    n, batch = len(train_set), 4
    first = TrainingBatches(train_set, batch, seed=5)
    second = TrainingBatches(train_set, batch, seed=5)
    steps = list(range(9))
    forward = {s: first.indices(s) for s in steps}
    backward = {s: second.indices(s) for s in reversed(steps)}
    assert forward == backward
    stream = np.concatenate([np.random.default_rng((5, e)).permutation(n) for e in range(6)])
    for s in steps:
        assert forward[s] == stream[s * batch : (s + 1) * batch].tolist()
    other = TrainingBatches(train_set, batch, seed=6)
    assert [other.indices(s) for s in steps] != [forward[s] for s in steps]


@pytest.mark.parametrize("batch", [2, 4])
def test_every_image_is_seen_once_per_epoch(train_set, batch):
    """Each run of n consecutive stream positions (an epoch) is a permutation of the
    dataset, also when the batch size does not divide n."""
    n = len(train_set)
    batches = TrainingBatches(train_set, batch, seed=0)
    stream = [i for s in range(-(-3 * n // batch)) for i in batches.indices(s)]
    for epoch in range(3):
        assert sorted(stream[epoch * n : (epoch + 1) * n]) == list(range(n))


def flipped_flags(train_set, batches, step):
    """For each example of batch ``step``: is it the horizontal mirror of the stored image?"""
    images, targets = batches[step]
    flags = []
    for index, image, target in zip(batches.indices(step), images, targets):
        original, original_target = train_set[index]
        plain = np.array_equal(image.numpy(), original.numpy())
        mirrored = np.array_equal(image.numpy(), original.numpy()[:, :, ::-1])
        assert plain != mirrored  # shapes images are never symmetric (background noise)
        if mirrored:
            masks = original_target["masks"].numpy()[:, :, ::-1]
            assert np.array_equal(target["masks"].numpy(), masks)
        flags.append(mirrored)
    return flags


@pytest.mark.parametrize("prob", [0.0, 1.0, 0.5])
def test_flips_follow_the_configured_probability(train_set, prob):
    """prob 0 never flips, 1 always; otherwise example p of batch s is flipped iff
    default_rng((seed, 1_000_003, s)).random(B)[p] < prob (the documented draw)."""
    batch, seed = 2, 0
    batches = TrainingBatches(train_set, batch, seed, flip_prob=prob)
    for step in range(6):
        flags = flipped_flags(train_set, batches, step)
        draws = np.random.default_rng((seed, 1_000_003, step)).random(batch)
        assert flags == [bool(d < prob) for d in draws]
        if prob == 0.0:
            assert not any(flags)
        if prob == 1.0:
            assert all(flags)


def test_batches_refuse_an_empty_dataset():
    with pytest.raises(ValueError, match="no images"):
        TrainingBatches([], 2, 0)


# ----------------------------------------------------------------------------- logs
def expected_lr(cfg, step):
    """detectron2's WarmupMultiStepLR: linear warm-up, then gamma per milestone passed."""
    milestones = sorted({max(1, int(f * cfg.max_iters)) for f in cfg.lr_steps})
    alpha = step / cfg.warmup_iters
    warmup = 1.0 if step >= cfg.warmup_iters else cfg.warmup_factor * (1 - alpha) + alpha
    return cfg.base_lr * warmup * cfg.lr_gamma ** sum(step >= m for m in milestones)


def test_metrics_log_and_loss_curve(train_set, run_a):
    """metrics.jsonl: one line per step with exactly step, lr, loss, the five terms and
    seconds; loss is the sum of the terms, lr follows the schedule; loss_curve.png is a PNG;
    the summary names the files."""
    cfg, out, summary = run_a["cfg"], run_a["dir"], run_a["summary"]
    rows = read_log(out)
    assert [r["step"] for r in rows] == list(range(STEPS))
    for row in rows:
        assert set(row) == LOG_KEYS
        assert all(math.isfinite(row[k]) for k in LOG_KEYS - {"step"})
        assert row["loss"] == sum(row[k] for k in LOSS_NAMES)
        assert row["lr"] == pytest.approx(expected_lr(cfg, row["step"]), rel=1e-12)
        assert row["seconds"] > 0
    assert summary["last"] == rows[-1]
    assert summary["steps"] == STEPS
    assert summary["log"] == os.path.join(out, LOG_NAME)
    assert summary["loss_curve"] == os.path.join(out, LOSS_CURVE_NAME)
    with Image.open(summary["loss_curve"]) as png:
        assert png.format == "PNG" and png.width > 100 and png.height > 100
    assert sorted(os.listdir(out)) == sorted([CHECKPOINT_NAME, LOG_NAME, LOSS_CURVE_NAME])
    meta, _ = read_checkpoint(summary["checkpoint"])
    assert meta["step"] == STEPS
    assert meta["config"] == json.loads(json.dumps(cfg.to_dict()))
    assert {k: meta[k] for k in ("category_ids", "class_names")} == dataset_meta(train_set)
