"""RPN (minimask.models.rpn) against hand computations and the definitions of
torchvision.models.detection.rpn: head layout, flatten order, targets, losses, proposals.
Each test names its reference and tolerance."""

import math

import numpy as np

import minimask
from minimask.models import AnchorGenerator, BalancedPositiveNegativeSampler, BoxCoder, Matcher
from minimask.models.rpn import (
    RPNHead,
    concat_box_prediction_layers,
    rpn_loss,
    rpn_proposals,
    rpn_targets,
)

RPN_CODER = BoxCoder((1.0, 1.0, 1.0, 1.0))


def rpn_matcher():
    return Matcher(0.7, 0.3, allow_low_quality_matches=True)


def t64(values):
    return minimask.tensor(np.asarray(values, dtype=np.float64))


# ---------------------------------------------------------------- head and layout


def test_head_shapes_and_init():
    """Reference: torchvision RPNHead: (N, A, H, W) and (N, 4A, H, W) per level; weights
    N(0, 0.01^2) (sample std within [0.005, 0.015] over 3*16*9 values), biases exactly 0."""
    minimask.manual_seed(0)
    head = RPNHead(16, 3)
    logits, deltas = head([minimask.randn(2, 16, 5, 6), minimask.randn(2, 16, 3, 3)])
    assert [x.shape for x in logits] == [(2, 3, 5, 6), (2, 3, 3, 3)]
    assert [x.shape for x in deltas] == [(2, 12, 5, 6), (2, 12, 3, 3)]
    for conv in (head.conv, head.cls_logits, head.bbox_pred):
        assert 0.005 < conv.weight.numpy().std() < 0.015
        assert np.all(conv.bias.numpy() == 0)


def test_flatten_order_equals_anchor_order():
    """By hand: objectness[0, a, y, x] = 100y + 10x + a and deltas[0, 4a + c, y, x] =
    1000y + 100x + 10a + c must land on row (y * W + x) * A + a, the row of anchor a at
    cell (y, x) in AnchorGenerator.grid_anchors (checked too: that anchor is base[a]
    shifted by (x * stride, y * stride)). Exact equality."""
    num_a, height, width, stride = 2, 2, 3, 4
    y, x, a = np.meshgrid(np.arange(height), np.arange(width), np.arange(num_a), indexing="ij")
    obj = np.zeros((1, num_a, height, width))
    obj[0, a, y, x] = 100 * y + 10 * x + a
    dl = np.zeros((1, 4 * num_a, height, width))
    for c in range(4):
        dl[0, 4 * a + c, y, x] = 1000 * y + 100 * x + 10 * a + c
    second = np.zeros((1, num_a, 1, 1)), np.zeros((1, 4 * num_a, 1, 1))
    flat_obj, flat_dl = concat_box_prediction_layers(
        [t64(obj), t64(second[0])], [t64(dl), t64(second[1])]
    )
    assert flat_obj.shape == (1, height * width * num_a + num_a)
    assert flat_dl.shape == (1, height * width * num_a + num_a, 4)
    gen = AnchorGenerator(sizes=((8,), (16,)), aspect_ratios=((0.5, 2.0),) * 2)
    anchors = gen.grid_anchors([(height, width), (1, 1)], [(stride, stride), (8, 8)])[0].numpy()
    base = gen.cell_anchors[0]
    for yy in range(height):
        for xx in range(width):
            for aa in range(num_a):
                row = (yy * width + xx) * num_a + aa
                assert flat_obj.numpy()[0, row] == 100 * yy + 10 * xx + aa
                expected = [1000 * yy + 100 * xx + 10 * aa + c for c in range(4)]
                assert list(flat_dl.numpy()[0, row]) == expected
                shift = np.array([xx, yy, xx, yy]) * stride
                assert np.array_equal(anchors[row], base[aa] + shift)


# ---------------------------------------------------------------- targets

