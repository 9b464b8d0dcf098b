"""The RoI heads' target assignment by torchvision's rules, written in torch, for tests.

The PyTorch mirror (``torch_mirror.py``) checks the network and the losses given
minimask's target assignment. This module computes that assignment on its own, from the
images' original targets, so that a test can compare the two and a sampling, resize,
mask-scale or crowd error in minimask shows:

    resize        torchvision's GeneralizedRCNNTransform: scale = min(min_size / min(h, w),
                  max_size / max(h, w)), size floor(h * scale) x floor(w * scale), boxes
                  multiplied by (new_w / w, new_h / h)
    candidates    the proposals followed by the ground-truth boxes
    labels        torchvision's Matcher(0.5, 0.5): the best ground truth by IoU, its label
                  at IoU >= 0.5, background (0) below
    crowd         minimask's rule (torchvision drops crowd regions instead): a background
                  candidate whose intersection with a crowd box is > 0.5 of its own area
                  is ignored
    sampling      torchvision's BalancedPositiveNegativeSampler: batch_size_per_image
                  candidates, at most a quarter positive, each set drawn by a uniform
                  permutation, positives first
    regression    torchvision's BoxCoder((10, 10, 5, 5)).encode of the matched ground truth
    levels        torchvision's LevelMapper: floor(k0 + log2(sqrt(area) / s0 + 1e-6)),
                  clamped to 2..5
    mask targets  detectron2's rule: each positive's box mapped back onto the original
                  image (times original / resized size) and its ground-truth mask sampled
                  there by aligned RoIAlign, adaptive sampling (ceil(box side / 28)
                  samples per bin)

The rules' constants (thresholds, the positive fraction, the weights, eps) are
torchvision's defaults typed in here, not read from minimask's config, so a changed
default shows. The sizes of the experiment (min_size, max_size, batch_size_per_image, the
canonical size and level, the mask resolution) come from the config under test.

The one thing shared with minimask is the random source: the permutations are drawn from a
NumPy generator put in the state minimask's global generator had when its RoI sampler ran
(the draws are this module's own: per image a permutation of the positives, then one of
the negatives).
"""

import math

import numpy as np
import torch
from torch_mirror import _axis_samples

FG_IOU_THRESH = BG_IOU_THRESH = 0.5
POSITIVE_FRACTION = 0.25
BOX_REG_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
CROWD_IGNORE = 0.5
LEVEL_EPS = 1e-6
K_MIN, K_MAX = 2, 5


def resized_size(height, width, min_size, max_size):
    scale = min(min_size / min(height, width), max_size / max(height, width))
    return math.floor(height * scale), math.floor(width * scale)


def box_iou(a, b):
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    wh = (
        torch.min(a[:, None, 2:], b[None, :, 2:]) - torch.max(a[:, None, :2], b[None, :, :2])
    ).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def crowd_covered(boxes, crowd):
    if crowd is None or len(crowd) == 0:
        return torch.zeros(len(boxes), dtype=torch.bool)
    wh = (
        torch.min(boxes[:, None, 2:], crowd[None, :, 2:])
        - torch.max(boxes[:, None, :2], crowd[None, :, :2])
    ).clamp(min=0)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return (wh[..., 0] * wh[..., 1] > CROWD_IGNORE * area[:, None]).any(dim=1)


def encode(gt, boxes):
    wx, wy, ww, wh = BOX_REG_WEIGHTS
    pw, ph = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    px, py = boxes[:, 0] + 0.5 * pw, boxes[:, 1] + 0.5 * ph
    gw, gh = gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]
    gx, gy = gt[:, 0] + 0.5 * gw, gt[:, 1] + 0.5 * gh
    return torch.stack(
        [
            wx * (gx - px) / pw,
            wy * (gy - py) / ph,
            ww * torch.log(gw / pw),
            wh * torch.log(gh / ph),
        ],
        dim=1,
    )


def fpn_levels(boxes, canonical_size, canonical_level):
    scale = torch.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    k = torch.floor(canonical_level + torch.log2(scale / canonical_size + LEVEL_EPS))
    return k.clamp(K_MIN, K_MAX).long()


def mask_target(mask, box, resolution):
    """aligned RoIAlign of one (H, W) mask over one box (x1, y1, x2, y2), adaptive sampling:
    (resolution, resolution) float64."""
    height, width = mask.shape
    start = box[:2] - 0.5
    bin_size = (box[2:] - box[:2]) / resolution
    grid_w, grid_h = (int(math.ceil(float(side) / resolution)) for side in box[2:] - box[:2])
    vy, y0, y1, wy0, wy1 = _axis_samples(start[1:], bin_size[1:], resolution, grid_h, height)
    vx, x0, x1, wx0, wx1 = _axis_samples(start[:1], bin_size[:1], resolution, grid_w, width)
    total = 0
    for y_index, y_weight in ((y0[0], wy0[0]), (y1[0], wy1[0])):  # (resolution, grid_h)
        for x_index, x_weight in ((x0[0], wx0[0]), (x1[0], wx1[0])):
            values = mask[y_index[:, None, :, None], x_index[None, :, None, :]]
            weight = y_weight[:, None, :, None] * x_weight[None, :, None, :]
            valid = vy[0][:, None, :, None] & vx[0][None, :, None, :]
            total = total + values * weight * valid
    return total.sum(dim=(2, 3)) / max(grid_h * grid_w, 1)


