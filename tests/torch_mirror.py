"""A PyTorch mirror of minimask's Mask R-CNN, for tests (not collected: no ``test_`` prefix).

Plain torch (no torchvision): the modules of ``MaskRCNN(cfg)`` with the same structure and
the same parameter names, so ``copy_weights(ours, theirs)`` is a ``load_state_dict``, and
the differentiable steps of the training losses written as torch functions:

    TorchMaskRCNN      backbone (ResNetGN) -> fpn (P2..P6) -> rpn.head, and roi_heads with
                       box_head (2 x fc + ReLU), box_predictor, mask_head
                       (4 x (conv3x3 no bias + GN + ReLU) + deconv 2x2/2 + ReLU + conv1x1)
    rpn_outputs        the RPN head's outputs flattened in the anchors' order (N, H, W, A)
    rpn_losses         BCE-with-logits (mean over the sampled anchors) and smooth-L1
                       (beta 1/9, sum over the sampled positives / number sampled)
    roi_align          torchvision's roi_align (aligned=True, fixed sampling ratio) in
                       torch ops: the sample positions and bilinear weights are constants
                       (no gradient into the boxes), the feature values are gathered by
                       indexing, so autograd gives the gradient w.r.t. the feature map
    multi_scale_roi_align  each box pooled from the level it is given (minimask's
                       level_for_boxes output is target assignment, passed in)
    box_losses         cross entropy (mean) and smooth-L1 (beta 1/9) on the gt class's
                       deltas, sum over positives / number sampled
    mask_loss          BCE-with-logits on the gt class's channel, mean

Target assignment (anchors, matching, sampling, proposals, mask targets) is taken from
minimask as given: the mirror checks the network and the losses. The RoI heads' part of it
also has a torch version of its own, by torchvision's rules (``torch_assignment.py``);
tests/test_models_targets.py and tests/test_models_rpn.py check the rest by hand.
"""

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

import minimask as mm
from minimask.autograd import random as mm_random
from minimask.models.level_mapper import level_for_boxes
from minimask.models.rpn import (
    concat_box_prediction_layers,
    rpn_loss,
    rpn_proposals,
    rpn_targets,
)

BOX_LOSS_BETA = 1.0 / 9  # smooth-L1 beta of both box losses (torchvision)


def group_count(num_groups, num_channels):
    """The largest number of groups <= num_groups dividing num_channels (as minimask)."""
    for groups in range(min(num_groups, num_channels), 0, -1):
        if num_channels % groups == 0:
            return groups
    raise ValueError((num_groups, num_channels))


# ------------------------------------------------------------------ modules
class TorchBlock(nn.Module):
    """BasicBlock: conv3x3(stride) -> GN -> ReLU -> conv3x3 -> GN, + shortcut, ReLU."""

    def __init__(self, in_channels, out_channels, stride, num_groups):
        super().__init__()
        groups = group_count(num_groups, out_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.gn1 = nn.GroupNorm(groups, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.gn2 = nn.GroupNorm(groups, out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.GroupNorm(groups, out_channels),
            )

    def forward(self, x):
        out = torch.relu(self.gn1(self.conv1(x)))
        out = self.gn2(self.conv2(out))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))


class TorchResNetGN(nn.Module):
    """Stem conv3x3/2 + GN + ReLU, then layer1..layer4 (first block of each stride 2)."""

    def __init__(self, stage_channels, blocks_per_stage, num_groups):
        super().__init__()
        stem = stage_channels[0]
        self.conv1 = nn.Conv2d(3, stem, 3, 2, 1, bias=False)
        self.gn1 = nn.GroupNorm(group_count(num_groups, stem), stem)
        channels = stem
        for index, (out_channels, blocks) in enumerate(zip(stage_channels, blocks_per_stage)):
            layers = [TorchBlock(channels, out_channels, 2, num_groups)]
            for _ in range(blocks - 1):
                layers.append(TorchBlock(out_channels, out_channels, 1, num_groups))
            setattr(self, f"layer{index + 1}", nn.Sequential(*layers))
            channels = out_channels

    def forward(self, x):
        x = torch.relu(self.gn1(self.conv1(x)))
        maps = []
        for index in range(4):
            x = getattr(self, f"layer{index + 1}")(x)
            maps.append(x)
        return maps  # c2..c5