GT = [[0, 0, 10, 10], [100, 100, 120, 120]]
ANCHORS = [
    [0, 0, 10, 10],  # 0: IoU 1 with gt 0 -> 1
    [0, 0, 10, 9],  # 1: IoU 0.9 -> 1
    [0, 0, 10, 5],  # 2: IoU 0.5 -> between -> -1
    [20, 20, 30, 30],  # 3: IoU 0 -> 0
    [0, 0, 10, 2.5],  # 4: IoU 0.25 -> 0
    [100, 100, 120, 110],  # 5: IoU 0.5 with gt 1, its best anchor -> low-quality 1
    [100, 100, 120, 104],  # 6: IoU 0.2 -> 0
    [190, 200, 210, 220],  # 7: crowd overlap exactly 0.5 of its area -> not "> 0.5"
    [195, 200, 215, 220],  # 8: crowd overlap 0.75 of its area
]
CROWD = [[200, 200, 300, 300], [0, 0, 10, 10]]


def test_rpn_targets_hand_case():
    """By hand (IoUs in the comments of ANCHORS; thresholds 0.7 / 0.3, low-quality rule):
    labels [1, 1, -1, 0, 0, 1, 0, 0, 0] without crowds. Regression targets by hand:
    anchor 1 (centre (5, 4.5), 10x9) -> gt 0 (centre (5, 5), 10x10): (0, 0.5/9, 0, log 10/9);
    anchor 5 (centre (110, 105), 20x10) -> gt 1 (centre (110, 110), 20x20): (0, 0.5, 0, log 2);
    anchor 0: zeros; non-positives: zeros. Tolerance 1e-12 (float64)."""
    labels, targets = rpn_targets(t64(ANCHORS), t64(GT), None, rpn_matcher(), RPN_CODER)
    assert labels.shape == (9,) and targets.shape == (9, 4)
    np.testing.assert_array_equal(labels.numpy(), [1, 1, -1, 0, 0, 1, 0, 0, 0])
    expected = np.zeros((9, 4))
    expected[1] = [0, 0.5 / 9, 0, math.log(10 / 9)]
    expected[5] = [0, 0.5, 0, math.log(2)]
    np.testing.assert_allclose(targets.numpy(), expected, atol=1e-12)


def test_rpn_targets_crowd_rule():
    """The crowd rule of rpn_targets: a non-positive anchor whose intersection with a crowd
    box is > 0.5 of its own area is ignored. By hand: anchor 8 (0.75 inside crowd 0) -> -1,
    anchor 7 (exactly 0.5) stays 0, anchor 4 (inside crowd 1) 0 -> -1, and anchors 0 and 1
    (positives, inside crowd 1) stay 1. Exact."""
    labels, _ = rpn_targets(t64(ANCHORS), t64(GT), t64(CROWD), rpn_matcher(), RPN_CODER)
    np.testing.assert_array_equal(labels.numpy(), [1, 1, -1, 0, -1, 1, 0, 0, -1])


def test_rpn_targets_empty_gt():
    """Definition: no gt -> every anchor negative (0) except the crowd-ignored ones
    (anchors 0, 1, 2, 4 lie inside crowd 1, anchor 8 is 0.75 inside crowd 0); targets 0."""
    empty = minimask.zeros(0, 4, dtype=minimask.float64)
    labels, targets = rpn_targets(t64(ANCHORS), empty, None, rpn_matcher(), RPN_CODER)
    np.testing.assert_array_equal(labels.numpy(), np.zeros(9))
    np.testing.assert_array_equal(targets.numpy(), np.zeros((9, 4)))
    labels, _ = rpn_targets(t64(ANCHORS), empty, t64(CROWD), rpn_matcher(), RPN_CODER)
    np.testing.assert_array_equal(labels.numpy(), [-1, -1, -1, 0, -1, 0, 0, 0, -1])


# ---------------------------------------------------------------- losses


