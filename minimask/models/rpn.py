"""Region Proposal Network (Ren et al., "Faster R-CNN", 2015; with FPN, Lin et al., 2017).

torchvision.models.detection.rpn semantics. At every cell of every FPN level there are A
anchors (anchors.py). A small head, shared by all levels, predicts for each anchor
    an objectness logit  o      (is there an object here?)
    four deltas          (dx, dy, dw, dh)   (how to move the anchor onto it, box_coder.py)
Training (one image at a time):
    rpn_targets  label each anchor 1 (object) / 0 (background) / -1 (ignored) with the
                 Matcher (IoU >= 0.7 positive, < 0.3 negative, best anchor of each gt
                 positive too), and encode the matched gt box of each positive;
    rpn_loss     sample 256 anchors (half positive at most) per image, and
                     loss_objectness  = mean over sampled of BCE-with-logits(o, label)
                     loss_rpn_box_reg = sum over sampled positives of smooth_l1(d, t; beta=1/9)
                                        / number of sampled anchors
Inference (and producing proposals for the RoI heads): rpn_proposals keeps the top
pre_nms_top_n anchors of each level by objectness, decodes, clips to the image, drops tiny
boxes, runs NMS (0.7) within each level and keeps the post_nms_top_n best overall.

Layout: the anchors of a level are ordered (y, x, anchor): row = (y * W + x) * A + a
(AnchorGenerator.grid_anchors). The head outputs (N, A, H, W) and (N, 4A, H, W), so
``concat_box_prediction_layers`` permutes them to (N, H, W, A) before flattening, which
puts every prediction on the row of its own anchor.
"""

import numpy as np

from minimask import nn
from minimask.autograd import no_grad
from minimask.autograd.factories import tensor
from minimask.autograd.ops import cat, sigmoid, topk
from minimask.models.anchors import AnchorGenerator
from minimask.models.box_coder import BoxCoder
from minimask.models.crowd import crowd_covered
from minimask.models.loss_normalizer import LossNormalizer
from minimask.models.matcher import Matcher
from minimask.models.sampler import RPN_STREAM, BalancedPositiveNegativeSampler, image_generator
from minimask.nn import functional as F
from minimask.ops import batched_nms, box_iou, clip_boxes_to_image, remove_small_boxes

RPN_BOX_LOSS_BETA = 1.0 / 9  # smooth-L1 beta of the RPN box loss (torchvision, Detectron)


class RPNHead(nn.Module):
    """conv 3x3 (in -> in) + ReLU, then two 1x1 convs: ``cls_logits`` (A objectness logits)
    and ``bbox_pred`` (4A deltas, anchor a in channels 4a..4a+3), applied to every level
    with the same weights. All weights ~ N(0, 0.01^2), biases 0 (torchvision's init).

    forward(features: list of (N, C, H, W)) -> (list of (N, A, H, W), list of (N, 4A, H, W))
    """

    def __init__(self, in_channels, num_anchors):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.cls_logits = nn.Conv2d(in_channels, num_anchors, 1)
        self.bbox_pred = nn.Conv2d(in_channels, 4 * num_anchors, 1)
        for conv in (self.conv, self.cls_logits, self.bbox_pred):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, features):
        logits, deltas = [], []
        for feature in features:
            t = F.relu(self.conv(feature))
            logits.append(self.cls_logits(t))
            deltas.append(self.bbox_pred(t))
        return logits, deltas


def concat_box_prediction_layers(objectness, deltas):
    """Flatten the per-level head outputs into the anchors' order.

    objectness: list of (N, A, H, W); deltas: list of (N, 4A, H, W), levels in the order of
    the anchors. Returns (N, sum H*W*A) logits and (N, sum H*W*A, 4) deltas, row
    (y * W + x) * A + a of a level being anchor a at cell (y, x):
        (N, A, H, W)    -> permute -> (N, H, W, A)    -> (N, H*W*A)
        (N, 4A, H, W)   -> (N, A, 4, H, W) -> permute -> (N, H, W, A, 4) -> (N, H*W*A, 4)
    """
    flat_logits, flat_deltas = [], []
    for logits, box in zip(objectness, deltas):
        n, a, h, w = logits.shape
        if box.shape != (n, 4 * a, h, w):
            raise ValueError(
                f"concat_box_prediction_layers: deltas {box.shape} do not match objectness "
                f"{logits.shape} (expected {(n, 4 * a, h, w)})"
            )
        flat_logits.append(logits.permute(0, 2, 3, 1).reshape(n, h * w * a))
        box = box.reshape(n, a, 4, h, w).permute(0, 3, 4, 1, 2)
        flat_deltas.append(box.reshape(n, h * w * a, 4))
    return cat(flat_logits, dim=1), cat(flat_deltas, dim=1)


