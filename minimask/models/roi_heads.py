"""RoI heads: from proposals to classified boxes and masks (Mask R-CNN, He et al., 2017).

torchvision.models.detection.roi_heads semantics, with the paper's mask branch.

Training, per image:
  1. the ground-truth boxes are added to the proposals (so every object has at least one
     perfect proposal, which helps most at the start, when the RPN proposes noise);
  2. each proposal is matched to its best ground truth by IoU: >= 0.5 takes that object's
     label, < 0.5 is background (label 0); a background proposal lying mostly in a crowd
     region (intersection > half of its area, the RPN's rule) is ignored instead;
  3. 512 proposals are sampled, at most a quarter of them positive (sampler.py);
  4. box branch: pool 7 x 7 (multi-scale RoIAlign), flatten, fc + ReLU, fc + ReLU, then
     K + 1 class logits and 4 (K + 1) class-specific deltas (weights 10, 10, 5, 5);
  5. mask branch on the positives: pool 14 x 14, 4 x (conv 3x3 + GN + ReLU), deconv 2 x 2
     stride 2 + ReLU, conv 1x1 to one 28 x 28 mask logit map per class.
Losses, with S the sampled proposals of all images, S+ the positives, y their labels:
    loss_classifier = 1/|S| sum_{S} cross_entropy(class logits, y)
    loss_box_reg    = 1/|S| sum_{S+} smooth_l1(deltas of class y - targets; beta = 1/9)
    loss_mask       = mean over S+ and the 28 x 28 cells of
                      BCE-with-logits(mask logit of class y, mask target)
The mask target of a positive is its ground-truth mask resampled into the proposal by
RoIAlign (masks.py), so only the ground-truth class's mask is trained: the classes do not
compete for pixels (the paper's "decoupling", Table 2b). In data-parallel training |S| and
|S+| count every process's RoIs (loss_normalizer.py), and step 3's draws are the image's
own (sampler.image_generator).

Ablations (config.py): ``mask_loss="softmax"`` predicts K + 1 maps (background first) and
trains a per-pixel softmax over them, target class y where the mask target is >= 0.5 and
background elsewhere; ``class_agnostic_masks`` predicts one mask (two maps for softmax:
background, object) for every class.

Inference, per image: class probabilities = softmax(logits); each proposal gives one box
per class (its deltas decoded and clipped to the image); background is dropped; boxes
with probability <= 0.05 or a side < 0.01 pixel are dropped; NMS at IoU 0.5 within each
class; the 100 best stay. The mask head then runs on these boxes and the predicted class's
28 x 28 map becomes the detection's mask probabilities (sigmoid, or the softmax channel).
"""

import numpy as np

from minimask import nn
from minimask.autograd.factories import tensor, zeros
from minimask.autograd.grad_mode import no_grad
from minimask.autograd.ops import cat, sigmoid, softmax
from minimask.models.box_coder import BoxCoder
from minimask.models.crowd import crowd_covered
from minimask.models.loss_normalizer import LossNormalizer
from minimask.models.masks import mask_targets
from minimask.models.matcher import Matcher
from minimask.models.poolers import MultiScaleRoIAlign
from minimask.models.sampler import ROI_STREAM, BalancedPositiveNegativeSampler, image_generator
from minimask.nn import functional as F
from minimask.nn.normalization import group_count
from minimask.ops import batched_nms, box_iou, clip_boxes_to_image, remove_small_boxes

BOX_LOSS_BETA = 1.0 / 9  # smooth-L1 beta of the box head's loss (torchvision)


class BoxHead(nn.Module):
    """torchvision's TwoMLPHead: (R, C, 7, 7) -> flatten -> fc + ReLU -> fc + ReLU -> (R, D)."""

    def __init__(self, in_features, representation_size):
        super().__init__()
        self.fc6 = nn.Linear(in_features, representation_size)
        self.fc7 = nn.Linear(representation_size, representation_size)

    def forward(self, x):
        return F.relu(self.fc7(F.relu(self.fc6(x.flatten(1)))))


