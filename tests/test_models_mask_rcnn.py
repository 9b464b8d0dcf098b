"""Tests of the assembled MaskRCNN (minimask/models/mask_rcnn.py, roi_heads.py, transform.py,
config.py): the torchvision interface (loss dict in training, detections in eval), the
RoI heads' target assignment and losses against hand computations in NumPy, inference
post-processing against a hand-made case, the ablation switches and bad input.

References: NumPy formulas written out here (BCE, softmax cross-entropy, softmax of the
class logits), hand-computed boxes. Tolerances: float32 1e-6 relative for the loss formulas
computed in float32 by both sides; exact equality where both sides only select values.
"""

import dataclasses

import numpy as np
import pytest

import minimask
from minimask.models import MaskRCNN, MaskRCNNConfig
from minimask.models.roi_heads import RoIHeads

NUM_CLASSES = 3


def _square_mask(height, width, box):
    mask = np.zeros((height, width), np.uint8)
    x1, y1, x2, y2 = (int(v) for v in box)
    mask[y1:y2, x1:x2] = 1
    return mask


def _example(height, width, boxes, labels, seed):
    """A noisy image with flat squares at ``boxes`` and its target."""
    rng = np.random.default_rng(seed)
    image = rng.uniform(0.3, 0.5, size=(3, height, width)).astype(np.float32)
    for box, label in zip(boxes, labels):
        x1, y1, x2, y2 = (int(v) for v in box)
        image[:, y1:y2, x1:x2] = 0.2 * label
    masks = np.stack([_square_mask(height, width, b) for b in boxes]) if boxes else None
    target = {
        "boxes": minimask.tensor(np.asarray(boxes, np.float32).reshape(-1, 4)),
        "labels": minimask.tensor(np.asarray(labels, np.int64)),
        "masks": minimask.tensor(
            masks if masks is not None else np.zeros((0, height, width), np.uint8)
        ),
    }
    return minimask.tensor(image), target


def _batch():
    first = _example(64, 64, [[8, 8, 30, 28], [34, 30, 60, 60]], [1, 3], seed=0)
    second = _example(64, 80, [[20, 10, 44, 40]], [2], seed=1)
    return [first[0], second[0]], [first[1], second[1]]


def _model(**overrides):
    minimask.manual_seed(0)
    return MaskRCNN(MaskRCNNConfig.tiny(NUM_CLASSES, **overrides))