def _numpy_loss(obj, dl, labels, targets, sampled):
    """The definitions, in NumPy: sampled = list of (pos, neg) index arrays per image."""
    bce, box, count = 0.0, 0.0, 0
    for i, (pos, neg) in enumerate(sampled):
        idx = np.concatenate([pos, neg])
        x, y = obj[i, idx], labels[i][idx]
        bce += np.sum(np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x))))
        d = np.abs(dl[i, pos] - targets[i][pos])
        beta = 1.0 / 9
        box += np.sum(np.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta))
        count += idx.size
    return bce / count, box / count


def _random_case(rng, num_images=2, num_anchors=40):
    labels = [
        rng.choice([-1.0, 0.0, 1.0], size=num_anchors, p=[0.2, 0.6, 0.2]) for _ in range(num_images)
    ]
    targets = [rng.normal(size=(num_anchors, 4)) for _ in range(num_images)]
    obj = rng.normal(size=(num_images, num_anchors)) * 2
    dl = rng.normal(size=(num_images, num_anchors, 4))
    return obj, dl, labels, targets


def test_rpn_loss_matches_numpy_definition():
    """Reference: the definitions of rpn_loss's docstring computed in NumPy for the indices
    the sampler draws with the same seed (manual_seed(7), sampler(8, 0.5) per image, so it
    subsamples). float64, tolerance 1e-12."""
    obj, dl, labels, targets = _random_case(np.random.default_rng(0))
    sampler = BalancedPositiveNegativeSampler(8, 0.5)
    minimask.manual_seed(7)
    sampled = [sampler(np.asarray(lab)) for lab in labels]
    assert all(len(p) + len(n) == 8 for p, n in sampled)
    minimask.manual_seed(7)
    loss_obj, loss_box = rpn_loss(
        t64(obj), t64(dl), [t64(x) for x in labels], [t64(x) for x in targets], sampler
    )
    ref_obj, ref_box = _numpy_loss(obj, dl, labels, targets, sampled)
    np.testing.assert_allclose(loss_obj.item(), ref_obj, rtol=0, atol=1e-12)
    np.testing.assert_allclose(loss_box.item(), ref_box, rtol=0, atol=1e-12)


def test_rpn_loss_gradcheck():
    """Reference: minimask.gradcheck (central differences, float64) of both losses w.r.t.
    objectness and deltas; the sampler's draw is fixed by manual_seed(3) inside the
    function under test, so every evaluation samples the same anchors."""
    obj, dl, labels, targets = _random_case(np.random.default_rng(1), num_images=2, num_anchors=12)
    sampler = BalancedPositiveNegativeSampler(6, 0.5)
    lab_t, tgt_t = [t64(x) for x in labels], [t64(x) for x in targets]

    def fn(o, d):
        minimask.manual_seed(3)
        return rpn_loss(o, d, lab_t, tgt_t, sampler)

    o = minimask.tensor(obj, requires_grad=True)
    d = minimask.tensor(dl, requires_grad=True)
    assert minimask.gradcheck(fn, (o, d))


def test_gradients_reach_head_parameters():
    """End to end: head -> flatten -> rpn_targets on real anchors -> rpn_loss -> backward;
    every head parameter gets a finite, nonzero gradient (float32)."""
    minimask.manual_seed(0)
    head = RPNHead(4, 3)
    gen = AnchorGenerator(sizes=((8,), (16,)), aspect_ratios=(0.5, 1.0, 2.0))
    features = [minimask.randn(2, 4, 4, 4), minimask.randn(2, 4, 2, 2)]
    anchors = gen((16, 16), [(4, 4), (2, 2)])
    logits, deltas = concat_box_prediction_layers(*head(features))
    gts = [minimask.tensor([[2.0, 2.0, 10.0, 10.0]]), minimask.tensor([[4.0, 0.0, 16.0, 8.0]])]
    per_image = [rpn_targets(anchors, g, None, rpn_matcher(), RPN_CODER) for g in gts]
    assert all((lab.numpy() == 1).any() for lab, _ in per_image)
    sampler = BalancedPositiveNegativeSampler(16, 0.5)
    loss_obj, loss_box = rpn_loss(
        logits, deltas, [p[0] for p in per_image], [p[1] for p in per_image], sampler
    )
    (loss_obj + loss_box).backward()
    for name, param in head.named_parameters():
        grad = param.grad.numpy()
        assert np.all(np.isfinite(grad)), name
        assert np.abs(grad).max() > 0, name


