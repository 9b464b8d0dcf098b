"""The model commands of the `minimask` command line (train, evaluate, predict), run
in-process through ``minimask.cli.main`` on a tiny shapes dataset with the tiny preset.
References: the files each command documents, pycocotools (``COCO.loadRes`` reads the
results), and the train command's own evaluation (``evaluate`` on the same checkpoint and
images must give the same metrics). ``demo`` is not run: it trains the small preset on
128-pixel images, too slow for a unit test."""

import contextlib
import io
import json
import os
import shutil

import pytest
from PIL import Image
from pycocotools.coco import COCO

from minimask.cli import main
from minimask.data.coco import PYCOCOTOOLS_NUMPY2_WARNING
from minimask.data.shapes import make_shapes_dataset
from minimask.engine.checkpoint import read_checkpoint
from minimask.engine.coco_evaluation import METRIC_NAMES
from minimask.models.config import MaskRCNNConfig

ITERS = 4
pytestmark = pytest.mark.filterwarnings(f"ignore:{PYCOCOTOOLS_NUMPY2_WARNING}:DeprecationWarning")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    return make_shapes_dataset(str(root), n_train=6, n_val=3, size=64, seed=0)


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
        str(ITERS),
        "--min-size",
        "64",
        "--checkpoint-period",
        "2",
        "--quiet",
        *extra,
    ]


@pytest.fixture(scope="module")
def trained(shapes, tmp_path_factory):
    """`minimask train` with a validation set; returns the run folder."""
    out = tmp_path_factory.mktemp("run")
    val = ["--val-images", shapes["val_images"], "--val-ann", shapes["val_annotations"]]
    assert main(train_args(shapes, out, *val)) == 0
    return out


def load_coco(path):
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def assert_metrics_file(path):
    metrics = json.loads(path.read_text())
    assert set(metrics) == {"bbox", "segm"}
    for values in metrics.values():
        assert list(values) == list(METRIC_NAMES)
        assert all(isinstance(v, float) and (v == -1.0 or 0.0 <= v <= 1.0) for v in values.values())
    return metrics


def test_train_writes_the_run_files_and_evaluates(trained):
    """checkpoint.npz (ITERS steps, the tiny preset at 64 pixels, the CLI's overrides),
    metrics.jsonl (one line per step), loss_curve.png, and eval/ with metrics.json (bbox and
    segm x AP, AP50, AP75, APs, APm, APl) and results.json."""
    meta, _ = read_checkpoint(trained / "checkpoint.npz")
    assert meta["step"] == ITERS
    cfg = MaskRCNNConfig.from_dict(meta["config"])
    assert cfg == MaskRCNNConfig.tiny(3, max_iters=ITERS, checkpoint_period=2)
    assert meta["category_ids"] == [1, 2, 3]
    rows = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(ITERS))
    with Image.open(trained / "loss_curve.png") as png:
        assert png.format == "PNG"
    assert_metrics_file(trained / "eval" / "metrics.json")
    assert isinstance(json.loads((trained / "eval" / "results.json").read_text()), list)