def test_training_returns_the_five_finite_losses_and_every_parameter_gets_a_gradient():
    model = _model()
    images, targets = _batch()
    losses = model(images, targets)
    assert set(losses) == {
        "loss_objectness",
        "loss_rpn_box_reg",
        "loss_classifier",
        "loss_box_reg",
        "loss_mask",
    }
    for name, value in losses.items():
        assert value.shape == () and np.isfinite(value.item()), name
    sum(losses.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []


def test_an_image_without_objects_is_a_valid_training_example():
    """Only background: no positive anywhere, so the box and mask losses are exactly 0
    (hand computation: sums over an empty set) and the classifier loss is finite."""
    model = _model()
    image, target = _example(64, 64, [], [], seed=2)
    losses = model([image], [target])
    assert losses["loss_box_reg"].item() == 0.0
    assert losses["loss_mask"].item() == 0.0
    assert losses["loss_rpn_box_reg"].item() == 0.0
    assert np.isfinite(losses["loss_classifier"].item())
    sum(losses.values()).backward()


def test_eval_returns_torchvision_style_detections_in_each_original_image():
    model = _model()
    images, _ = _batch()
    model.eval()
    detections = model(images)
    assert len(detections) == 2
    for image, d in zip(images, detections):
        count = d["boxes"].shape[0]
        assert count <= model.cfg.detections_per_img
        assert d["boxes"].shape == (count, 4) and d["labels"].shape == (count,)
        assert d["masks"].shape == (count, 1) + image.shape[1:]
        labels, scores = d["labels"].numpy(), d["scores"].numpy()
        assert labels.dtype == np.int64 and ((labels >= 1) & (labels <= NUM_CLASSES)).all()
        assert (scores > model.cfg.box_score_thresh).all()
        masks = d["masks"].numpy()
        assert masks.min() >= 0.0 and masks.max() <= 1.0
        boxes = d["boxes"].numpy()
        height, width = image.shape[1:]
        assert (boxes[:, [0, 2]] <= width).all() and (boxes[:, [1, 3]] <= height).all()
        assert (boxes >= 0).all()
    assert not any(p.grad is not None for p in model.parameters())


def test_eval_runs_without_building_a_graph():
    model = _model()
    images, _ = _batch()
    model.eval()
    detections = model(images)
    assert all(not v.requires_grad for d in detections for v in d.values())


@pytest.mark.parametrize(
    "overrides, maps",
    [
        ({"roi_pooler": "pool"}, NUM_CLASSES),
        ({"roi_pooler": "warp"}, NUM_CLASSES),
        ({"mask_loss": "softmax"}, NUM_CLASSES + 1),
        ({"class_agnostic_masks": True}, 1),
        ({"mask_loss": "softmax", "class_agnostic_masks": True}, 2),
    ],
)
def test_ablation_switches_train_and_predict(overrides, maps):
    model = _model(**overrides)
    assert model.roi_heads.mask_head.mask_logits.weight.shape[0] == maps
    images, targets = _batch()
    losses = model(images, targets)
    assert all(np.isfinite(v.item()) for v in losses.values())
    sum(losses.values()).backward()
    model.eval()
    assert len(model(images)) == 2


def test_config_round_trips_through_a_dict_and_rejects_unknown_switches():
    cfg = MaskRCNNConfig.small(5, roi_pooler="warp")
    assert MaskRCNNConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="roi_pooler"):
        MaskRCNNConfig.small(5, roi_pooler="bilinear")
    with pytest.raises(ValueError, match="mask_loss"):
        MaskRCNNConfig.small(5, mask_loss="l2")
    with pytest.raises(ValueError, match="unknown fields"):
        MaskRCNNConfig.from_dict({**cfg.to_dict(), "depth": 50})


def test_scaled_to_multiplies_the_papers_sizes():
    """Hand computation: at 256 pixels the factor is 256 / 512 = 0.5."""
    cfg = MaskRCNNConfig.small(2).scaled_to(256)
    assert cfg.anchor_sizes == (16, 32, 64, 128, 256)
    assert cfg.canonical_size == 112
    assert (cfg.min_size, cfg.max_size) == (256, 384)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.update(labels=minimask.tensor(np.array([1, 4]))), "labels must be in 1..3"),
        (lambda t: t.update(masks=t["masks"][:, :10]), "masks must be"),
        (
            lambda t: t.update(boxes=minimask.tensor(np.array([[5, 5, 2, 9], [0, 0, 4, 4]], "f4"))),
            "box 0",
        ),
        (lambda t: t.pop("labels"), "needs 'boxes', 'labels' and 'masks'"),
    ],
)
def test_bad_targets_are_reported_with_the_image_index(change, message):
    model = _model()
    images, targets = _batch()
    targets[0] = dict(targets[0])
    change(targets[0])
    with pytest.raises(ValueError, match=message) as info:
        model(images, targets)
    assert "target 0" in str(info.value)


def test_training_needs_targets_and_images_must_be_float_chw():
    model = _model()
    images, targets = _batch()
    with pytest.raises(ValueError, match="needs targets"):
        model(images)
    with pytest.raises(ValueError, match=r"image 1: expected a float Tensor \[3, H, W\]"):
        model([images[0], images[1][0]], targets)


# ---------------------------------------------------------------- RoI heads in isolation
def _heads(**overrides):
    minimask.manual_seed(0)
    return RoIHeads(MaskRCNNConfig.tiny(NUM_CLASSES, **overrides))