class BoxPredictor(nn.Module):
    """(R, D) -> class logits (R, K + 1) and class-specific deltas (R, 4 (K + 1)), class k in
    columns 4k..4k+3. Initialised as Detectron: weights ~ N(0, 0.01^2) for the scores and
    N(0, 0.001^2) for the deltas, biases 0, so training starts from uniform class
    probabilities and the proposals' own boxes."""

    def __init__(self, in_features, num_classes_with_background):
        super().__init__()
        self.cls_score = nn.Linear(in_features, num_classes_with_background)
        self.bbox_pred = nn.Linear(in_features, 4 * num_classes_with_background)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

    def forward(self, x):
        return self.cls_score(x), self.bbox_pred(x)


class MaskHead(nn.Module):
    """(R, C, 14, 14) -> num_convs x (conv 3x3 + GN + ReLU) -> deconv 2x2 stride 2 + ReLU ->
    conv 1x1 -> (R, out_maps, 28, 28) logits. GroupNorm in the head as in the from-scratch
    recipe (He et al., "Rethinking ImageNet Pre-training"). Init: convs kaiming_normal
    (fan_out, ReLU), the last 1x1 conv N(0, 0.001^2) (Detectron), biases 0."""

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
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.normal_(self.mask_logits.weight, std=0.001)

    def forward(self, x):
        return self.mask_logits(F.relu(self.deconv(self.convs(x))))


