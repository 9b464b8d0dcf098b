"""Datasets: the synthetic shapes generator (COCO format)."""

from minimask.data.shapes import CATEGORIES, make_shapes_dataset

__all__ = ["CATEGORIES", "make_shapes_dataset"]
from minimask.data.coco import CocoDetection  # noqa: E402,F401
