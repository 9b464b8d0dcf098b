"""Mask R-CNN building blocks: box coding, matching, sampling, anchors, FPN level mapping."""

from minimask.models.anchors import AnchorGenerator
from minimask.models.box_coder import BoxCoder
from minimask.models.level_mapper import level_for_boxes
from minimask.models.matcher import Matcher
from minimask.models.sampler import BalancedPositiveNegativeSampler

__all__ = [
    "AnchorGenerator",
    "BalancedPositiveNegativeSampler",
    "BoxCoder",
    "Matcher",
    "level_for_boxes",
]