def test_select_training_samples_adds_the_ground_truth_and_labels_by_iou():
    """Hand-made proposals: one equal to gt 0 shifted by 1 pixel (IoU > 0.5: positive,
    label of gt 0), one far away (background), one inside a crowd box (ignored). The gt
    boxes themselves are added, so both gts are positives with zero regression targets."""
    heads = _heads(box_batch_size_per_image=64)
    gt = np.array([[10, 10, 30, 30], [40, 40, 60, 60]], np.float32)
    proposals = np.array([[11, 10, 31, 30], [0, 40, 8, 48], [44, 2, 60, 14]], np.float32)
    target = {
        "boxes": minimask.tensor(gt),
        "labels": minimask.tensor(np.array([2, 3])),
        "masks": minimask.tensor(np.zeros((2, 64, 64), np.uint8)),
        "crowd_boxes": minimask.tensor(np.array([[42, 0, 64, 16]], np.float32)),
    }
    sampled, labels, regression, matched = heads.select_training_samples(
        [minimask.tensor(proposals)], [target]
    )
    boxes, labels = sampled[0].numpy(), labels[0].numpy()
    rows = {tuple(b): (lab, m) for b, lab, m in zip(boxes.tolist(), labels, matched[0].numpy())}
    assert rows[(11, 10, 31, 30)] == (2, 0)
    assert rows[(10, 10, 30, 30)] == (2, 0) and rows[(40, 40, 60, 60)] == (3, 1)
    assert rows[(0, 40, 8, 48)][0] == 0
    assert (44, 2, 60, 14) not in rows  # inside the crowd region: neither positive nor negative
    assert (labels[:3] > 0).all() and (labels[3:] == 0).all()  # positives first
    for box, delta in zip(boxes.tolist(), regression[0].numpy()):
        if box in ([10, 10, 30, 30], [40, 40, 60, 60]):
            np.testing.assert_array_equal(delta, 0.0)
    # (11, 10, 31, 30) -> gt (10, 10, 30, 30): dx = 10 * (20 - 21) / 20 = -0.5, rest 0
    row = [i for i, b in enumerate(boxes.tolist()) if b == [11, 10, 31, 30]][0]
    np.testing.assert_allclose(regression[0].numpy()[row], [-0.5, 0, 0, 0], atol=1e-6)


def test_a_crowd_box_over_a_positive_roi_leaves_it_positive():
    """The crowd rule ignores background proposals only. By hand: the crowd box
    (30, 30, 64, 64) covers gt (40, 40, 60, 60) and both proposals below entirely.
    Proposal (41, 40, 61, 60) has IoU 380 / 420 > 0.5 with that gt: it stays a positive of
    label 3, matched to gt 1. Proposal (32, 32, 38, 62) has IoU 0 with both gts: it would be
    background, but lies inside the crowd box, so it is ignored (not sampled). Proposal
    (0, 0, 8, 8) is outside the crowd: background."""
    heads = _heads(box_batch_size_per_image=64)
    gt = np.array([[10, 10, 30, 30], [40, 40, 60, 60]], np.float32)
    proposals = np.array([[41, 40, 61, 60], [32, 32, 38, 62], [0, 0, 8, 8]], np.float32)
    target = {
        "boxes": minimask.tensor(gt),
        "labels": minimask.tensor(np.array([2, 3])),
        "masks": minimask.tensor(np.zeros((2, 64, 64), np.uint8)),
        "crowd_boxes": minimask.tensor(np.array([[30, 30, 64, 64]], np.float32)),
    }
    sampled, labels, _, matched = heads.select_training_samples(
        [minimask.tensor(proposals)], [target]
    )
    rows = {
        tuple(b): (lab, m)
        for b, lab, m in zip(sampled[0].numpy().tolist(), labels[0].numpy(), matched[0].numpy())
    }
    assert rows[(41, 40, 61, 60)] == (3, 1)
    assert rows[(40, 40, 60, 60)] == (3, 1)  # the gt itself, also inside the crowd box
    assert (32, 32, 38, 62) not in rows
    assert rows[(0, 0, 8, 8)][0] == 0


def test_roi_sampling_takes_the_papers_512_rois_a_quarter_positive():
    """By hand, from the paper (section 3.1, training: "N sampled RoIs ... ratio of positive
    to negatives 1:3", N = 512 in torchvision and detectron2): with the default config and
    300 positive and 1000 background proposals, the RoI heads sample 128 positives and
    384 negatives; with 40 positives, all 40 and 472 negatives. Exact counts."""
    heads = RoIHeads(MaskRCNNConfig(num_classes=NUM_CLASSES))
    for positives, expected in ((300, (128, 384)), (40, (40, 472))):
        labels = np.concatenate([np.full(positives, 2), np.zeros(1000, np.int64), [-1, -1]])
        pos, neg = heads.sampler(labels)
        assert (len(pos), len(neg)) == expected
        assert (labels[pos] == 2).all() and (labels[neg] == 0).all()