def test_evaluate_writes_results_that_pycocotools_loads(trained, shapes, tmp_path, capsys):
    """`minimask evaluate --out`: results.json is a list of COCO results on the val images
    that COCO.loadRes accepts, and metrics.json equals the train command's evaluation of
    the same checkpoint on the same images."""
    out = tmp_path / "eval"
    code = main(
        [
            "evaluate",
            "--checkpoint",
            str(trained / "checkpoint.npz"),
            "--images",
            shapes["val_images"],
            "--ann",
            shapes["val_annotations"],
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    assert "results.json" in capsys.readouterr().out
    metrics = assert_metrics_file(out / "metrics.json")
    assert metrics == json.loads((trained / "eval" / "metrics.json").read_text())
    results = json.loads((out / "results.json").read_text())
    gt = load_coco(shapes["val_annotations"])
    assert {r["image_id"] for r in results} <= set(gt.getImgIds())
    assert {r["category_id"] for r in results} <= set(gt.getCatIds())
    if results:
        with contextlib.redirect_stdout(io.StringIO()):
            loaded = gt.loadRes(str(out / "results.json"))
        assert len(loaded.getAnnIds()) == len(results)


def test_evaluate_refuses_other_categories(trained, shapes, tmp_path):
    """An annotation file whose categories differ from the checkpoint's is refused by name."""
    data = json.loads(open(shapes["val_annotations"], encoding="utf-8").read())
    data["categories"] = data["categories"][:2]
    ann = tmp_path / "two_categories.json"
    ann.write_text(json.dumps(data))
    args = ["evaluate", "--checkpoint", str(trained / "checkpoint.npz")]
    args += ["--images", shapes["val_images"], "--ann", str(ann), "--quiet"]
    with pytest.raises(SystemExit, match="two_categories.json"):
        main(args)


def test_predict_writes_one_png_per_image(trained, shapes, tmp_path, capsys):
    """`minimask predict IMG... --out`: OUT/<stem>.png for each image, paths printed."""
    names = sorted(os.listdir(shapes["val_images"]))[:2]
    images = [os.path.join(shapes["val_images"], name) for name in names]
    out = tmp_path / "pred"
    code = main(
        ["predict", "--checkpoint", str(trained / "checkpoint.npz"), *images, "--out", str(out)]
    )
    assert code == 0
    expected = sorted(os.path.splitext(name)[0] + ".png" for name in names)
    assert sorted(os.listdir(out)) == expected
    for name in expected:
        with Image.open(out / name) as png:
            assert png.format == "PNG"
    assert capsys.readouterr().out.split() == [str(out / name) for name in expected]


def test_predict_names_a_missing_image_before_doing_any_work(trained, shapes, tmp_path):
    """A missing file: the command exits with a message naming it (no traceback), and no
    output folder is made."""
    good = os.path.join(shapes["val_images"], sorted(os.listdir(shapes["val_images"]))[0])
    missing = str(tmp_path / "no_such_image.png")
    out = tmp_path / "pred"
    args = ["predict", "--checkpoint", str(trained / "checkpoint.npz"), good, missing]
    with pytest.raises(SystemExit, match="minimask predict: cannot read image .*no_such_image.png"):
        main([*args, "--out", str(out)])
    assert not out.exists()


def test_train_resume_with_nothing_to_resume(shapes, tmp_path):
    """`train --resume` into a folder with no checkpoint: exits with a message naming it."""
    out = tmp_path / "fresh"
    with pytest.raises(SystemExit, match="minimask train: --resume: no checkpoint") as error:
        main(train_args(shapes, out, "--resume"))
    assert str(out / "checkpoint.npz") in str(error.value)


def test_train_resume_of_a_finished_run_keeps_its_log(trained, shapes, tmp_path):
    """`train --resume` with the run's own settings on a finished run: no step is redone and
    metrics.jsonl is unchanged (reference: the run's log)."""
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    log = (out / "metrics.jsonl").read_text()
    assert main(train_args(shapes, out, "--resume")) == 0
    assert (out / "metrics.jsonl").read_text() == log


def test_train_needs_both_validation_arguments(shapes, tmp_path):
    """--val-images without --val-ann is refused before any training."""
    out = tmp_path / "run"
    with pytest.raises(SystemExit, match="--val-ann"):
        main(train_args(shapes, out, "--val-images", shapes["val_images"]))
    assert not out.exists()


def test_missing_files_are_named_without_a_traceback(shapes, tmp_path):
    """A missing annotation file (train, evaluate) or checkpoint (evaluate, predict): the
    command ends with `minimask <command>: ... <path>` (SystemExit with that message, so
    exit status 1), not with a traceback."""
    missing_ann = str(tmp_path / "missing.json")
    missing_checkpoint = str(tmp_path / "missing.npz")
    images = shapes["val_images"]
    for command, path in (
        (["train", "--train-images", images, "--train-ann", missing_ann, "--out", "r"],
         missing_ann),
        (["evaluate", "--checkpoint", missing_checkpoint, "--images", images, "--ann", missing_ann],
         missing_checkpoint),
        (["predict", "--checkpoint", missing_checkpoint, "x.png", "--out", str(tmp_path)],
         missing_checkpoint),
    ):  # fmt: skip
        with pytest.raises(SystemExit) as error:
            main(command)
        message = str(error.value.code)
        assert message.startswith(f"minimask {command[0]}: ") and path in message
