"""Training-target helpers (minimask.models) against hand-computed cases: BoxCoder, Matcher,
BalancedPositiveNegativeSampler, AnchorGenerator, level_for_boxes (torchvision semantics).
Each test names its reference and tolerance."""

import math

import numpy as np
import pytest

import minimask
from minimask.models import (
    AnchorGenerator,
    BalancedPositiveNegativeSampler,
    BoxCoder,
    Matcher,
    level_for_boxes,
)

# ---------------------------------------------------------------- BoxCoder


def test_encode_hand_worked_delta():
    """By hand: proposal (0,0,10,20) has centre (5,10), size (10,20); target (2,4,22,24) has
    centre (12,14), size (20,20). Weights (10,10,5,5): dx = 10*7/10 = 7, dy = 10*4/20 = 2,
    dw = 5*log 2, dh = 5*log 1 = 0. Tolerance 1e-12 (float64)."""
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    proposals = minimask.tensor([[0, 0, 10, 20.0]], dtype=minimask.float64)
    targets = minimask.tensor([[2, 4, 22, 24.0]], dtype=minimask.float64)
    deltas = coder.encode(targets, proposals)
    assert deltas.shape == (1, 4)
    np.testing.assert_allclose(deltas.numpy(), [[7.0, 2.0, 5 * math.log(2), 0.0]], atol=1e-12)
    np.testing.assert_allclose(coder.decode(deltas, proposals).numpy(), targets.numpy(), atol=1e-12)


def test_encode_decode_round_trip():
    """Reference: decode(encode(g, p), p) == g, float64, tolerance 1e-12, for random boxes
    whose size ratios stay well inside the clip (both weight settings: the RPN's (1, 1, 1, 1)
    and the box head's (10, 10, 5, 5))."""
    rng = np.random.default_rng(0)
    xy = rng.uniform(-50, 50, size=(20, 2, 2))
    wh = rng.uniform(1, 80, size=(20, 2, 2))
    proposals = minimask.tensor(np.concatenate([xy[:, 0], xy[:, 0] + wh[:, 0]], axis=1))
    gts = minimask.tensor(np.concatenate([xy[:, 1], xy[:, 1] + wh[:, 1]], axis=1))
    for weights in [(1, 1, 1, 1), (10, 10, 5, 5)]:
        coder = BoxCoder(weights)
        back = coder.decode(coder.encode(gts, proposals), proposals)
        assert back.dtype == minimask.float64
        np.testing.assert_allclose(back.numpy(), gts.numpy(), rtol=0, atol=1e-12)


def test_decode_clips_dw_dh():
    """By hand: box (0,0,16,16), weights 1, deltas (0, 0, 10, -10). dw is clipped to
    log(1000/16), so width = 16 * 62.5 = 1000 around centre 8: x = (-492, 508); dh = -10 is
    not clipped (the clip is an upper bound only): height 16*e^-10. Tolerance 1e-9."""
    coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
    assert coder.bbox_xform_clip == pytest.approx(math.log(1000.0 / 16))
    boxes = minimask.tensor([[0, 0, 16, 16.0]], dtype=minimask.float64)
    deltas = minimask.tensor([[0, 0, 10.0, -10.0]], dtype=minimask.float64)
    half_h = 8 * math.exp(-10)
    expected = [[-492.0, 8 - half_h, 508.0, 8 + half_h]]
    np.testing.assert_allclose(coder.decode(deltas, boxes).numpy(), expected, rtol=0, atol=1e-9)