def test_detections_of_a_resized_image_are_mapped_back_by_the_resize_factors():
    """transform.postprocess on a hand-made detection. A 60 x 72 image resized to 64 x 77
    (hand: scale 64 / 60, 72 * 64 / 60 = 76.8 -> 77): box (7.7, 16, 38.5, 48) of the resized
    image is (7.7 * 72 / 77, 16 * 60 / 64, 38.5 * 72 / 77, 48 * 60 / 64) = (7.2, 15, 36, 45)
    in the original (float64, 1e-12); the mask, all ones on its 28 x 28 grid, is pasted
    into that box of the 60 x 72 image: probability 1 well inside, 0 well outside."""
    model = _model()
    detection = {
        "boxes": minimask.tensor(np.array([[7.7, 16.0, 38.5, 48.0]])),
        "labels": minimask.tensor(np.array([2])),
        "scores": minimask.tensor(np.array([0.9])),
        "masks": minimask.tensor(np.ones((1, 1, 28, 28))),
    }
    [result] = model.transform.postprocess([detection], [(64, 77)], [(60, 72)])
    np.testing.assert_allclose(result["boxes"].numpy(), [[7.2, 15.0, 36.0, 45.0]], rtol=1e-12)
    mask = result["masks"].numpy()[0, 0]
    assert mask.shape == (60, 72)
    assert (mask[17:43, 9:34] == 1).all()
    assert mask[:13].max() == 0 and mask[47:].max() == 0
    assert mask[:, :5].max() == 0 and mask[:, 38:].max() == 0


def test_mask_targets_of_a_resized_image_come_from_the_original_mask():
    """A 40 x 60 image with one rectangular object (10, 8, 34, 28) whose mask is exactly
    that rectangle; the tiny preset resizes it by 64 / 40 = 1.6 to 64 x 96. By hand:
    the target's mask_scale is (60 / 96, 40 / 64), and a proposal equal to the resized
    gt box maps back onto the rectangle, so its 28 x 28 target (aligned RoIAlign, one
    sample per bin here) is 1 inside and, on the border cells, the bilinear weight of the
    rectangle's first pixel: a sample at x = 10 - 0.5 + 0.5 * 24 / 28 reads pixel 10 with
    weight 0.5 + 0.5 * 24 / 28 = 13 / 14, at y = 8 - 0.5 + 0.5 * 20 / 28 pixel 8 with
    weight 6 / 7 (and the same at the far edges), so target = outer(ey, ex). An inverted
    scale maps the proposal onto a box 1.6^2 times larger, mostly outside the rectangle.
    Tolerance 1e-5: the boxes are float32 (a coordinate off by a few u * 96 ~ 1e-5 px moves a
    weight by as much)."""
    model = _model()
    model.train()
    image, target = _example(40, 60, [[10, 8, 34, 28]], [1], seed=4)
    _, image_sizes, [resized_target] = model.transform([image], [target])
    assert model.cfg.min_size == 64 and image_sizes[0] == (64, 96)
    assert resized_target["mask_scale"] == pytest.approx((60 / 96, 40 / 64), rel=1e-12)
    _, _, goal = model.roi_heads.mask_training_targets(
        [resized_target["boxes"]],
        [minimask.tensor(np.array([1]))],
        [minimask.tensor(np.array([0]))],
        [resized_target],
    )
    ex, ey = np.ones(28), np.ones(28)
    ex[[0, -1]], ey[[0, -1]] = 13 / 14, 6 / 7
    np.testing.assert_allclose(goal.numpy()[0], np.outer(ey, ex), atol=1e-5)


def _bce(x, t):
    return np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))


