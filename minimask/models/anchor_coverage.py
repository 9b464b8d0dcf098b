"""Anchor coverage: how well a model's anchors fit a dataset's objects, before training.

For every ground-truth box (after the model's resize) this finds
    best IoU     the largest IoU of the box with any anchor of the padded image
    positives    the anchors the RPN's Matcher labels positive for it (rpn.py: IoU >= 0.7,
                 or the box's best anchors through the low-quality rule)
and counts the boxes whose positives all come from the low-quality rule (no anchor reaches
0.7: the RPN learns such a box only from an anchor that fits it badly) and the boxes with no
positive at all (their best anchor is claimed by another box that overlaps it more).
A dataset whose boxes mostly need the low-quality rule asks for other anchor sizes or
aspect ratios (config.py: anchor_sizes, anchor_aspect_ratios).

The anchors are the model's: the image is resized as transform.py does, padded to a
multiple of size_divisible, and level k (P2..P5) has a grid of padded side / 2**k cells,
P6 half of P5's (rounded up), as the backbone and FPN produce them.
"""

import math
from dataclasses import dataclass

import numpy as np

from minimask.autograd.factories import tensor
from minimask.data.transforms import resize_scale, resized_size
from minimask.models.anchors import AnchorGenerator
from minimask.models.matcher import Matcher
from minimask.ops import box_iou


@dataclass
class AnchorCoverage:
    best_iou: np.ndarray  # (G,) best anchor IoU of every ground truth, dataset order
    low_quality_only: np.ndarray  # (G,) bool: positives only through the low-quality rule
    no_positive: np.ndarray  # (G,) bool: no positive anchor at all
    fg_iou_thresh: float

    def summary(self):
        count = len(self.best_iou)
        if count == 0:
            return "anchor coverage: no ground-truth boxes"
        quantiles = np.quantile(self.best_iou, [0.1, 0.5, 0.9])
        return (
            f"anchor coverage of {count} boxes: best anchor IoU median {quantiles[1]:.2f} "
            f"(10% {quantiles[0]:.2f}, 90% {quantiles[2]:.2f}); "
            f"{int(self.low_quality_only.sum())} ({self.low_quality_only.mean():.0%}) reach "
            f"no anchor with IoU >= {self.fg_iou_thresh} and get positives only through the "
            f"low-quality rule; {int(self.no_positive.sum())} get no positive anchor"
        )


def padded_grid_sizes(padded_height, padded_width):
    """Feature-map sizes of P2..P6 for a padded batch (multiples of 32)."""
    sizes = [(padded_height // 2**k, padded_width // 2**k) for k in range(2, 6)]
    p5 = sizes[-1]
    return sizes + [(math.ceil(p5[0] / 2), math.ceil(p5[1] / 2))]


def image_anchors(cfg, height, width, generator=None):
    """(anchors (A, 4) Tensor, scale) for an image of height x width under config ``cfg``."""
    scale = resize_scale(height, width, cfg.min_size, cfg.max_size)
    new_h, new_w = resized_size(height, width, scale)
    divisor = cfg.size_divisible
    padded = (math.ceil(new_h / divisor) * divisor, math.ceil(new_w / divisor) * divisor)
    if generator is None:
        generator = AnchorGenerator(tuple(cfg.anchor_sizes), tuple(cfg.anchor_aspect_ratios))
    return generator(padded, padded_grid_sizes(*padded)), (new_h / height, new_w / width)


def anchor_coverage(dataset, cfg):
    """AnchorCoverage of every ground-truth box in ``dataset`` (``(image, target)`` items,
    None for an unreadable image, which is skipped) under MaskRCNNConfig ``cfg``."""
    matcher = Matcher(cfg.rpn_fg_iou_thresh, cfg.rpn_bg_iou_thresh, allow_low_quality_matches=True)
    generator = AnchorGenerator(tuple(cfg.anchor_sizes), tuple(cfg.anchor_aspect_ratios))
    best, low_only, none = [], [], []
    for index in range(len(dataset)):
        example = dataset[index]
        if example is None:
            continue
        image, target = example
        boxes = target["boxes"].numpy().astype(np.float32)
        if len(boxes) == 0:
            continue
        anchors, (sy, sx) = image_anchors(cfg, *image.shape[-2:], generator)
        scaled = boxes * np.array([sx, sy, sx, sy], dtype=np.float32)
        iou = box_iou(tensor(scaled), anchors).numpy()
        matches, low_quality = matcher.match(iou)
        best.append(iou.max(axis=1))
        for g in range(len(boxes)):
            mine = matches == g
            none.append(not mine.any())
            low_only.append(bool(mine.any() and low_quality[mine].all()))
    return AnchorCoverage(
        best_iou=np.concatenate(best) if best else np.zeros(0),
        low_quality_only=np.array(low_only, dtype=bool),
        no_positive=np.array(none, dtype=bool),
        fg_iou_thresh=cfg.rpn_fg_iou_thresh,
    )