def test_decode_class_specific_layout():
    """Reference: (N, 4K) deltas decode class by class like K separate (N, 4) decodes, in
    columns 4k..4k+3. Tolerance 1e-12 (float64, same operations)."""
    coder = BoxCoder((10, 10, 5, 5))
    rng = np.random.default_rng(1)
    boxes = minimask.tensor([[0, 0, 10, 20.0], [5, 5, 30, 15.0]], dtype=minimask.float64)
    deltas = minimask.tensor(rng.normal(size=(2, 12)))
    out = coder.decode(deltas, boxes)
    assert out.shape == (2, 12)
    for k in range(3):
        one = coder.decode(deltas[:, 4 * k : 4 * k + 4], boxes)
        np.testing.assert_allclose(out.numpy()[:, 4 * k : 4 * k + 4], one.numpy(), atol=1e-12)


def test_decode_is_differentiable():
    """Reference: central finite differences (minimask.gradcheck, float64) of decode with
    respect to the deltas, away from the clip."""
    coder = BoxCoder((10, 10, 5, 5))
    boxes = minimask.tensor([[0, 0, 10, 20.0], [5, 5, 30, 15.0]], dtype=minimask.float64)
    deltas = minimask.tensor(
        np.random.default_rng(2).normal(size=(2, 8)), dtype=minimask.float64, requires_grad=True
    )
    assert minimask.gradcheck(lambda d: coder.decode(d, boxes), (deltas,))


# ---------------------------------------------------------------- Matcher


def test_matcher_thresholds_and_boundaries():
    """By hand (high 0.7, low 0.3), best IoU per column: 0.9 -> gt 0; exactly 0.7 -> gt 0
    (>= high is positive, also when 0.7 is stored as float32); 0.69 and exactly 0.3 -> -2
    (between: low <= v < high); 0.29 -> -1 (below: v < low); 0.6 from gt 1 -> -2. Exact."""
    iou = [[0.9, 0.7, 0.69, 0.3, 0.29, 0.5], [0.1, 0.2, 0.0, 0.0, 0.0, 0.6]]
    matcher = Matcher(0.7, 0.3, allow_low_quality_matches=False)
    for dtype in (np.float32, np.float64):
        matches = matcher(np.array(iou, dtype=dtype))
        assert matches.dtype == np.int64
        assert matches.tolist() == [0, 0, -2, -2, -1, -2]
    assert Matcher.BELOW_LOW_THRESHOLD == -1 and Matcher.BETWEEN_THRESHOLDS == -2
    # RoI-head style: high == low == 0.5, nothing is "between"
    assert Matcher(0.5, 0.5)(np.array([[0.5, 0.49]])).tolist() == [0, -1]


def test_matcher_tie_between_gts_takes_first():
    """By hand: a prediction with equal best IoU 0.8 to gts 0 and 1 goes to gt 0 (argmax
    returns the first maximum, as torch.max does on CPU). Exact."""
    assert Matcher(0.7, 0.3)(np.array([[0.8, 0.1], [0.8, 0.9]])).tolist() == [0, 1]


def test_matcher_low_quality_rule_with_ties():
    """By hand: gt 0's best IoU is 0.5, shared by predictions 1 and 2 (a tie): both are
    matched to gt 0 and flagged low-quality-only; prediction 0 (0.9 with gt 1) is an ordinary
    positive, not flagged; prediction 3 stays -1. Without the rule: [1, -2, -2, -1]. Exact."""
    iou = np.array([[0.2, 0.5, 0.5, 0.1], [0.9, 0.4, 0.1, 0.0]])
    assert Matcher(0.7, 0.3)(iou).tolist() == [1, -2, -2, -1]
    matches, low_quality = Matcher(0.7, 0.3, allow_low_quality_matches=True).match(iou)
    assert matches.tolist() == [1, 0, 0, -1]
    assert low_quality.tolist() == [False, True, True, False]
    _, none_flagged = Matcher(0.7, 0.3).match(iou)
    assert none_flagged.tolist() == [False] * 4


