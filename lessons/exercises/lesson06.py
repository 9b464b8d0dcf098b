"""Checkers of lesson 06 (anchors and the RPN). References: minimask itself
(``AnchorGenerator.generate_anchors``, ``Matcher``, ``box_iou``, ``anchor_coverage``,
``BoxCoder.encode`` and ``decode``) and hand computations (the anchor of size 32 and ratio
0.5 from the anchors' docstring, the lesson's hand-made IoU matrix, IoUs of boxes drawn on
squared paper, one box coder target worked out from the formula). Tolerances follow the
dtype: rounded anchors (whole pixels) and matches (integers) exactly; IoUs, which minimask
computes in float32 from float32 anchors, to 1e-6; box coder targets in float64 to 1e-12."""

import numpy as np

import minimask
from exercises import Wrong, exercise
from minimask.models import AnchorGenerator, BoxCoder, MaskRCNNConfig, Matcher, anchor_coverage
from minimask.models.anchor_coverage import image_anchors
from minimask.ops import box_iou


def _rounded_alike(sizes, ratios):
    """generate_anchors (float32, then rounded) when the same formula in float64 rounds to the
    same whole pixels, else None (a half-side within float32 rounding of a half)."""
    want = AnchorGenerator.generate_anchors(sizes, ratios).astype(np.float64)
    s, r = np.asarray(sizes, np.float64), np.asarray(ratios, np.float64)
    h = (np.sqrt(r)[:, None] * s[None, :]).reshape(-1)
    w = (s[None, :] / np.sqrt(r)[:, None]).reshape(-1)
    exact = np.round(np.stack([-w, -h, w, h], axis=1) / 2)
    return want if np.array_equal(exact, want) else None


@exercise("06.1", "the cell anchors of one level", "cell_anchors")
def check_cell_anchors(cell_anchors):
    """Hand computations: size 32, ratio 0.5 is (-23, -11, 23, 11) (w = 45.25, h = 22.63);
    size 5, ratio 1 is (-2, -2, 2, 2) (2.5 rounds half to even, to 2), size 7 gives
    (-4, -4, 4, 4) (3.5 to 4); sizes (8, 16) with ratios (0.5, 2) in ratio-major order.
    Then the lesson's five levels (8..128, ratios 0.5, 1, 2) and 30 random sets of sizes and
    ratios against AnchorGenerator.generate_anchors, which computes in float32 and rounds;
    the random sets keep only those where the same formula in float64 rounds to the same
    pixels (no half-side within float32 rounding of a half). Exact: anchors are whole
    pixels."""
    hand = [
        ((32,), (0.5,), [[-23, -11, 23, 11]], "w = 32 / sqrt(0.5) = 45.25, h = 22.63"),
        ((5,), (1.0,), [[-2, -2, 2, 2]], "w / 2 = 2.5 rounds half to even, to 2 (np.round)"),
        ((7,), (1.0,), [[-4, -4, 4, 4]], "w / 2 = 3.5 rounds half to even, to 4"),
        (
            (8, 16),
            (0.5, 2.0),
            [[-6, -3, 6, 3], [-11, -6, 11, 6], [-3, -6, 3, 6], [-6, -11, 6, 11]],
            "ratio-major: ratio 0.5 with sizes 8, 16, then ratio 2 with sizes 8, 16",
        ),
    ]
    cases = [(s, r, np.array(want, np.float64), why) for s, r, want, why in hand]
    for size in (8, 16, 32, 64, 128):
        want = AnchorGenerator.generate_anchors((size,), (0.5, 1.0, 2.0)).astype(np.float64)
        cases.append(((size,), (0.5, 1.0, 2.0), want, "AnchorGenerator.generate_anchors"))
    rng = np.random.default_rng(60)
    while len(cases) < len(hand) + 5 + 30:
        sizes = tuple(float(v) for v in np.round(rng.uniform(4, 300, rng.integers(1, 4)), 2))
        ratios = tuple(float(v) for v in np.round(rng.uniform(0.2, 5, rng.integers(1, 4)), 3))
        want = _rounded_alike(sizes, ratios)
        if want is not None:
            cases.append((sizes, ratios, want, "AnchorGenerator.generate_anchors"))
    for sizes, ratios, want, why in cases:
        got = np.asarray(cell_anchors(sizes, ratios), dtype=np.float64)
        if got.shape != want.shape:
            raise Wrong(
                f"sizes {sizes}, aspect ratios {ratios}: got shape {got.shape}, want "
                f"{want.shape} (one row per (ratio, size) pair, 4 coordinates)"
            )
        if not np.array_equal(got, want):
            row = int(np.argwhere(got != want)[0, 0])
            raise Wrong(
                f"sizes {sizes}, aspect ratios {ratios}: row {row} is {got[row].tolist()}, "
                f"want {want[row].tolist()} ({why}; rows ratio-major, h = s sqrt(r), "
                f"w = s / sqrt(r), corners rounded half to even)"
            )


