"""``MaskRCNN``: the whole detector (He, Gkioxari, Dollár, Girshick, "Mask R-CNN", 2017).

    images ─ transform ─ backbone (ResNetGN) ─ FPN ─┬─ RPN ─ proposals ─┐
                                                    └───── P2..P5 ──────┴─ RoI heads

    transform.py   normalise, resize, pad into one batch; afterwards boxes and masks back
                   to each original image
    backbone.py    C2..C5 at strides 4..32, GroupNorm (trained from scratch)
    fpn.py         P2..P6, all cfg.fpn_channels channels
    rpn.py         objectness and box deltas for the anchors of P2..P6, proposals by NMS
    roi_heads.py   per proposal: class, class-specific box, 28 x 28 mask

torchvision's interface:
    model.train(); losses = model(images, targets)   # dict of the five loss terms
    model.eval();  detections = model(images)        # per image boxes, labels, scores, masks
``images``: list of float Tensors [3, H, W] in [0, 1] (sizes may differ); a target has
``boxes`` [N, 4] xyxy pixels, ``labels`` [N] int64 in 1..K, ``masks`` [N, H, W] uint8 and
optionally ``crowd_boxes`` [M, 4] (regions that are neither object nor background). N may be
0: an image without objects is a valid training example (all its proposals are background).
"""

from minimask import nn
from minimask.autograd.grad_mode import no_grad
from minimask.models.backbone import ResNetGN
from minimask.models.fpn import FPN
from minimask.models.loss_normalizer import LossNormalizer
from minimask.models.roi_heads import RoIHeads
from minimask.models.rpn import RegionProposalNetwork
from minimask.models.transform import RCNNTransform

LOSS_NAMES = ("loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask")

# The FPN levels the RoI heads pool from; P6 serves the RPN only (the FPN paper's choice).
ROI_LEVELS = ("p2", "p3", "p4", "p5")


class MaskRCNN(nn.Module):
    """``MaskRCNN(cfg)`` for a MaskRCNNConfig ``cfg``; see the module docstring."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.transform = RCNNTransform(cfg)
        self.backbone = ResNetGN(3, cfg.stage_channels, cfg.blocks_per_stage, cfg.num_groups)
        self.fpn = FPN(cfg.stage_channels, cfg.fpn_channels)
        self.rpn = RegionProposalNetwork(cfg)
        self.roi_heads = RoIHeads(cfg)
        # One count of loss terms for both stages: data-parallel training makes it count
        # every process's terms (loss_normalizer.py).
        self.loss_normalizer = self.rpn.loss_normalizer = self.roi_heads.loss_normalizer = (
            LossNormalizer()
        )

    def features(self, batch):
        """[P2, .., P6] of a normalised, padded batch (N, 3, H, W)."""
        return list(self.fpn(self.backbone(batch)).values())

    def roi_features(self, features):
        """The levels of ``features`` ([P2, .., P6]) that the RoI heads pool from, by name."""
        by_name = dict(zip(self.fpn.level_names, features))
        return [by_name[name] for name in ROI_LEVELS]

    def forward(self, images, targets=None):
        """Training: the loss dict. Eval: the detections, computed without a graph (the
        whole forward runs under no_grad, so inference keeps no activations alive)."""
        if not self.training:
            with no_grad():
                return self._forward(images, None)
        if targets is None:
            raise ValueError("MaskRCNN in training mode needs targets (or call model.eval())")
        return self._forward(images, targets)

    def _forward(self, images, targets):
        original_sizes = [tuple(image.shape[-2:]) for image in images]
        batch, image_sizes, targets = self.transform(images, targets)
        features = self.features(batch)
        proposals, rpn_losses = self.rpn(tuple(batch.shape[-2:]), image_sizes, features, targets)
        detections, roi_losses = self.roi_heads(
            self.roi_features(features), proposals, image_sizes, targets
        )
        if self.training:
            return {**rpn_losses, **roi_losses}
        return self.transform.postprocess(detections, image_sizes, original_sizes)
