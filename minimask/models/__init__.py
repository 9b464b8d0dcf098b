"""Mask R-CNN building blocks: the GroupNorm ResNet backbone, the feature pyramid, box
coding, matching, sampling, anchors and FPN level mapping."""

from minimask.models.anchors import AnchorGenerator
from minimask.models.backbone import ResNetGN
from minimask.models.box_coder import BoxCoder
from minimask.models.fpn import FPN
from minimask.models.level_mapper import level_for_boxes
from minimask.models.matcher import Matcher
from minimask.models.sampler import BalancedPositiveNegativeSampler

__all__ = [
    "FPN",
    "AnchorGenerator",
    "BalancedPositiveNegativeSampler",
    "BoxCoder",
    "Matcher",
    "ResNetGN",
    "level_for_boxes",
]