def roi_head_assignment(proposals, images, targets, cfg, generator_state):
    """The RoI heads' assignment of the batch, in the layout of the mirror's ``assignment``
    (``torch_mirror.minimask_training_steps``): box_rois, box_levels, box_labels,
    box_regression_targets, mask_rois, mask_levels, mask_labels, mask_goal.

    proposals   per image (K_i, 4) NumPy float64, in resized-image pixels (the RPN's output)
    images      the original images (their sizes); targets their original targets
    generator_state  the NumPy bit-generator state of minimask's sampler draws
    """
    generator = np.random.default_rng()
    generator.bit_generator.state = generator_state
    rows = {key: [] for key in ("rois", "labels", "regression", "mask_rois", "mask_labels")}
    goals = []
    for index, (image_proposals, image, target) in enumerate(zip(proposals, images, targets)):
        height, width = image.shape[-2:]
        new_h, new_w = resized_size(height, width, cfg.min_size, cfg.max_size)
        ratio = torch.tensor([new_w / width, new_h / height] * 2, dtype=torch.float64)
        gt = torch.as_tensor(target["boxes"].numpy(), dtype=torch.float64) * ratio
        gt_labels = torch.as_tensor(target["labels"].numpy()).long()
        crowd = target.get("crowd_boxes")
        crowd = (
            None if crowd is None else torch.as_tensor(crowd.numpy(), dtype=torch.float64) * ratio
        )
        candidates = torch.cat([torch.as_tensor(image_proposals, dtype=torch.float64), gt])

        if len(gt):
            best_iou, best_gt = box_iou(gt, candidates).max(dim=0)
            labels = gt_labels[best_gt].clone()
            labels[best_iou < BG_IOU_THRESH] = 0
        else:
            best_gt = torch.zeros(len(candidates), dtype=torch.long)
            labels = torch.zeros(len(candidates), dtype=torch.long)
        labels[crowd_covered(candidates, crowd) & (labels == 0)] = -1

        positive = torch.nonzero(labels >= 1).flatten().numpy()
        negative = torch.nonzero(labels == 0).flatten().numpy()
        num_pos = min(len(positive), int(cfg.box_batch_size_per_image * POSITIVE_FRACTION))
        num_neg = min(len(negative), cfg.box_batch_size_per_image - num_pos)
        pos = positive[generator.permutation(len(positive))[:num_pos]]
        neg = negative[generator.permutation(len(negative))[:num_neg]]
        keep = torch.as_tensor(np.concatenate([pos, neg]).astype(np.int64))
        pos = torch.as_tensor(pos.astype(np.int64))

        regression = torch.zeros(len(keep), 4, dtype=torch.float64)
        if len(pos):
            regression[: len(pos)] = encode(gt[best_gt[pos]], candidates[pos])
        image_column = torch.full((len(keep), 1), float(index), dtype=torch.float64)
        rows["rois"].append(torch.cat([image_column, candidates[keep]], dim=1))
        rows["labels"].append(labels[keep])
        rows["regression"].append(regression)
        rows["mask_rois"].append(torch.cat([image_column[: len(pos)], candidates[pos]], dim=1))
        rows["mask_labels"].append(labels[pos])
        back = torch.tensor([width / new_w, height / new_h] * 2, dtype=torch.float64)
        masks = torch.as_tensor(target["masks"].numpy(), dtype=torch.float64)
        for box, gt_index in zip(candidates[pos] * back, best_gt[pos]):
            goals.append(mask_target(masks[gt_index], box, cfg.mask_resolution))

    rois = torch.cat(rows["rois"])
    mask_rois = torch.cat(rows["mask_rois"])
    levels = dict(canonical_size=cfg.canonical_size, canonical_level=cfg.canonical_level)
    resolution = cfg.mask_resolution
    return {
        "box_rois": rois.numpy(),
        "box_levels": fpn_levels(rois[:, 1:], **levels).numpy(),
        "box_labels": torch.cat(rows["labels"]).numpy(),
        "box_regression_targets": torch.cat(rows["regression"]).numpy(),
        "mask_rois": mask_rois.numpy(),
        "mask_levels": fpn_levels(mask_rois[:, 1:], **levels).numpy(),
        "mask_labels": torch.cat(rows["mask_labels"]).numpy(),
        "mask_goal": (
            torch.stack(goals) if goals else torch.zeros(0, resolution, resolution)
        ).numpy(),
    }
