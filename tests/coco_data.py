"""Where the tests find real COCO data: the folder named by the MINIMASK_COCO environment
variable, laid out as COCO's own download (annotations/instances_{train,val}.json and
images/{train,val}/). Any small COCO-format set works; the tests that use it compare
minimask's reading of it with pycocotools', so they need no particular images.

Without MINIMASK_COCO the tests that need real images are skipped with a message that
says how to run them; under CI (CI=true) a missing folder is an error instead, so that CI
never passes by skipping them.
"""

import os
from pathlib import Path

import pytest

COCO_ROOT = Path(os.environ["MINIMASK_COCO"]) if os.environ.get("MINIMASK_COCO") else None

if os.environ.get("CI") == "true" and (COCO_ROOT is None or not COCO_ROOT.is_dir()):
    raise RuntimeError(f"CI needs real COCO data: MINIMASK_COCO={COCO_ROOT} is not a folder")

needs_coco = pytest.mark.skipif(
    COCO_ROOT is None or not COCO_ROOT.is_dir(),
    reason="set MINIMASK_COCO to a COCO-format folder (annotations/, images/) to run this",
)


def annotation_file(split):
    """COCO_ROOT/annotations/instances_{split}.json"""
    return COCO_ROOT / "annotations" / f"instances_{split}.json"


def image_folder(split):
    """COCO_ROOT/images/{split}"""
    return COCO_ROOT / "images" / split