def test_matcher_low_quality_uses_the_predictions_own_best_gt():
    """By hand (torchvision's rule): prediction 0 is gt 0's best (0.6) but overlaps gt 1 more
    (0.65), so it is matched to gt 1, its argmax; prediction 1 (0.1) stays -1. Exact."""
    iou = np.array([[0.6, 0.1], [0.65, 0.0]])
    matches, low_quality = Matcher(0.7, 0.3, allow_low_quality_matches=True).match(iou)
    assert matches.tolist() == [1, -1]
    assert low_quality.tolist() == [True, False]


def test_matcher_empty_raises():
    """Reference: torchvision raises when an image has no ground truth or no predictions."""
    with pytest.raises(ValueError, match="ground-truth"):
        Matcher(0.7, 0.3)(np.zeros((0, 5)))
    with pytest.raises(ValueError, match="proposal"):
        Matcher(0.7, 0.3)(np.zeros((2, 0)))


# ---------------------------------------------------------------- sampler


def _labels(num_pos, num_neg, num_ignore, seed=0):
    values = np.array([1] * num_pos + [0] * num_neg + [-1] * num_ignore, dtype=np.int64)
    values[: num_pos // 2] = 3  # any label >= 1 is a positive (a class index)
    return np.random.default_rng(seed).permutation(values)


@pytest.mark.parametrize(
    "num_pos, num_neg, batch, fraction, expected",
    [
        (10, 50, 16, 0.25, (4, 12)),  # int(16 * 0.25) = 4 positives, 12 negatives
        (2, 50, 16, 0.25, (2, 14)),  # too few positives: negatives fill the batch
        (10, 5, 64, 0.25, (10, 5)),  # too few of both: all of them
        (10, 50, 10, 0.33, (3, 7)),  # int(3.3) = 3
    ],
)
def test_sampler_counts_and_no_ignored(num_pos, num_neg, batch, fraction, expected):
    """By hand: num_pos = min(#pos, int(batch * fraction)), num_neg = min(#neg, batch -
    num_pos); positives have label >= 1, negatives 0, never an ignored (-1) index, no
    duplicates. Exact."""
    labels = _labels(num_pos, num_neg, 20)
    pos, neg = BalancedPositiveNegativeSampler(batch, fraction)(labels)
    assert (len(pos), len(neg)) == expected
    assert pos.dtype == neg.dtype == np.int64
    assert (labels[pos] >= 1).all() and (labels[neg] == 0).all()
    assert len(set(pos.tolist())) == len(pos) and len(set(neg.tolist())) == len(neg)


def test_sampler_deterministic_under_manual_seed():
    """Reference: the same seed gives the same draw (minimask's global generator); a
    different seed gives a different one (for these sizes, all but certain). Exact."""
    labels = _labels(30, 200, 20)
    sampler = BalancedPositiveNegativeSampler(64, 0.25)
    minimask.manual_seed(123)
    first = [t.tolist() for t in sampler(labels)]
    minimask.manual_seed(123)
    second = [t.tolist() for t in sampler(labels)]
    minimask.manual_seed(124)
    third = [t.tolist() for t in sampler(labels)]
    assert first == second
    assert first != third


# ---------------------------------------------------------------- anchors


def test_cell_anchors_rounded_like_torchvision():
    """By hand: size 32, ratio 0.5: w = 32*sqrt 2 = 45.25, h = 22.63 -> halves rounded
    (-23, -11, 23, 11); ratio 1: +-16; ratio 2: (-11, -23, 11, 23). Size 64: (-45, -23, 45, 23)
    etc. Size 5, ratio 1: +-2.5 rounds half to even -> +-2 (torch.round). Exact."""
    gen = AnchorGenerator(sizes=(32, 64), aspect_ratios=(0.5, 1.0, 2.0))
    assert gen.num_anchors_per_location() == [3, 3]
    np.testing.assert_array_equal(
        gen.cell_anchors[0], [[-23, -11, 23, 11], [-16, -16, 16, 16], [-11, -23, 11, 23]]
    )
    np.testing.assert_array_equal(
        gen.cell_anchors[1], [[-45, -23, 45, 23], [-32, -32, 32, 32], [-23, -45, 23, 45]]
    )
    np.testing.assert_array_equal(AnchorGenerator((5,), (1.0,)).cell_anchors[0], [[-2, -2, 2, 2]])


def test_grid_anchors_order_y_x_anchor():
    """By hand: one anchor (-8,-8,8,8) per cell, grid H=2, W=3, strides (h 10, w 20): rows in
    (y, x) order, shifted by (20x, 10y). Exact."""
    gen = AnchorGenerator(sizes=(16,), aspect_ratios=(1.0,))
    (anchors,) = gen.grid_anchors([(2, 3)], [(10, 20)])
    assert anchors.dtype == minimask.float32
    expected = [
        [-8, -8, 8, 8], [12, -8, 28, 8], [32, -8, 48, 8],
        [-8, 2, 8, 18], [12, 2, 28, 18], [32, 2, 48, 18],
    ]  # fmt: skip
    np.testing.assert_array_equal(anchors.numpy(), expected)


def test_grid_anchors_two_levels_three_ratios():
    """By hand: level 0 is a 1x2 grid at stride 16 with 3 anchors per cell (x then anchor);
    level 1 a 1x1 grid of the size-64 anchors. per_level with a 16x32 image derives the
    strides 16//1, 32//2 = 16 and 16 // 1 = 16, 32 // 1 = 32; __call__ concatenates. Exact."""
    gen = AnchorGenerator(sizes=(32, 64), aspect_ratios=(0.5, 1.0, 2.0))
    level0, level1 = gen.grid_anchors([(1, 2), (1, 1)], [(16, 16), (16, 32)])
    expected0 = [
        [-23, -11, 23, 11], [-16, -16, 16, 16], [-11, -23, 11, 23],
        [-7, -11, 39, 11], [0, -16, 32, 16], [5, -23, 27, 23],
    ]  # fmt: skip
    np.testing.assert_array_equal(level0.numpy(), expected0)
    np.testing.assert_array_equal(level1.numpy(), gen.cell_anchors[1])
    per_level = gen.per_level((16, 32), [(1, 2), (1, 1)])
    np.testing.assert_array_equal(per_level[0].numpy(), expected0)
    np.testing.assert_array_equal(per_level[1].numpy(), gen.cell_anchors[1])
    together = gen((16, 32), [(1, 2), (1, 1)])
    np.testing.assert_array_equal(
        together.numpy(), np.concatenate([expected0, gen.cell_anchors[1]])
    )


# ---------------------------------------------------------------- FPN level


def test_level_for_boxes_boundaries():
    """By hand: k = clamp(floor(4 + log2(sqrt(area)/224 + 1e-6)), 2, 5): 224^2 -> 4 (also a
    112 x 448 box of the same area), 112^2 -> 3, 223^2 -> 3 (just below the boundary),
    448^2 -> 5, 2000^2 -> 5 (clamped), 56^2 -> 2, 1 x 1 -> 2, zero area -> 2. Exact."""
    boxes = minimask.tensor(
        [
            [0, 0, 224, 224],
            [10, 10, 122, 458],
            [0, 0, 112, 112],
            [0, 0, 223, 223],
            [0, 0, 448, 448],
            [0, 0, 2000, 2000],
            [0, 0, 56, 56],
            [5, 5, 6, 6],
            [3, 3, 3, 9],
        ]
    )
    levels = level_for_boxes(boxes)
    assert levels.dtype == minimask.int64
    assert levels.tolist() == [4, 4, 3, 3, 5, 5, 2, 2, 2]
    # canonical size scaled to the input (MaskRCNNConfig.scaled_to): a 112 box is then canonical
    assert level_for_boxes(boxes[2:3], canonical_size=112).tolist() == [4]
    assert level_for_boxes(boxes[:1], k_min=3, k_max=3).tolist() == [3]
