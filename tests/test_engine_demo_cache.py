"""minimask.engine.demo_cache: the demo's model trained on first use into the cache, then
loaded from it; the cache folder's environment variables; an atomic copy; the CLI's
``minimask demo`` leaving its checkpoint there. A toy recipe (2 steps, 4 images): the
wiring is checked, not the accuracy. References: the weights of the checkpoint the first
call wrote (bitwise), the recipe given, the paths the module docstring specifies."""

import json
import os
import shutil

import numpy as np
import pytest

from minimask.cli import main
from minimask.data.coco import PYCOCOTOOLS_NUMPY2_WARNING
from minimask.engine import demo_cache


def test_cache_folder_from_minimask_cache_then_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MINIMASK_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert demo_cache.cache_dir() == str(tmp_path / "home" / ".cache" / "minimask")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert demo_cache.cache_dir() == str(tmp_path / "xdg" / "minimask")
    monkeypatch.setenv("MINIMASK_CACHE", str(tmp_path / "mine"))
    assert demo_cache.cache_dir() == str(tmp_path / "mine")
    assert demo_cache.recipe_dir(3400, 2000, 0) == str(
        tmp_path / "mine" / "demo-3400-steps-2000-images-seed-0"
    )


@pytest.mark.filterwarnings(f"ignore:{PYCOCOTOOLS_NUMPY2_WARNING}")
def test_trained_on_first_use_then_loaded_from_the_cache(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("MINIMASK_CACHE", str(tmp_path / "cache"))
    model, meta, recipe = demo_cache.demo_model(iters=2, n_train=4, progress=False)
    assert "No trained demo model in" in capsys.readouterr().out
    folder = tmp_path / "cache" / "demo-2-steps-4-images-seed-0"
    assert sorted(os.listdir(folder)) == ["checkpoint.npz", "recipe.json"]  # work removed
    assert (recipe["steps"], recipe["train_images"], recipe["seed"]) == (2, 4, 0)
    assert json.loads((folder / "recipe.json").read_text()) == recipe
    assert not model.training

    def no_training(*args, **kwargs):
        raise AssertionError("the cached model was trained again")

    monkeypatch.setattr(demo_cache, "run_demo", no_training)
    again, meta_again, _ = demo_cache.demo_model(iters=2, n_train=4, progress=False)
    assert "No trained demo model" not in capsys.readouterr().out
    assert meta_again["config"] == meta["config"]
    first, second = model.state_dict(), again.state_dict()
    assert first.keys() == second.keys()
    for name in first:
        assert np.array_equal(first[name].numpy(), second[name].numpy()), name
    with pytest.raises(AssertionError, match="trained again"):  # another recipe is not there
        demo_cache.demo_model(iters=3, n_train=4, progress=False)


def test_an_interrupted_copy_leaves_no_checkpoint(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIMASK_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "checkpoint.npz"
    source.write_bytes(b"0123456789")

    def copy_half(source_file, destination_file):
        destination_file.write(source_file.read(5))
        raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "copyfileobj", copy_half)
    summary = {"checkpoint": str(source), "minutes": 0.1, "segm_AP": 0.0, "segm_AP50": 0.0,
               "bbox_AP": 0.0, "bbox_AP50": 0.0}  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        demo_cache.keep_in_cache(summary, 2, 4, 0)
    assert os.listdir(demo_cache.recipe_dir(2, 4, 0)) == []


def test_the_demo_command_keeps_its_checkpoint_in_the_cache(monkeypatch, tmp_path, capsys):
    """The CLI's wiring, with run_demo replaced by a stand-in that returns a summary (the
    real run_demo is tested in test_engine_demo.py)."""
    monkeypatch.setenv("MINIMASK_CACHE", str(tmp_path / "cache"))
    checkpoint = tmp_path / "out" / "run" / "checkpoint.npz"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"weights")
    summary = {"checkpoint": str(checkpoint), "minutes": 1.0, "segm_AP": 0.5, "segm_AP50": 0.9,
               "bbox_AP": 0.6, "bbox_AP50": 0.95}  # fmt: skip
    import minimask.engine.demo as demo

    monkeypatch.setattr(demo, "run_demo", lambda out, **kwargs: summary)
    assert main(["demo", "--out", str(tmp_path / "out"), "--iters", "7", "--quiet"]) == 0
    cached = tmp_path / "cache" / "demo-7-steps-2000-images-seed-0" / "checkpoint.npz"
    assert cached.read_bytes() == b"weights"
    assert str(cached) in capsys.readouterr().out
    recipe = json.loads((cached.parent / "recipe.json").read_text())
    assert recipe["segm_AP"] == 0.5 and recipe["steps"] == 7