class TorchFPN(nn.Module):
    """Laterals 1x1, top-down nearest upsampling to the lateral's size, outputs 3x3, and
    P6 = max_pool2d(P5, 1, stride 2)."""

    def __init__(self, in_channels_list, out_channels):
        super().__init__()
        self.lateral_convs = nn.ModuleList(
            [nn.Conv2d(c, out_channels, 1) for c in in_channels_list]
        )
        self.output_convs = nn.ModuleList(
            [nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in in_channels_list]
        )

    def forward(self, maps):
        inner = self.lateral_convs[-1](maps[-1])
        outputs = [self.output_convs[-1](inner)]
        for level in range(len(maps) - 2, -1, -1):
            lateral = self.lateral_convs[level](maps[level])
            inner = lateral + F.interpolate(inner, size=lateral.shape[-2:], mode="nearest")
            outputs.insert(0, self.output_convs[level](inner))
        outputs.append(F.max_pool2d(outputs[-1], 1, 2))
        return outputs  # p2..p6


class TorchRPNHead(nn.Module):
    """conv3x3 + ReLU, then cls_logits (A) and bbox_pred (4A) 1x1 convs, on every level."""

    def __init__(self, channels, num_anchors):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.cls_logits = nn.Conv2d(channels, num_anchors, 1)
        self.bbox_pred = nn.Conv2d(channels, 4 * num_anchors, 1)

    def forward(self, features):
        logits, deltas = [], []
        for feature in features:
            t = torch.relu(self.conv(feature))
            logits.append(self.cls_logits(t))
            deltas.append(self.bbox_pred(t))
        return logits, deltas


class TorchRPN(nn.Module):
    def __init__(self, channels, num_anchors):
        super().__init__()
        self.head = TorchRPNHead(channels, num_anchors)


class TorchBoxHead(nn.Module):
    def __init__(self, in_features, dim):
        super().__init__()
        self.fc6 = nn.Linear(in_features, dim)
        self.fc7 = nn.Linear(dim, dim)

    def forward(self, x):
        return torch.relu(self.fc7(torch.relu(self.fc6(x.flatten(1)))))


class TorchBoxPredictor(nn.Module):
    def __init__(self, in_features, classes):
        super().__init__()
        self.cls_score = nn.Linear(in_features, classes)
        self.bbox_pred = nn.Linear(in_features, 4 * classes)

    def forward(self, x):
        return self.cls_score(x), self.bbox_pred(x)


class TorchMaskHead(nn.Module):
    def __init__(self, in_channels, channels, num_convs, out_maps, num_groups):
        super().__init__()
        layers = []
        for i in range(num_convs):
            layers += [
                nn.Conv2d(in_channels if i == 0 else channels, channels, 3, padding=1, bias=False),
                nn.GroupNorm(group_count(num_groups, channels), channels),
                nn.ReLU(),
            ]
        self.convs = nn.Sequential(*layers)
        self.deconv = nn.ConvTranspose2d(channels, channels, 2, stride=2)
        self.mask_logits = nn.Conv2d(channels, out_maps, 1)

    def forward(self, x):
        return self.mask_logits(torch.relu(self.deconv(self.convs(x))))


