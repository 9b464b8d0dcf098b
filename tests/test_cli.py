"""The `minimask` command line, run as a user would (a subprocess)."""

import json
import subprocess
import sys

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