def test_sigmoid_mask_loss_uses_only_the_ground_truth_class_channel():
    """NumPy reference: mean BCE-with-logits over the label's channel; float32, 1e-6."""
    heads = _heads()
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, NUM_CLASSES, 4, 4)).astype(np.float32)
    goal = rng.uniform(size=(3, 4, 4)).astype(np.float32)
    labels = np.array([2, 1, 3])
    loss = heads.mask_loss(minimask.tensor(logits), minimask.tensor(labels), minimask.tensor(goal))
    expected = np.mean(_bce(logits[np.arange(3), labels - 1], goal))
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-6)


def test_softmax_mask_loss_is_a_per_pixel_multinomial_with_background():
    """NumPy reference: cross-entropy over K + 1 maps, class y where target >= 0.5, else 0."""
    heads = _heads(mask_loss="softmax")
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, NUM_CLASSES + 1, 4, 4)).astype(np.float64)
    goal = rng.uniform(size=(2, 4, 4))
    labels = np.array([3, 1])
    loss = heads.mask_loss(minimask.tensor(logits), minimask.tensor(labels), minimask.tensor(goal))
    classes = np.where(goal >= 0.5, labels[:, None, None], 0)
    shifted = logits - logits.max(1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    picked = np.take_along_axis(log_probs, classes[:, None], 1)[:, 0]
    np.testing.assert_allclose(loss.item(), -picked.mean(), rtol=1e-12)


def test_mask_probabilities_pick_the_predicted_class():
    """NumPy reference, float64, rtol 1e-12: the sigmoid of channel label - 1 (the maps are
    the K classes)."""
    heads = _heads()
    logits = np.random.default_rng(2).normal(size=(2, NUM_CLASSES, 3, 3))
    probs = heads.mask_probabilities(minimask.tensor(logits), minimask.tensor(np.array([3, 1])))
    expected = 1 / (1 + np.exp(-logits[[0, 1], [2, 0]]))
    np.testing.assert_allclose(probs.numpy()[:, 0], expected, rtol=1e-12)


def test_softmax_mask_probabilities_pick_the_label_channel_after_background():
    """NumPy reference, float64, rtol 1e-12: with mask_loss="softmax" the K + 1 maps are
    background then the K classes, so a detection of label y takes channel y of the
    per-pixel softmax (channel y - 1 would be another class's, or background's for y = 1).
    The logits are random, so every channel's probability differs from its neighbours'."""
    heads = _heads(mask_loss="softmax")
    logits = np.random.default_rng(3).normal(size=(3, NUM_CLASSES + 1, 3, 3))
    labels = np.array([1, 3, 2])
    probs = heads.mask_probabilities(minimask.tensor(logits), minimask.tensor(labels))
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs.numpy()[:, 0], softmax[[0, 1, 2], labels], rtol=1e-12)


def test_postprocess_detections_on_a_hand_made_case():
    """One proposal, logits favouring class 2, zero deltas: the detection is the proposal
    clipped to the image, with score softmax(logits)[2]; class 1 (score <= 0.05) and class 3
    are checked by hand."""
    heads = _heads()
    logits = np.array([[0.0, -3.0, 4.0, 2.0]])
    probs = np.exp(logits) / np.exp(logits).sum()
    deltas = np.zeros((1, 4 * (NUM_CLASSES + 1)))
    proposal = minimask.tensor(np.array([[-5.0, 10.0, 30.0, 70.0]]))
    [(boxes, scores, labels)] = heads.postprocess_detections(
        minimask.tensor(logits), minimask.tensor(deltas), [proposal], [(64, 48)]
    )
    assert probs[0, 1] <= 0.05 < probs[0, 3]
    np.testing.assert_array_equal(labels.numpy(), [2, 3])  # by score; class 1 dropped
    np.testing.assert_allclose(scores.numpy(), probs[0, [2, 3]], rtol=1e-12)
    np.testing.assert_allclose(boxes.numpy(), [[0, 10, 30, 64], [0, 10, 30, 64]])


def test_tiny_preset_is_smaller_than_small():
    tiny, small = MaskRCNNConfig.tiny(3), MaskRCNNConfig.small(3)
    assert tiny.stage_channels < small.stage_channels
    assert dataclasses.replace(tiny, num_classes=4).num_classes == 4