class TorchRoIHeads(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.box_head = TorchBoxHead(cfg.fpn_channels * cfg.box_pool_size**2, cfg.box_head_dim)
        self.box_predictor = TorchBoxPredictor(cfg.box_head_dim, cfg.num_classes + 1)
        self.mask_head = TorchMaskHead(
            cfg.fpn_channels,
            cfg.mask_head_channels,
            cfg.mask_head_convs,
            cfg.num_classes,
            cfg.num_groups,
        )


class TorchMaskRCNN(nn.Module):
    """The modules of ``minimask.models.MaskRCNN(cfg)`` with the same parameter names, for
    the paper's configuration (RoIAlign, per-class sigmoid masks)."""

    def __init__(self, cfg):
        super().__init__()
        if cfg.roi_pooler != "align" or cfg.mask_loss != "sigmoid" or cfg.class_agnostic_masks:
            raise ValueError("the mirror covers roi_pooler='align', per-class sigmoid masks")
        self.cfg = cfg
        self.backbone = TorchResNetGN(cfg.stage_channels, cfg.blocks_per_stage, cfg.num_groups)
        self.fpn = TorchFPN(cfg.stage_channels, cfg.fpn_channels)
        self.rpn = TorchRPN(cfg.fpn_channels, len(cfg.anchor_aspect_ratios))
        self.roi_heads = TorchRoIHeads(cfg)

    def features(self, batch):
        """[P2, .., P6] of the normalised, padded batch."""
        return self.fpn(self.backbone(batch))

    def losses(self, batch, assignment, internals=None):
        """The five loss terms (a dict with minimask's names) of ``batch`` (N, 3, H, W) for
        the target assignment that minimask made (``minimask_training_steps``' second
        result). A dict ``internals`` is filled with the features and the heads' outputs."""
        cfg = self.cfg
        features = self.features(batch)
        objectness, deltas = rpn_outputs(*self.rpn.head(features))
        loss_objectness, loss_rpn_box = rpn_losses(
            objectness,
            deltas,
            assignment["rpn_labels"],
            assignment["rpn_regression_targets"],
            assignment["rpn_positive_rows"],
            assignment["rpn_sampled_rows"],
        )
        pooled = multi_scale_roi_align(
            features[:4],
            assignment["box_rois"],
            assignment["box_levels"],
            cfg.box_pool_size,
            cfg.sampling_ratio,
        )
        class_logits, box_regression = self.roi_heads.box_predictor(self.roi_heads.box_head(pooled))
        loss_classifier, loss_box_reg = box_losses(
            class_logits,
            box_regression,
            assignment["box_labels"],
            assignment["box_regression_targets"],
        )
        pooled = multi_scale_roi_align(
            features[:4],
            assignment["mask_rois"],
            assignment["mask_levels"],
            cfg.mask_pool_size,
            cfg.sampling_ratio,
        )
        mask_logits = self.roi_heads.mask_head(pooled)
        if internals is not None:
            internals.update(
                features=features,
                objectness=objectness,
                box_deltas=deltas,
                class_logits=class_logits,
                box_regression=box_regression,
                mask_logits=mask_logits,
            )
        return {
            "loss_objectness": loss_objectness,
            "loss_rpn_box_reg": loss_rpn_box,
            "loss_classifier": loss_classifier,
            "loss_box_reg": loss_box_reg,
            "loss_mask": mask_loss(mask_logits, assignment["mask_labels"], assignment["mask_goal"]),
        }


def copy_weights(ours, theirs):
    """Load a minimask module's state_dict into its torch mirror (same names and shapes;
    strict, so a missing or extra name fails). Returns ``theirs``."""
    theirs.load_state_dict(
        {k: torch.tensor(np.asarray(v.numpy())) for k, v in ours.state_dict().items()}
    )
    return theirs


# ------------------------------------------------------------------ RPN
def rpn_outputs(logits, deltas):
    """Flatten per-level (N, A, H, W) logits and (N, 4A, H, W) deltas into (N, P) and
    (N, P, 4), row (y * W + x) * A + a of a level being anchor a at cell (y, x)."""
    flat_logits, flat_deltas = [], []
    for level_logits, level_deltas in zip(logits, deltas):
        n, a, h, w = level_logits.shape
        flat_logits.append(level_logits.permute(0, 2, 3, 1).reshape(n, h * w * a))
        box = level_deltas.reshape(n, a, 4, h, w).permute(0, 3, 4, 1, 2)
        flat_deltas.append(box.reshape(n, h * w * a, 4))
    return torch.cat(flat_logits, 1), torch.cat(flat_deltas, 1)


def rpn_losses(objectness, deltas, labels, regression_targets, positive_rows, sampled_rows):
    """(loss_objectness, loss_rpn_box_reg). labels (N, P) and regression_targets (N, P, 4)
    arrays; positive_rows and sampled_rows: the sampled rows of the flattened (N * P) batch
    (positives are part of sampled_rows)."""
    n, p = objectness.shape
    flat_logits = objectness.reshape(n * p)
    flat_deltas = deltas.reshape(n * p, 4)
    labels = torch.as_tensor(np.asarray(labels).reshape(n * p), dtype=objectness.dtype)
    targets = torch.as_tensor(np.asarray(regression_targets).reshape(n * p, 4), dtype=deltas.dtype)
    sampled = torch.as_tensor(np.asarray(sampled_rows, dtype=np.int64))
    positive = torch.as_tensor(np.asarray(positive_rows, dtype=np.int64))
    loss_objectness = F.binary_cross_entropy_with_logits(flat_logits[sampled], labels[sampled])
    loss_box = F.smooth_l1_loss(
        flat_deltas[positive], targets[positive], beta=BOX_LOSS_BETA, reduction="sum"
    )
    return loss_objectness, loss_box / len(sampled)


# ------------------------------------------------------------------ RoIAlign
def _axis_samples(start, bin_size, pooled, grid, size):
    """Sample positions of one axis, (K, pooled, grid), and torchvision's border rule:
    (valid, low, high, weight_low, weight_high), each (K, pooled, grid).

    A sample at t < -1 or t > size reads nothing (valid False); otherwise t is clamped to
    >= 0, low = floor(t), and if low >= size - 1 both corners are the last cell (t = low);
    the weights are (1 - (t - low), t - low)."""
    bins = torch.arange(pooled, dtype=torch.float64)[None, :, None]
    subs = torch.arange(grid, dtype=torch.float64)[None, None, :]
    start, bin_size = start[:, None, None], bin_size[:, None, None]
    t = start + bins * bin_size + (subs + 0.5) * bin_size / grid
    valid = (t >= -1.0) & (t <= size)
    t = t.clamp(min=0.0)
    low = t.floor().long()
    at_edge = low >= size - 1
    low = torch.where(at_edge, torch.full_like(low, size - 1), low)
    high = torch.where(at_edge, low, low + 1)
    t = torch.where(at_edge, low.to(t.dtype), t)
    frac = t - low.to(t.dtype)
    return valid, low, high, 1.0 - frac, frac


def roi_align(feature, rois, output_size, spatial_scale, sampling_ratio):
    """torchvision.ops.roi_align(feature, rois, output_size, spatial_scale, sampling_ratio,
    aligned=True) in torch ops, differentiable w.r.t. ``feature`` (N, C, H, W).

    rois (K, 5) rows (batch_index, x1, y1, x2, y2) (array, no gradient), sampling_ratio > 0.
    Bin (ph, pw) of box k is the mean of sampling_ratio^2 bilinear samples at
        y = y1 * s - 0.5 + (ph + (iy + 0.5) / g) * bin_h,  bin_h = (y2 - y1) * s / PH
    (the same for x), with the border rule of ``_axis_samples``.
    """
    if sampling_ratio <= 0:
        raise ValueError("the mirror implements a fixed sampling_ratio only")
    rois = torch.as_tensor(np.asarray(rois, dtype=np.float64)).reshape(-1, 5)
    _, channels, height, width = feature.shape
    pooled_h = pooled_w = output_size
    grid = sampling_ratio
    start_w = rois[:, 1] * spatial_scale - 0.5
    start_h = rois[:, 2] * spatial_scale - 0.5
    bin_w = (rois[:, 3] * spatial_scale - 0.5 - start_w) / pooled_w
    bin_h = (rois[:, 4] * spatial_scale - 0.5 - start_h) / pooled_h
    vy, y_low, y_high, wy_low, wy_high = _axis_samples(start_h, bin_h, pooled_h, grid, height)
    vx, x_low, x_high, wx_low, wx_high = _axis_samples(start_w, bin_w, pooled_w, grid, width)

    # Broadcast to (K, PH, PW, gy, gx): y terms vary along (PH, gy), x terms along (PW, gx).
    def along_y(t):
        return t[:, :, None, :, None]

    def along_x(t):
        return t[:, None, :, None, :]

    batch_index = rois[:, 0].long()[:, None, None, None, None]
    valid = (along_y(vy) & along_x(vx)).to(feature.dtype)
    channels_last = feature.permute(0, 2, 3, 1)  # (N, H, W, C): gather cells' C vectors
    total = 0
    for y_index, y_weight in ((y_low, wy_low), (y_high, wy_high)):
        for x_index, x_weight in ((x_low, wx_low), (x_high, wx_high)):
            values = channels_last[batch_index, along_y(y_index), along_x(x_index)]
            weight = (along_y(y_weight) * along_x(x_weight)).to(feature.dtype) * valid
            total = total + values * weight[..., None]
    out = total.sum(dim=(3, 4)) / (grid * grid)  # (K, PH, PW, C)
    return out.permute(0, 3, 1, 2)


def multi_scale_roi_align(features, rois, levels, output_size, sampling_ratio, k_min=2):
    """Pool each roi (K, 5) from features[levels[i] - k_min] (stride 2**level, aligned
    RoIAlign); rows come back in the rois' order. ``levels`` is minimask's
    level_for_boxes output (target assignment)."""
    rois = np.asarray(rois, dtype=np.float64).reshape(-1, 5)
    levels = np.asarray(levels, dtype=np.int64)
    pooled, order = [], []
    for offset, feature in enumerate(features):
        rows = np.flatnonzero(levels == k_min + offset)
        if rows.size == 0:
            continue
        level = k_min + offset
        pooled.append(roi_align(feature, rois[rows], output_size, 1.0 / 2**level, sampling_ratio))
        order.append(rows)
    order = np.concatenate(order)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return torch.cat(pooled)[torch.as_tensor(inverse)]


# ------------------------------------------------------------------ RoI head losses
def box_losses(class_logits, box_regression, labels, regression_targets):
    """(loss_classifier, loss_box_reg): cross entropy (mean over the R sampled proposals),
    and smooth-L1 (beta 1/9) of the gt class's deltas on the positives, summed, / R."""
    labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    targets = torch.as_tensor(np.asarray(regression_targets), dtype=box_regression.dtype)
    loss_classifier = F.cross_entropy(class_logits, labels)
    positive = torch.nonzero(labels > 0).flatten()
    per_class = box_regression.reshape(box_regression.shape[0], -1, 4)
    loss_box = F.smooth_l1_loss(
        per_class[positive, labels[positive]],
        targets[positive],
        beta=BOX_LOSS_BETA,
        reduction="sum",
    )
    return loss_classifier, loss_box / labels.numel()


def mask_loss(mask_logits, labels, goal):
    """BCE-with-logits of the gt class's channel (label - 1) against goal (P, M, M), mean."""
    labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    goal = torch.as_tensor(np.asarray(goal), dtype=mask_logits.dtype)
    chosen = mask_logits[torch.arange(len(labels)), labels - 1]
    return F.binary_cross_entropy_with_logits(chosen, goal)


# ------------------------------------------------------------------ minimask's side
# Test-only helpers that drive minimask (no torch): synthetic data, weights that give
# every stage a non-trivial gradient, and the model's training forward step by step.
class RecordingSampler:
    """Wraps a BalancedPositiveNegativeSampler and keeps each call's (positive, negative)
    index arrays: the draws are the sampler's own, only recorded."""

    def __init__(self, sampler):
        self.sampler = sampler
        self.draws = []

    def __call__(self, labels, generator=None):
        positive, negative = self.sampler(labels, generator)
        self.draws.append((positive.copy(), negative.copy()))
        return positive, negative


def synthetic_example(seed, height, width, boxes, labels):
    """(image [3, H, W] float64 in [0, 1], target) with an elliptic mask inside each box and
    the object brighter than a smooth random background; boxes in pixels (may be [])."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    image = 0.3 + 0.1 * rng.uniform(size=(3, 1, 1)) * np.sin(xs / 7 + rng.uniform(0, 6))
    image = image + 0.05 * rng.uniform(size=(3, height, width))
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    masks = np.zeros((len(boxes), height, width), dtype=np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
        masks[i] = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1
        image = image + 0.4 * masks[i] * rng.uniform(0.5, 1.0, size=(3, 1, 1))
    target = {
        "boxes": mm.tensor(boxes),
        "labels": mm.tensor(np.asarray(labels, dtype=np.int64).reshape(-1)),
        "masks": mm.tensor(masks),
    }
    return mm.tensor(np.clip(image, 0, 1).astype(np.float64)), target


def randomize_weights(model, seed):
    """Replace the initialisation's special values, in place, so that every stage has an
    O(1) effect on the losses (with the init, the box deltas and mask logits are ~1e-3 and
    the gradients behind them ~1e-3 of the others, hiding errors there), and so that a
    swapped weight/bias or a dropped bias would show: GN weights U(0.5, 1.5), GN and conv
    biases U(-0.2, 0.2), the RPN head's 1x1 convs, the box predictor and the mask logits
    N(0, 0.1^2) (a sigmoid / softmax input of O(1))."""
    rng = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        shape = p.shape
        if len(shape) == 1 and name.endswith("weight"):  # GroupNorm scale
            p.data[...] = rng.uniform(0.5, 1.5, size=shape)
        elif name.endswith("bias"):
            p.data[...] = rng.uniform(-0.2, 0.2, size=shape)
        elif any(part in name for part in ("rpn.head.cls", "rpn.head.bbox", "box_predictor")):
            p.data[...] = rng.normal(0, 0.1, size=shape)
        elif "mask_logits" in name:
            p.data[...] = rng.normal(0, 0.1, size=shape)
    return model


def minimask_training_steps(model, images, targets, seed, proposals=None):
    """``model(images, targets)`` in training mode, called piece by piece in the model's own
    order (so the global generator's draws are the same): transform, features, RPN head,
    proposals, RPN targets and loss (its sampler recorded), RoI sampling, box branch and
    loss, mask targets, mask branch and loss.

    ``proposals`` given (one (K_i, 4) Tensor per image): used instead of the RPN's, which
    makes the losses a function of the parameters only (the proposals' coordinates depend
    on the parameters, but they are constants to autograd: a finite-difference check must
    hold them fixed).

    Returns (losses, assignment, internals): losses has the five loss Tensors (with their
    graph); assignment the target assignment as NumPy arrays (TorchMaskRCNN.losses' input);
    internals the batch, features, proposals, the heads' outputs and the state of the
    global generator when the RoI sampler drew (``torch_assignment`` draws from it).
    """
    cfg, rpn, heads = model.cfg, model.rpn, model.roi_heads
    mm.manual_seed(seed)
    batch, image_sizes, targets = model.transform(images, targets)
    features = model.features(batch)
    logits, deltas = rpn.head(features)
    anchors_per_level = rpn.anchors(tuple(batch.shape[-2:]), features)
    objectness, box_deltas = concat_box_prediction_layers(logits, deltas)
    if proposals is None:
        proposals = [
            rpn_proposals(
                objectness[i],
                box_deltas[i],
                anchors_per_level,
                image_sizes[i],
                rpn.box_coder,
                rpn.pre_nms_top_n[rpn.training],
                rpn.post_nms_top_n[rpn.training],
                rpn.nms_thresh,
                rpn.min_size,
            )[0]
            for i in range(len(image_sizes))
        ]
    anchors = mm.cat(anchors_per_level)
    rpn_labels, rpn_regression = [], []
    for target in targets:
        image_labels, image_targets = rpn_targets(
            anchors, target["boxes"], target.get("crowd_boxes"), rpn.matcher, rpn.box_coder
        )
        rpn_labels.append(image_labels)
        rpn_regression.append(image_targets)
    recorder = RecordingSampler(rpn.sampler)
    loss_objectness, loss_rpn_box = rpn_loss(
        objectness, box_deltas, rpn_labels, rpn_regression, recorder
    )
    roi_sampler_state = mm_random.default_generator().bit_generator.state
    sampled, box_labels, box_regression_targets, matched = heads.select_training_samples(
        proposals, targets
    )
    roi_features = model.roi_features(features)
    class_logits, box_regression = heads.box_forward(roi_features, sampled)
    loss_classifier, loss_box_reg = heads.box_loss(
        class_logits, box_regression, box_labels, box_regression_targets
    )
    positives, positive_labels, goal = heads.mask_training_targets(
        sampled, box_labels, matched, targets
    )
    mask_logits = heads.mask_forward(roi_features, positives)
    loss_mask = heads.mask_loss(mask_logits, positive_labels, goal)
    losses = {
        "loss_objectness": loss_objectness,
        "loss_rpn_box_reg": loss_rpn_box,
        "loss_classifier": loss_classifier,
        "loss_box_reg": loss_box_reg,
        "loss_mask": loss_mask,
    }

    num_anchors = objectness.shape[1]
    positive_rows = [pos + i * num_anchors for i, (pos, _) in enumerate(recorder.draws)]
    negative_rows = [neg + i * num_anchors for i, (_, neg) in enumerate(recorder.draws)]

    def rois(boxes):
        """(K, 5) rows (image index, x1, y1, x2, y2) and their FPN levels."""
        parts = [b.numpy().astype(np.float64).reshape(-1, 4) for b in boxes]
        index = np.concatenate([np.full(len(p), i, dtype=np.float64) for i, p in enumerate(parts)])
        coords = np.concatenate(parts)
        levels = level_for_boxes(
            coords, canonical_size=cfg.canonical_size, canonical_level=cfg.canonical_level
        )
        return np.concatenate([index[:, None], coords], axis=1), levels

    box_rois, box_levels = rois(sampled)
    mask_rois, mask_levels = rois(positives)
    assignment = {
        "rpn_labels": np.stack([t.numpy() for t in rpn_labels]),
        "rpn_regression_targets": np.stack([t.numpy() for t in rpn_regression]),
        "rpn_positive_rows": np.concatenate(positive_rows).astype(np.int64),
        "rpn_sampled_rows": np.concatenate(positive_rows + negative_rows).astype(np.int64),
        "box_rois": box_rois,
        "box_levels": box_levels,
        "box_labels": np.concatenate([t.numpy() for t in box_labels]),
        "box_regression_targets": np.concatenate([t.numpy() for t in box_regression_targets]),
        "mask_rois": mask_rois,
        "mask_levels": mask_levels,
        "mask_labels": positive_labels.numpy(),
        "mask_goal": goal.numpy(),
    }
    internals = {
        "batch": batch,
        "features": features,
        "proposals": proposals,
        "objectness": objectness,
        "box_deltas": box_deltas,
        "class_logits": class_logits,
        "box_regression": box_regression,
        "mask_logits": mask_logits,
        "roi_sampler_state": roi_sampler_state,
    }
    return losses, assignment, internals
