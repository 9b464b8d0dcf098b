"""Mask R-CNN building blocks: the GroupNorm ResNet backbone, the feature pyramid, the
region proposal network, box coding, matching, sampling, anchors and FPN level mapping."""

from minimask.models.anchors import AnchorGenerator
from minimask.models.backbone import ResNetGN
from minimask.models.box_coder import BoxCoder
from minimask.models.fpn import FPN
from minimask.models.level_mapper import level_for_boxes
from minimask.models.matcher import Matcher
from minimask.models.rpn import (
    RPNHead,
    concat_box_prediction_layers,
    rpn_loss,
    rpn_proposals,
    rpn_targets,
)
from minimask.models.sampler import BalancedPositiveNegativeSampler

__all__ = [
    "FPN",
    "AnchorGenerator",
    "BalancedPositiveNegativeSampler",
    "BoxCoder",
    "Matcher",
    "RPNHead",
    "ResNetGN",
    "concat_box_prediction_layers",
    "level_for_boxes",
    "rpn_loss",
    "rpn_proposals",
    "rpn_targets",
]