def _matcher_matches(quality, high, low, rule):
    return Matcher(high, low, allow_low_quality_matches=rule)(quality)


@exercise("06.2", "the Matcher's thresholds and low-quality rule", "match")
def check_match(match):
    """Hand computations: the lesson's 3 x 4 IoU matrix gives [0, -2, -2, -1] without the
    low-quality rule and [0, -2, 1, -1] with it; IoU exactly 0.7 is positive, exactly 0.3
    ignored (-2); a box's two anchors tied at its maximum are both matched; a box whose best
    anchor overlaps another box more gets nothing. Then 200 random matrices (1 to 4 boxes,
    1 to 30 anchors, IoUs on a grid of 0.05 so that ties are frequent, with and without the
    rule) against minimask's Matcher(0.7, 0.3). Exact: the matches are integers."""
    lesson = np.array(
        [[0.90, 0.50, 0.10, 0.00], [0.00, 0.45, 0.55, 0.20], [0.00, 0.00, 0.50, 0.25]]
    )
    hand = [
        (lesson, False, [0, -2, -2, -1], "only anchor 0 reaches 0.7"),
        (lesson, True, [0, -2, 1, -1], "anchor 2 is box 1's best and box 1 is its best"),
        (np.array([[0.7, 0.3, 0.29]]), False, [0, -2, -1], "0.7 is positive, 0.3 ignored"),
        (
            np.array([[0.5, 0.5, 0.1], [0.2, 0.1, 0.1]]),
            True,
            [0, 0, -1],
            "box 0's two anchors tie at 0.5: both are matched; box 1's best, anchor 0, "
            "overlaps box 0 more, so it goes to box 0",
        ),
    ]
    rng = np.random.default_rng(61)
    for _ in range(200):
        shape = (int(rng.integers(1, 5)), int(rng.integers(1, 31)))
        quality = np.round(rng.uniform(0, 1, shape) ** 2 * 20) / 20
        rule = bool(rng.integers(2))
        hand.append((quality, rule, _matcher_matches(quality, 0.7, 0.3, rule), "Matcher"))
    for quality, rule, want, why in hand:
        got = np.asarray(match(quality.copy(), 0.7, 0.3, rule))
        want = np.asarray(want)
        if got.shape != want.shape or not np.array_equal(got, want):
            raise Wrong(
                f"IoU matrix {quality.tolist()}, allow_low_quality_matches={rule}: got "
                f"{got.tolist()}, want {want.tolist()} ({why})"
            )


