"""Mask R-CNN building blocks: the GroupNorm ResNet backbone, the feature pyramid, the
region proposal network, the RoI heads and the whole MaskRCNN with its config,
multi-scale RoIAlign, mask targets and pasting, box coding,
matching, sampling, anchors and FPN level mapping."""

from minimask.models.anchor_coverage import AnchorCoverage, anchor_coverage
from minimask.models.anchors import AnchorGenerator
from minimask.models.backbone import ResNetGN
from minimask.models.box_coder import BoxCoder
from minimask.models.config import MaskRCNNConfig
from minimask.models.fpn import FPN
from minimask.models.level_mapper import level_for_boxes
from minimask.models.mask_rcnn import MaskRCNN
from minimask.models.masks import mask_targets, paste_masks_in_image
from minimask.models.matcher import Matcher
from minimask.models.poolers import MultiScaleRoIAlign
from minimask.models.roi_heads import RoIHeads
from minimask.models.rpn import (
    RegionProposalNetwork,
    RPNHead,
    concat_box_prediction_layers,
    rpn_loss,
    rpn_proposals,
    rpn_targets,
)
from minimask.models.sampler import BalancedPositiveNegativeSampler

__all__ = [
    "FPN",
    "AnchorCoverage",
    "AnchorGenerator",
    "BalancedPositiveNegativeSampler",
    "BoxCoder",
    "MaskRCNN",
    "MaskRCNNConfig",
    "Matcher",
    "MultiScaleRoIAlign",
    "RPNHead",
    "RegionProposalNetwork",
    "RoIHeads",
    "ResNetGN",
    "anchor_coverage",
    "concat_box_prediction_layers",
    "level_for_boxes",
    "mask_targets",
    "paste_masks_in_image",
    "rpn_loss",
    "rpn_proposals",
    "rpn_targets",
]