# ---------------------------------------------------------------- proposals


def test_proposals_hand_case_nms_by_level():
    """By hand: level 0 has two identical anchors (logits 2 and 1), level 1 the same box
    (logit 0); zero deltas. NMS within a level drops the logit-1 copy; the level-1 copy
    survives (different level). Boxes [(0,0,10,10)] * 2, scores [s(2), s(0)], s = sigmoid.
    Tolerance 1e-12 (float64)."""
    box = [0.0, 0.0, 10.0, 10.0]
    boxes, scores = rpn_proposals(
        t64([2.0, 1.0, 0.0]),
        t64(np.zeros((3, 4))),
        [t64([box, box]), t64([box])],
        (20, 20),
        RPN_CODER,
        pre_nms_top_n=5,
        post_nms_top_n=5,
    )
    np.testing.assert_allclose(boxes.numpy(), [box, box], atol=1e-12)
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    np.testing.assert_allclose(scores.numpy(), [sig(2.0), sig(0.0)], atol=1e-12)


def test_proposals_properties():
    """Definitions (torchvision filter_proposals) on random logits/deltas over two levels of
    real anchors: boxes inside [0, W] x [0, H], count <= post_nms_top_n, scores descending,
    no gradient, every box one of its level's top-pre_nms_top_n decoded boxes, and no kept
    pair of the same level with IoU > 0.7. Tolerance: exact (boxes are looked up)."""
    rng = np.random.default_rng(0)
    gen = AnchorGenerator(sizes=((8,), (16,)), aspect_ratios=(0.5, 1.0, 2.0))
    image_size = (24, 32)
    per_level = gen.grid_anchors([(6, 8), (3, 4)], [(4, 4), (8, 8)])
    num = sum(a.shape[0] for a in per_level)
    obj = minimask.tensor(rng.normal(size=num).astype(np.float32), requires_grad=True)
    dl = minimask.tensor((rng.normal(size=(num, 4)) * 0.3).astype(np.float32), requires_grad=True)
    pre, post = 20, 15
    boxes, scores = rpn_proposals(obj, dl, per_level, image_size, RPN_CODER, pre, post)
    b, s = boxes.numpy(), scores.numpy()
    assert not boxes.requires_grad and not scores.requires_grad
    assert 0 < len(b) <= post and s.shape == (len(b),)
    assert np.all(np.diff(s) <= 0)
    assert np.all(b[:, 0::2] >= 0) and np.all(b[:, 0::2] <= image_size[1])
    assert np.all(b[:, 1::2] >= 0) and np.all(b[:, 1::2] <= image_size[0])
    # level of each kept box: look it up among its level's clipped, decoded top-pre boxes
    candidates, start = [], 0
    for anchors in per_level:
        n = anchors.shape[0]
        top = np.argsort(-obj.numpy()[start : start + n], kind="stable")[:pre]
        dec = RPN_CODER.decode(
            dl.detach()[start : start + n][minimask.tensor(top)], anchors[minimask.tensor(top)]
        )
        candidates.append(minimask.ops.clip_boxes_to_image(dec, image_size).numpy())
        start += n
    levels = []
    for row in b:
        found = [lv for lv, c in enumerate(candidates) if (np.abs(c - row).max(1) == 0).any()]
        assert found, row
        levels.append(found[0])
    iou = minimask.ops.box_iou(boxes, boxes).numpy()
    for i in range(len(b)):
        for j in range(i + 1, len(b)):
            if levels[i] == levels[j]:
                assert iou[i, j] <= 0.7
