"""The `minimask` command line, run as a user would (a subprocess)."""

import json
import subprocess
import sys

import pytest

import minimask


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "minimask", *args], capture_output=True, text=True, check=True
    )


def test_version_names_the_package_version():
    """`minimask --version` prints the package's __version__ (reference: minimask.__version__)."""
    assert run_cli("--version").stdout.strip() == f"minimask {minimask.__version__}"


def test_make_shapes_writes_the_requested_splits(tmp_path):
    """`minimask make-shapes` writes COCO JSON with exactly the requested image counts and
    sizes, and the PNG files it names (reference: the command-line arguments)."""
    run_cli("make-shapes", "--out", str(tmp_path), "--train", "3", "--val", "2", "--size", "64")
    for split, count in (("train", 3), ("val", 2)):
        data = json.loads((tmp_path / "annotations" / f"instances_{split}.json").read_text())
        assert len(data["images"]) == count
        for image in data["images"]:
            assert (image["width"], image["height"]) == (64, 64)
            assert (tmp_path / "images" / split / image["file_name"]).is_file()


def run_cli_failing(*args):
    """The exit status and stderr of a `minimask` command expected to fail."""
    done = subprocess.run([sys.executable, "-m", "minimask", *args], capture_output=True, text=True)
    return done.returncode, done.stderr


@pytest.mark.parametrize("empty", ["images", "categories"])
def test_train_names_an_annotation_file_without_images_or_categories(tmp_path, empty):
    """A valid instances file listing no images or no categories: one line naming the file,
    exit status 1, no traceback (the messages used to be "the training dataset has no
    images" and "MaskRCNNConfig: num_classes must be >= 1", without the file)."""
    image = {"id": 1, "file_name": "a.png", "width": 8, "height": 8}
    data = {"images": [image], "annotations": [], "categories": [{"id": 1}], empty: []}
    ann = tmp_path / "instances.json"
    ann.write_text(json.dumps(data))
    code, err = run_cli_failing(
        "train", "--train-images", str(tmp_path), "--train-ann", str(ann), "--out", str(tmp_path)
    )
    assert code == 1 and "Traceback" not in err
    assert err.strip() == f"minimask train: {ann} lists no {empty}"


def test_a_folder_given_as_the_annotation_file_is_named(tmp_path):
    """--train-ann naming a folder: the OSError's message with the path, exit status 1, no
    traceback (IsADirectoryError used to escape as a traceback)."""
    code, err = run_cli_failing(
        "train", "--train-images", str(tmp_path), "--train-ann", str(tmp_path), "--out", "run"
    )
    assert code == 1 and "Traceback" not in err
    assert (
        err.startswith("minimask train: ") and str(tmp_path) in err and len(err.splitlines()) == 1
    )