def rpn_targets(anchors, gt_boxes, crowd_boxes, matcher, box_coder):
    """Training targets of one image.

    anchors (P, 4), gt_boxes (G, 4) (G may be 0), crowd_boxes (C, 4) or None: Tensors.
    matcher: Matcher(0.7, 0.3, allow_low_quality_matches=True) for the RPN;
    box_coder: BoxCoder((1, 1, 1, 1)).
    Returns (labels (P,) float32: 1 / 0 / -1, regression_targets (P, 4)), where
        label 1   the Matcher matched the anchor to a gt (IoU >= 0.7, or it is a gt's best
                  anchor: the low-quality rule)
        label -1  the Matcher says between thresholds (0.3 <= IoU < 0.7), or the crowd rule
        label 0   otherwise (IoU < 0.3 with every gt, or there is no gt)
    Crowd rule (minimask's choice, models/crowd.py; torchvision and Detectron's RPN drop
    crowd boxes from the targets instead):
    an anchor that is not positive and whose intersection with some crowd box exceeds half
    of its own area is ignored (-1). It lies mostly inside a crowd region, where "no object"
    is not a trustworthy label. Positives stay positive.
    regression_targets = box_coder.encode(matched gt, anchor) on positive rows, 0 elsewhere
    (only positives enter the box loss). No gradient flows into the targets.

    Target assignment runs on the host: the IoU matrix (box_iou, where the boxes live), the
    anchors, the ground truths and the crowd boxes are read once, the matching, the crowd
    rule and the encoding are NumPy, and the two results go back to the anchors' device.
    """
    host_anchors = anchors.numpy()
    labels = np.zeros(len(host_anchors), dtype=np.float32)
    targets = np.zeros((len(host_anchors), 4), dtype=host_anchors.dtype)
    if gt_boxes is not None and gt_boxes.shape[0] > 0:
        matches = matcher(box_iou(gt_boxes, anchors).numpy())  # (P,)
        labels[matches >= 0] = 1
        labels[matches == matcher.BETWEEN_THRESHOLDS] = -1
        positive = np.flatnonzero(matches >= 0)
        matched_gt = gt_boxes.numpy()[matches[positive]].astype(host_anchors.dtype)
        targets[positive] = box_coder.encode(matched_gt, host_anchors[positive])
    host_crowd = None if crowd_boxes is None else crowd_boxes.numpy()
    labels[crowd_covered(host_anchors, host_crowd) & (labels != 1)] = -1
    device = anchors.device
    return tensor(labels, device=device), tensor(targets, device=device)


