"""``minimask demo`` (``minimask.engine.demo.run_demo``) end to end at a toy size: 3 steps of
the small preset on 4 training images, evaluated on 2 held-out images. It checks the
pipeline's wiring, not its accuracy (3 steps learn nothing): every file the demo promises
exists, the summary's AP figures are the ones written to metrics.json, the printed report
names each file, and the checkpoint's config is the recipe demo.py documents (192-pixel
input, 32-channel mask head). References: the demo's own outputs (metrics.json, written by the
evaluator from pycocotools' COCOeval) and PIL for the pictures."""

import json
import os

import pytest
from PIL import Image

from minimask.data.coco import PYCOCOTOOLS_NUMPY2_WARNING
from minimask.engine.checkpoint import read_checkpoint
from minimask.engine.demo import run_demo


@pytest.mark.filterwarnings(f"ignore:{PYCOCOTOOLS_NUMPY2_WARNING}")
def test_run_demo_writes_every_promised_file(tmp_path, capsys):
    out = tmp_path / "demo"
    summary = run_demo(str(out), iters=3, n_train=4, n_val=2, progress=False)
    for key in ("predictions", "loss_curve", "metrics", "checkpoint"):
        assert os.path.isfile(summary[key]), key
    for key in ("predictions", "loss_curve"):
        with Image.open(summary[key]) as picture:
            assert picture.format == "PNG"
    assert len(os.listdir(out / "data" / "images" / "train")) == 4
    assert len(os.listdir(out / "data" / "images" / "val")) == 2
    with open(summary["metrics"]) as f:
        written = json.load(f)
    for task in ("segm", "bbox"):
        assert summary[f"{task}_AP"] == written[task]["AP"]
        assert summary[f"{task}_AP50"] == written[task]["AP50"]
    with open(out / "run" / "metrics.jsonl") as f:
        assert [json.loads(line)["step"] for line in f] == [0, 1, 2]
    assert summary["peak_memory_gb"] > 0
    config = read_checkpoint(summary["checkpoint"])[0]["config"]
    assert (config["min_size"], config["max_size"], config["mask_head_channels"]) == (192, 288, 32)
    assert config["anchor_sizes"] == [12, 24, 48, 96, 192]  # the paper's 32..512 x 192/512
    report = capsys.readouterr().out
    assert "minimask demo: 3 steps on 4 shapes images" in report
    for key in ("predictions", "loss_curve", "metrics", "checkpoint", "data"):
        assert str(summary[key]) in report