@exercise("06.3", "each box's best anchor IoU", "best_anchor_iou")
def check_best_anchor_iou(best_anchor_iou):
    """Hand computations on whole pixels: a box equal to an anchor has IoU 1; (0, 0, 2, 1)
    against (1, 0, 3, 1) shares 1 of 3 pixels, 1/3; a disjoint pair 0; a 16-pixel square
    centred in a 22-pixel one (16/22)^2; the best of several anchors. Then 60 random boxes
    in a 128 x 128 image against the lesson's 4092 anchors of MaskRCNNConfig.small(3),
    compared with box_iou(boxes, anchors).max(axis=1) and with anchor_coverage's best_iou on
    a two-image dataset built from the same boxes. minimask computes IoU in float32 from
    float32 anchors: 1e-6 (an IoU is at most 1, float32 rounds it by 6e-8)."""
    hand = [
        ([[4, 4, 12, 12]], [[0, 0, 2, 2], [4, 4, 12, 12]], [1.0], "the box is the 2nd anchor"),
        ([[0, 0, 2, 1]], [[1, 0, 3, 1]], [1 / 3], "1 shared pixel of 3"),
        ([[0, 0, 2, 2]], [[5, 5, 8, 8]], [0.0], "disjoint"),
        ([[3, 3, 19, 19]], [[0, 0, 22, 22]], [(16 / 22) ** 2], "16 x 16 inside 22 x 22"),
        (
            [[0, 0, 4, 4], [10, 10, 14, 12]],
            [[0, 0, 4, 2], [10, 10, 14, 14], [0, 0, 8, 8]],
            [0.5, 0.5],
            "box 0: half of it is anchor 0 (8/16), a quarter of anchor 2; box 1: half of anchor 1",
        ),
    ]
    for boxes, anchors, want, why in hand:
        got = np.asarray(
            best_anchor_iou(np.array(boxes, np.float32), np.array(anchors, np.float32))
        )
        if got.shape != (len(boxes),) or np.max(np.abs(got - want)) > 1e-6:
            raise Wrong(
                f"boxes {boxes}, anchors {anchors}: got {got.tolist()}, want {want} ({why})"
            )
    cfg = MaskRCNNConfig.small(3)
    anchors = image_anchors(cfg, 128, 128)[0]
    rng = np.random.default_rng(62)
    corner = rng.uniform(0, 100, (60, 2))
    side = rng.uniform(8, 60, (60, 2))
    boxes = np.round(np.concatenate([corner, np.minimum(corner + side, 128)], axis=1), 1)
    boxes = boxes.astype(np.float32)
    got = np.asarray(best_anchor_iou(boxes.copy(), anchors.numpy().copy()), dtype=np.float64)
    want = box_iou(minimask.tensor(boxes), anchors).numpy().max(axis=1)
    dataset = [
        (np.zeros((3, 128, 128), np.float32), {"boxes": minimask.tensor(part)})
        for part in (boxes[:30], boxes[30:])
    ]
    covered = anchor_coverage(dataset, cfg).best_iou
    for name, reference in (("box_iou(...).max(axis=1)", want), ("anchor_coverage", covered)):
        if got.shape != reference.shape:
            raise Wrong(f"60 boxes: got shape {got.shape}, want {reference.shape}")
        error = np.abs(got - reference)
        if error.max() > 1e-6:
            g = int(error.argmax())
            raise Wrong(
                f"box {boxes[g].tolist()} against the 4092 anchors of a 128 x 128 image: got "
                f"{got[g]:.7f}, {name} gives {reference[g]:.7f}"
            )


@exercise("06.4", "the box coder's encode", "encode")
def check_encode(encode):
    """Hand computation: the lesson's anchor (96, 96, 112, 112) and box (91, 91, 113, 113)
    give (-1/8, -1/8, log(22/16), log(22/16)) with the RPN's weights (1, 1, 1, 1), and ten
    and five times that with the box head's (10, 10, 5, 5). Then 200 random pairs of boxes
    in float64 against BoxCoder(weights).encode on NumPy arrays (1e-12), and
    BoxCoder.decode of your targets, which must give the boxes back (1e-9: exp and log)."""
    anchor = np.array([[96.0, 96.0, 112.0, 112.0]])
    box = np.array([[91.0, 91.0, 113.0, 113.0]])
    unit = np.array([-0.125, -0.125, np.log(22 / 16), np.log(22 / 16)])
    for weights in ((1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)):
        got = np.asarray(encode(box.copy(), anchor.copy(), weights), dtype=np.float64)
        want = (unit * np.array(weights))[None]
        if got.shape != (1, 4) or np.max(np.abs(got - want)) > 1e-12:
            raise Wrong(
                f"anchor {anchor[0].tolist()}, box {box[0].tolist()}, weights {weights}: got "
                f"{got.tolist()}, want {want.tolist()} (centres 104 and 102, sizes 16 and 22)"
            )
    rng = np.random.default_rng(63)
    corner = rng.uniform(0, 150, (2, 200, 2))
    side = rng.uniform(2, 120, (2, 200, 2))
    anchors, boxes = np.concatenate([corner, corner + side], axis=2)
    for weights in ((1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0), (2.0, 3.0, 0.5, 4.0)):
        coder = BoxCoder(weights)
        got = np.asarray(encode(boxes.copy(), anchors.copy(), weights), dtype=np.float64)
        want = coder.encode(boxes, anchors)
        if got.shape != want.shape:
            raise Wrong(f"200 boxes: got shape {got.shape}, want {want.shape}")
        error = np.abs(got - want)
        if error.max() > 1e-12:
            i = int(error.max(axis=1).argmax())
            raise Wrong(
                f"anchor {anchors[i].round(3).tolist()}, box {boxes[i].round(3).tolist()}, "
                f"weights {weights}: got {got[i].tolist()}, BoxCoder.encode gives "
                f"{want[i].tolist()}"
            )
        back = coder.decode(minimask.tensor(got), minimask.tensor(anchors)).numpy()
        if np.max(np.abs(back - boxes)) > 1e-9:
            raise Wrong(f"weights {weights}: BoxCoder.decode of your targets misses the boxes")