def rpn_loss(objectness, deltas, labels, regression_targets, sampler, generators=None, total=None):
    """The two RPN losses of a batch.

    objectness (N, P) logits and deltas (N, P, 4) as concat_box_prediction_layers returns
    them; labels: list of N (P,) Tensors and regression_targets: list of N (P, 4) Tensors
    from rpn_targets; sampler: BalancedPositiveNegativeSampler(256, 0.5), called once per
    image, drawing from ``generators[i]`` (sampler.image_generator), or from minimask's
    global generator without them (seed it with minimask.manual_seed). ``total``: the
    LossNormalizer.total of a data-parallel run, making |S| the count over every process
    (loss_normalizer.py); None: this batch's |S|.
    With S the sampled anchors of all images and S+ its positives:
        loss_objectness  = 1/|S| sum_{i in S} [ -y_i log s(o_i) - (1 - y_i) log(1 - s(o_i)) ]
        loss_rpn_box_reg = 1/|S| sum_{i in S+} sum_{c} smooth_l1(d_ic - t_ic; beta = 1/9)
    (s = sigmoid). Dividing the box loss by |S| rather than |S+| is torchvision's choice:
    it weighs each positive as one sampled anchor. Returns (loss_objectness,
    loss_rpn_box_reg), scalars. The sampler reads each image's labels once, on the host; the
    rows it draws index the Tensors once.
    """
    num_images, num_anchors = objectness.shape
    pos_rows, neg_rows = [], []
    for i in range(num_images):
        pos, neg = sampler(labels[i].numpy(), None if generators is None else generators[i])
        offset = i * num_anchors  # rows of the (N * P) flattened batch
        pos_rows.append(pos + offset)
        neg_rows.append(neg + offset)
    pos_idx = np.concatenate(pos_rows).astype(np.int64)
    sampled = np.concatenate([pos_idx, *neg_rows]).astype(np.int64)
    if sampled.size == 0:
        raise ValueError("rpn_loss: no anchor was sampled (every label is -1)")
    device = objectness.device
    flat_logits = objectness.reshape(num_images * num_anchors)
    flat_deltas = deltas.reshape(num_images * num_anchors, 4)
    flat_labels = cat([lab.reshape(num_anchors) for lab in labels]).to(objectness.dtype)
    flat_targets = cat([t.reshape(num_anchors, 4) for t in regression_targets])
    count = sampled.size if total is None else total(sampled.size)
    sampled_t = tensor(sampled, device=device)
    loss_objectness = F.binary_cross_entropy_with_logits(
        flat_logits[sampled_t], flat_labels[sampled_t].detach(), reduction="sum"
    )
    pos_t = tensor(pos_idx, device=device)
    box_loss = F.smooth_l1_loss(
        flat_deltas[pos_t],
        flat_targets[pos_t].to(deltas.dtype).detach(),
        beta=RPN_BOX_LOSS_BETA,
        reduction="sum",
    )
    return loss_objectness / count, box_loss / count


def rpn_proposals(
    objectness,
    deltas,
    anchors_per_level,
    image_size,
    box_coder,
    pre_nms_top_n,
    post_nms_top_n,
    nms_thresh=0.7,
    min_size=1e-3,
):
    """Proposals of one image, without gradient (the RoI heads treat them as constants).

    objectness (P,) logits and deltas (P, 4) of this image (a row of the flattened batch);
    anchors_per_level: list of (H*W*A, 4) Tensors (AnchorGenerator.grid_anchors), whose
    lengths split the P rows into levels; image_size (height, width); box_coder
    BoxCoder((1, 1, 1, 1)). Steps (torchvision's filter_proposals):
      1. each level: the pre_nms_top_n anchors with the largest logits (all if fewer),
         so the finest level (most anchors) cannot crowd out the others;
      2. decode their deltas, clip the boxes into [0, width] x [0, height];
      3. drop boxes with a side < min_size;
      4. NMS at nms_thresh within each level (batched_nms, level as the category);
      5. keep the post_nms_top_n best by score overall.
    Returns (boxes (K, 4), scores (K,)), K <= post_nms_top_n, scores = sigmoid(logit) in
    descending order.
    """
    counts = [a.shape[0] for a in anchors_per_level]
    if sum(counts) != objectness.shape[0] or deltas.shape != (objectness.shape[0], 4):
        raise ValueError(
            f"rpn_proposals: objectness {objectness.shape} and deltas {deltas.shape} do not "
            f"match the {sum(counts)} anchors of the levels"
        )
    device = objectness.device
    with no_grad():
        objectness, deltas = objectness.detach(), deltas.detach()
        top_logits, top_rows, levels = [], [], []
        start = 0
        for level, count in enumerate(counts):
            if count == 0:
                continue
            logits, rows = topk(objectness[start : start + count], min(pre_nms_top_n, count))
            top_logits.append(logits)
            top_rows.append(rows + start)
            levels.append(np.full(rows.shape[0], level, dtype=np.int64))
            start += count
        top_rows = cat(top_rows)
        anchors = cat([a.detach() for a in anchors_per_level])[top_rows]
        boxes = clip_boxes_to_image(box_coder.decode(deltas[top_rows], anchors), image_size)
        scores = sigmoid(cat(top_logits))
        levels = tensor(np.concatenate(levels), device=device)
        keep = remove_small_boxes(boxes, min_size)
        boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
        keep = batched_nms(boxes, scores, levels, nms_thresh)[:post_nms_top_n]
        return boxes[keep], scores[keep]