class RoIHeads(nn.Module):
    """Box and mask branches of a MaskRCNNConfig ``cfg`` (see the module docstring).

    forward(features, proposals, image_sizes, targets=None) -> (detections, losses)
        features     [P2, .., P5]
        proposals    one (P_i, 4) Tensor per image (RPN output, no gradient)
        image_sizes  [(h, w)] of the resized images
        targets      training only: per-image dicts with "boxes", "labels", "masks",
                     optional "crowd_boxes" and "mask_scale" (see mask_training_targets)
    In training, detections is [] and losses has loss_classifier, loss_box_reg, loss_mask;
    in eval, losses is {} and detections has per image "boxes", "labels", "scores" and
    "masks" (D, 1, 28, 28) probabilities of the predicted class.
    """

    def __init__(self, cfg):
        super().__init__()
        self.num_classes = cfg.num_classes
        common = dict(
            sampling_ratio=cfg.sampling_ratio,
            canonical_size=cfg.canonical_size,
            canonical_level=cfg.canonical_level,
            method=cfg.roi_pooler,
        )
        self.box_pooler = MultiScaleRoIAlign(cfg.box_pool_size, **common)
        self.mask_pooler = MultiScaleRoIAlign(cfg.mask_pool_size, **common)
        self.box_head = BoxHead(cfg.fpn_channels * cfg.box_pool_size**2, cfg.box_head_dim)
        self.box_predictor = BoxPredictor(cfg.box_head_dim, cfg.num_classes + 1)
        self.mask_loss_kind = cfg.mask_loss
        self.class_agnostic_masks = cfg.class_agnostic_masks
        mask_classes = 1 if cfg.class_agnostic_masks else cfg.num_classes
        out_maps = mask_classes + (1 if cfg.mask_loss == "softmax" else 0)
        self.mask_head = MaskHead(
            cfg.fpn_channels, cfg.mask_head_channels, cfg.mask_head_convs, out_maps, cfg.num_groups
        )
        self.mask_resolution = cfg.mask_resolution
        self.box_coder = BoxCoder(cfg.box_reg_weights)
        self.matcher = Matcher(cfg.box_fg_iou_thresh, cfg.box_bg_iou_thresh)
        self.sampler = BalancedPositiveNegativeSampler(
            cfg.box_batch_size_per_image, cfg.box_positive_fraction
        )
        self.score_thresh = cfg.box_score_thresh
        self.nms_thresh = cfg.box_nms_thresh
        self.min_size = cfg.box_min_size
        self.detections_per_img = cfg.detections_per_img
        self.loss_normalizer = LossNormalizer()  # MaskRCNN shares one with the RPN

    # ------------------------------------------------------------------ training targets
    def select_training_samples(self, proposals, targets):
        """Steps 1-3 of the module docstring. Returns per image, as lists of Tensors:
        sampled proposals (S_i, 4), labels (S_i,) int64 (0 background), regression targets
        (S_i, 4) (zeros on background rows) and matched ground-truth indices (S_i,)
        (meaningful on positive rows). Positives come first in each image.

        Target assignment runs on the host: per image the IoU matrix (box_iou, where the
        boxes live), the candidates, the labels and the crowd boxes are read once, the
        matching, the crowd rule, the sampling and the encoding are NumPy, and the four
        results go back to the proposals' device once."""
        sampled, labels, regression, matched = [], [], [], []
        for image_proposals, target in zip(proposals, targets):
            gt_boxes = target["boxes"].detach().to(image_proposals.dtype)
            candidates = cat([image_proposals.detach(), gt_boxes])
            quality = box_iou(gt_boxes, candidates).numpy() if gt_boxes.shape[0] else None
            host = candidates.numpy()
            host_gt = host[len(host) - gt_boxes.shape[0] :]  # step 1 appended them last
            crowd = target.get("crowd_boxes")
            host_crowd = None if crowd is None else crowd.numpy()
            host_labels, host_matched = self._label_proposals(
                quality, target["labels"].numpy(), host, host_crowd
            )
            pos, neg = self.sampler(host_labels, image_generator(target, ROI_STREAM))
            keep = np.concatenate([pos, neg])
            deltas = np.zeros((len(keep), 4), dtype=host.dtype)
            deltas[: len(pos)] = self.box_coder.encode(host_gt[host_matched[pos]], host[pos])
            device = image_proposals.device
            sampled.append(tensor(host[keep], device=device))
            labels.append(tensor(host_labels[keep], device=device))
            regression.append(tensor(deltas, device=device))
            matched.append(tensor(host_matched[keep], device=device))
        return sampled, labels, regression, matched

    def _label_proposals(self, quality, gt_labels, candidates, crowd_boxes):
        """Step 2 on host arrays: (labels int64 with -1 = ignored, matched gt index int64)
        of the candidates (P, 4), from their IoU with the G ground truths, ``quality``
        (G, P), None for an image without objects (every candidate is background)."""
        if quality is None:
            labels = np.zeros(len(candidates), dtype=np.int64)
            matched = np.zeros(len(candidates), dtype=np.int64)
        else:
            matches = self.matcher(quality)
            matched = np.clip(matches, 0, None)
            labels = gt_labels.astype(np.int64)[matched]
            labels[matches == Matcher.BELOW_LOW_THRESHOLD] = 0
            labels[matches == Matcher.BETWEEN_THRESHOLDS] = -1
        labels[crowd_covered(candidates, crowd_boxes) & (labels == 0)] = -1
        return labels, matched

    # ------------------------------------------------------------------ branches
    def box_forward(self, features, proposals):
        """Class logits (R, K + 1) and deltas (R, 4 (K + 1)) of the proposals (a list per
        image, rows in order)."""
        pooled = self.box_pooler(features, proposals)
        return self.box_predictor(self.box_head(pooled))

    def mask_forward(self, features, boxes):
        """Mask logits (R, maps, 28, 28) of the boxes (a list per image)."""
        return self.mask_head(self.mask_pooler(features, boxes))

    # ------------------------------------------------------------------ losses
    def box_loss(self, class_logits, box_regression, labels, regression_targets):
        """(loss_classifier, loss_box_reg) of the module docstring; labels and targets are
        the per-image lists of select_training_samples."""
        labels = cat(labels)
        targets = cat(regression_targets)
        host_labels = labels.numpy()
        count = self.loss_normalizer.total(len(host_labels))
        loss_classifier = F.cross_entropy(class_logits, labels, reduction="sum") / count
        positive = np.flatnonzero(host_labels > 0)
        # row i, class y_i of the (R, K + 1, 4) deltas is row i * (K + 1) + y_i of (R (K+1), 4)
        classes = self.num_classes + 1
        rows = tensor(positive * classes + host_labels[positive], device=labels.device)
        per_class = box_regression.reshape(box_regression.shape[0] * classes, 4)
        loss_box = F.smooth_l1_loss(
            per_class[rows],
            targets[tensor(positive, device=labels.device)].detach(),
            beta=BOX_LOSS_BETA,
            reduction="sum",
        )
        return loss_classifier, loss_box / count

    def mask_training_targets(self, sampled, labels, matched, targets):
        """The positives of each image and their (P, 28, 28) mask targets. A target's
        "mask_scale" (sx, sy), when present, maps resized-image pixels back to the pixels of
        its "masks" (the transform leaves masks at their original resolution, so the targets
        are resampled from the exact masks)."""
        positives, positive_labels, gt_masks, gt_boxes, gt_indices = [], [], [], [], []
        for boxes, image_labels, image_matched, target in zip(sampled, labels, matched, targets):
            host_labels = image_labels.numpy()
            pos = tensor(np.flatnonzero(host_labels > 0), device=boxes.device)
            positives.append(boxes[pos])
            positive_labels.append(image_labels[pos])
            sx, sy = target.get("mask_scale", (1.0, 1.0))
            scale = tensor(np.array([sx, sy, sx, sy]), device=boxes.device).to(boxes.dtype)
            gt_boxes.append(boxes[pos] * scale)
            gt_masks.append(target["masks"])
            gt_indices.append(image_matched[pos])
        mask_goal = mask_targets(gt_masks, gt_boxes, gt_indices, self.mask_resolution)
        return positives, cat(positive_labels), mask_goal

    def mask_loss(self, mask_logits, labels, goal, positives=None):
        """loss_mask of the module docstring (or its softmax / class-agnostic ablation).
        mask_logits (P, maps, M, M), labels (P,) in 1..K, goal (P, M, M) in [0, 1];
        positives: the number of positives the mean is over (LossNormalizer.total of a
        data-parallel run), P by default."""
        count, maps, m, _ = mask_logits.shape
        cells = (count if positives is None else positives) * m * m
        host_labels = labels.numpy().astype(np.int64)
        goal = goal.to(mask_logits.dtype).detach()
        if self.mask_loss_kind == "softmax":
            foreground = 1 if self.class_agnostic_masks else host_labels
            inside = goal.numpy() >= 0.5
            classes = np.where(inside, np.reshape(foreground, (-1, 1, 1)), 0).astype(np.int64)
            classes = tensor(classes, device=mask_logits.device)
            return F.cross_entropy(mask_logits, classes, reduction="sum") / cells
        channel = np.zeros(count, np.int64) if self.class_agnostic_masks else host_labels - 1
        rows = tensor(np.arange(count) * maps + channel, device=mask_logits.device)
        chosen = mask_logits.reshape(count * maps, m, m)[rows]
        return F.binary_cross_entropy_with_logits(chosen, goal, reduction="sum") / cells

    def mask_probabilities(self, mask_logits, labels):
        """(D, 1, M, M) probabilities of each detection's mask for its label (inference)."""
        count, maps, m, _ = mask_logits.shape
        host_labels = labels.numpy().astype(np.int64)
        if self.mask_loss_kind == "softmax":
            probs = softmax(mask_logits, dim=1)
            channel = np.ones(count, np.int64) if self.class_agnostic_masks else host_labels
        else:
            probs = sigmoid(mask_logits)
            channel = np.zeros(count, np.int64) if self.class_agnostic_masks else host_labels - 1
        rows = tensor(np.arange(count) * maps + channel, device=mask_logits.device)
        return probs.reshape(count * maps, m, m)[rows].reshape(count, 1, m, m)

    # ------------------------------------------------------------------ inference
    def postprocess_detections(self, class_logits, box_regression, proposals, image_sizes):
        """Per image (boxes (D, 4), scores (D,), labels (D,)): the inference steps of the
        module docstring, before the masks."""
        classes = self.num_classes + 1
        probs = softmax(class_logits, dim=1)
        boxes = self.box_coder.decode(box_regression, cat(proposals))
        results, start = [], 0
        for image_proposals, size in zip(proposals, image_sizes):
            n = image_proposals.shape[0]
            image_boxes = clip_boxes_to_image(
                boxes[start : start + n].reshape(n * classes, 4), size
            ).reshape(n, classes, 4)
            image_scores = probs[start : start + n]
            start += n
            flat_boxes = image_boxes[:, 1:].reshape(n * (classes - 1), 4)
            flat_scores = image_scores[:, 1:].reshape(n * (classes - 1))
            flat_labels = np.tile(np.arange(1, classes, dtype=np.int64), n)
            keep = np.flatnonzero(flat_scores.numpy() > self.score_thresh)
            keep_t = tensor(keep, device=flat_boxes.device)
            flat_boxes, flat_scores = flat_boxes[keep_t], flat_scores[keep_t]
            flat_labels = flat_labels[keep]
            keep_t = remove_small_boxes(flat_boxes, self.min_size)
            flat_boxes, flat_scores = flat_boxes[keep_t], flat_scores[keep_t]
            flat_labels = tensor(flat_labels[keep_t.numpy()], device=flat_boxes.device)
            keep_t = batched_nms(flat_boxes, flat_scores, flat_labels, self.nms_thresh)
            keep_t = keep_t[: self.detections_per_img]
            results.append((flat_boxes[keep_t], flat_scores[keep_t], flat_labels[keep_t]))
        return results

    def forward(self, features, proposals, image_sizes, targets=None):
        if self.training:
            sampled, labels, regression, matched = self.select_training_samples(proposals, targets)
            class_logits, box_regression = self.box_forward(features, sampled)
            loss_classifier, loss_box_reg = self.box_loss(
                class_logits, box_regression, labels, regression
            )
            positives, positive_labels, goal = self.mask_training_targets(
                sampled, labels, matched, targets
            )
            count = self.loss_normalizer.total(positive_labels.shape[0])
            if positive_labels.shape[0] == 0:  # no positive here: nothing to learn
                loss_mask = zeros((), dtype=class_logits.dtype, device=class_logits.device)
            else:
                mask_logits = self.mask_forward(features, positives)
                loss_mask = self.mask_loss(mask_logits, positive_labels, goal, count)
            losses = {
                "loss_classifier": loss_classifier,
                "loss_box_reg": loss_box_reg,
                "loss_mask": loss_mask,
            }
            return [], losses
        with no_grad():
            class_logits, box_regression = self.box_forward(features, proposals)
            found = self.postprocess_detections(
                class_logits, box_regression, proposals, image_sizes
            )
            detections = [{"boxes": b, "scores": s, "labels": lab} for b, s, lab in found]
            boxes = [d["boxes"] for d in detections]
            m = self.mask_resolution
            if sum(b.shape[0] for b in boxes) == 0:
                for d in detections:
                    d["masks"] = zeros((0, 1, m, m), device=d["boxes"].device)
                return detections, {}
            probs = self.mask_probabilities(
                self.mask_forward(features, boxes), cat([d["labels"] for d in detections])
            )
            start = 0
            for d in detections:
                count = d["boxes"].shape[0]
                d["masks"] = probs[start : start + count]
                start += count
            return detections, {}