class RegionProposalNetwork(nn.Module):
    """The RPN of one model: head, anchors, target assignment, losses and proposals.

    forward(image_shape, image_sizes, features, targets=None) -> (proposals, losses)
        image_shape   (H, W) of the padded batch (the anchors cover it)
        image_sizes   [(h, w)] of each resized image inside the batch (proposals are
                      clipped to it)
        features      [P2, .., P6], (N, C, H_k, W_k) each
        targets       training only: per-image dicts with "boxes" and "crowd_boxes"
    proposals: one (K_i, 4) Tensor per image, no gradient. losses: {} in eval mode, else
    {"loss_objectness", "loss_rpn_box_reg"}.
    """

    def __init__(self, cfg):
        super().__init__()
        self.anchor_generator = AnchorGenerator(
            tuple(cfg.anchor_sizes), tuple(cfg.anchor_aspect_ratios)
        )
        self.head = RPNHead(cfg.fpn_channels, self.anchor_generator.num_anchors_per_location()[0])
        self.box_coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
        self.matcher = Matcher(
            cfg.rpn_fg_iou_thresh, cfg.rpn_bg_iou_thresh, allow_low_quality_matches=True
        )
        self.sampler = BalancedPositiveNegativeSampler(
            cfg.rpn_batch_size_per_image, cfg.rpn_positive_fraction
        )
        self.pre_nms_top_n = {True: cfg.rpn_pre_nms_top_n_train, False: cfg.rpn_pre_nms_top_n_test}
        self.post_nms_top_n = {
            True: cfg.rpn_post_nms_top_n_train,
            False: cfg.rpn_post_nms_top_n_test,
        }
        self.nms_thresh = cfg.rpn_nms_thresh
        self.min_size = cfg.rpn_min_size
        self.loss_normalizer = LossNormalizer()  # MaskRCNN shares one with the RoI heads

    def anchors(self, image_shape, features):
        """Anchors of every level for a batch of ``image_shape`` (H, W) and these feature
        maps: one (H_k * W_k * A, 4) Tensor per level; stride = image side // map side."""
        grid_sizes = [tuple(f.shape[-2:]) for f in features]
        return self.anchor_generator.per_level(image_shape, grid_sizes, device=features[0].device)

    def forward(self, image_shape, image_sizes, features, targets=None):
        logits, deltas = self.head(features)
        anchors_per_level = self.anchors(image_shape, features)
        objectness, box_deltas = concat_box_prediction_layers(logits, deltas)
        proposals = [
            rpn_proposals(
                objectness[i],
                box_deltas[i],
                anchors_per_level,
                image_sizes[i],
                self.box_coder,
                self.pre_nms_top_n[self.training],
                self.post_nms_top_n[self.training],
                self.nms_thresh,
                self.min_size,
            )[0]
            for i in range(len(image_sizes))
        ]
        if not self.training:
            return proposals, {}
        anchors = cat(anchors_per_level)
        labels, regression_targets = [], []
        for target in targets:
            image_labels, image_targets = rpn_targets(
                anchors, target["boxes"], target.get("crowd_boxes"), self.matcher, self.box_coder
            )
            labels.append(image_labels)
            regression_targets.append(image_targets)
        loss_objectness, loss_box = rpn_loss(
            objectness,
            box_deltas,
            labels,
            regression_targets,
            self.sampler,
            [image_generator(target, RPN_STREAM) for target in targets],
            self.loss_normalizer.total,
        )
        return proposals, {"loss_objectness": loss_objectness, "loss_rpn_box_reg": loss_box}
