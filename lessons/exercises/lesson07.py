"""Checkers of lesson 07 (RoI heads and masks). References: minimask itself
(``BoxCoder.decode``, ``level_for_boxes`` and ``MaskRCNNConfig.scaled_to``,
``minimask.models.masks.mask_targets``, the gradient of ``RoIHeads.mask_loss`` by
minimask's autograd), torch's autograd of ``binary_cross_entropy_with_logits`` for the
mask loss's gradient, and hand computations (a box moved by one width, a width doubled,
the clamp of dw at log(1000/16); the level table of square boxes at the demo's canonical
size 84; a half-filled mask whose target is exactly 0 and 1; the gradient -1/2 / (P M^2) of
zero logits against targets 1). Tolerances follow the dtype: boxes and gradients in float64
to 1e-12 relative (a few dozen roundings of numbers below 1000; exp adds no more); levels
(integers) exactly; mask targets, which RoIAlign computes in float32 from a float32 mask,
to 1e-6 (the values lie in [0, 1], float32 rounds them by 6e-8 per operation)."""

import numpy as np
import torch
import torch.nn.functional as torch_F

import minimask
from exercises import Wrong, exercise
from minimask.models import BoxCoder, MaskRCNNConfig, RoIHeads, level_for_boxes
from minimask.models.box_coder import DEFAULT_XFORM_CLIP
from minimask.models.masks import mask_targets

BOX_HEAD_WEIGHTS = (10.0, 10.0, 5.0, 5.0)


def _close(got, want, rtol=1e-12):
    """|got - want| <= rtol * max(1, |want|), elementwise."""
    return np.all(np.abs(got - want) <= rtol * np.maximum(1.0, np.abs(want)))


def _random_boxes(rng, n, low=-20.0, high=220.0):
    x1, y1 = rng.uniform(low, high, n), rng.uniform(low, high, n)
    w, h = rng.uniform(2.0, 120.0, n), rng.uniform(2.0, 120.0, n)
    return np.stack([x1, y1, x1 + w, y1 + h], axis=1)


@exercise("07.1", "the box coder's decode, with its clamp", "decode")
def check_decode(decode):
    """Hand computations on the box (10, 20, 30, 60) (centre (20, 40), size 20 x 40) with the
    box head's weights (10, 10, 5, 5): zero deltas give the box back; dx = 10 moves it by one
    width (20 pixels) to the right; dw = 5 log 2 doubles its width about the centre; dh = -5
    log 2 halves its height; dw = 1000 is clamped at clip = log(1000/16), a width of 62.5 x
    20 = 1250 pixels; dw = -5 * 30 is not clamped (the clamp is an upper bound only): a width
    of 20 e^-30. Then two classes' deltas (N, 8) in one call, and 200 random boxes with random
    deltas (some beyond the clamp), with weights (10, 10, 5, 5) and (1, 1, 1, 1), against
    BoxCoder(weights).decode on float64 Tensors. All 1e-12 relative."""
    box = np.array([[10.0, 20.0, 30.0, 60.0]])
    log2 = np.log(2.0)
    clip = DEFAULT_XFORM_CLIP
    hand = [
        ([0, 0, 0, 0], [10, 20, 30, 60], "zero deltas: the box itself"),
        ([10, 0, 0, 0], [30, 20, 50, 60], "dx = 10 is dx / wx = 1 width to the right"),
        ([0, -5, 0, 0], [10, 0, 30, 40], "dy = -5 is half a height up"),
        ([0, 0, 5 * log2, 0], [0, 20, 40, 60], "dw = 5 log 2: the width doubles about the centre"),
        ([0, 0, 0, -5 * log2], [10, 30, 30, 50], "dh = -5 log 2: the height halves"),
        (
            [0, 0, 1000, 0],
            [20 - 10 * np.exp(clip), 20, 20 + 10 * np.exp(clip), 60],
            f"dw / ww = 200 is clamped at clip = log(1000/16) = {clip:.4f}: 62.5 widths",
        ),
        (
            [0, 0, -150, 0],
            [20 - 10 * np.exp(-30), 20, 20 + 10 * np.exp(-30), 60],
            "dw / ww = -30 is NOT clamped (the clamp is min(dw / ww, clip), an upper bound)",
        ),
    ]
    for deltas, want, why in hand:
        deltas = np.array([deltas], dtype=np.float64)
        got = np.asarray(decode(deltas.copy(), box.copy(), BOX_HEAD_WEIGHTS, clip), np.float64)
        want = np.array([want], dtype=np.float64)
        if got.shape != want.shape or not _close(got, want):
            raise Wrong(
                f"box {box[0].tolist()}, deltas {np.round(deltas[0], 4).tolist()}, weights "
                f"(10, 10, 5, 5): got {np.round(got, 6).tolist()}, want "
                f"{np.round(want, 6).tolist()} ({why})"
            )
    two = np.array([[0.0, 0.0, 0.0, 0.0, 10.0, 0.0, 5 * log2, 0.0]])
    got = np.asarray(decode(two.copy(), box.copy(), BOX_HEAD_WEIGHTS, clip), np.float64)
    want = np.array([[10.0, 20.0, 30.0, 60.0, 20.0, 20.0, 60.0, 60.0]])
    if got.shape != want.shape or not _close(got, want):
        raise Wrong(
            f"deltas of two classes (N, 8) = {np.round(two[0], 4).tolist()} on box "
            f"{box[0].tolist()}: got {np.round(got, 4).tolist()}, want {want[0].tolist()} (class "
            f"k's deltas are columns 4k..4k+3, and so are its box's coordinates)"
        )
    rng = np.random.default_rng(70)
    for weights in (BOX_HEAD_WEIGHTS, (1.0, 1.0, 1.0, 1.0)):
        coder = BoxCoder(weights)
        boxes = _random_boxes(rng, 200)
        deltas = rng.normal(0.0, 1.5, (200, 8)) * np.tile(weights, 2)
        deltas[:20, 2] = rng.uniform(5.0, 10.0, 20) * weights[2]  # beyond the clamp
        deltas[20:40, 7] = rng.uniform(-12.0, -5.0, 20) * weights[3]
        want = coder.decode(minimask.tensor(deltas), minimask.tensor(boxes)).numpy()
        got = np.asarray(decode(deltas.copy(), boxes.copy(), weights, clip), np.float64)
        if got.shape != want.shape:
            raise Wrong(
                f"deltas (200, 8) and boxes (200, 4): got shape {got.shape}, want {want.shape}"
            )
        if not _close(got, want):
            i, j = np.unravel_index(np.argmax(np.abs(got - want)), want.shape)
            raise Wrong(
                f"random box {np.round(boxes[i], 3).tolist()} with deltas "
                f"{np.round(deltas[i, 4 * (j // 4) : 4 * (j // 4) + 4], 4).tolist()}, weights "
                f"{weights}: coordinate {j} is {got[i, j]:.6f}, BoxCoder.decode gives "
                f"{want[i, j]:.6f}"
            )


@exercise("07.2", "the FPN level of a box", "canonical_size_for", "fpn_level")
def check_fpn_level(canonical_size_for, fpn_level):
    """canonical_size_for: 224 * min_size / 512, against MaskRCNNConfig.small(3).scaled_to(m)
    for m = 64 (28), 128 (56), 192 (84, the demo's), 512 (224, the paper's rule) and 800
    (350), to 1e-12. fpn_level: a hand table at s0 = 84 (sides 21 and 41.9 -> P2, 42 -> P3,
    84 -> P4, 168 -> P5, 10 and 1000 clamped to P2 and P5, a 21 x 84 box has sqrt(wh) = 42 ->
    P3, a box of zero area -> P2), then 300 random boxes at s0 = 28, 56, 84 and 224 against
    minimask's level_for_boxes, leaving out boxes within 1e-5 of a level boundary (the
    library adds eps = 1e-6 inside the log). Exact: levels are integers."""
    for min_size, want in ((64, 28.0), (128, 56.0), (192, 84.0), (512, 224.0), (800, 350.0)):
        config = MaskRCNNConfig.small(3).scaled_to(min_size).canonical_size
        assert config == want
        got = float(canonical_size_for(min_size))
        if abs(got - want) > 1e-12 * want:
            raise Wrong(
                f"canonical_size_for({min_size}) = {got}, want 224 * {min_size} / 512 = {want:g} "
                f"(MaskRCNNConfig.scaled_to({min_size}).canonical_size)"
            )
    hand = [  # (w, h), level at s0 = 84
        ((21, 21), 2, "log2(21 / 84) = -2: 4 - 2 = 2"),
        ((41.9, 41.9), 2, "just under half of 84: floor(4 - 1.003) = 2"),
        ((42, 42), 3, "half of 84: 4 - 1 = 3"),
        ((84, 84), 4, "the canonical size itself: the canonical level"),
        ((168, 168), 5, "twice 84: 4 + 1 = 5"),
        ((10, 10), 2, "floor(4 + log2(10 / 84)) = 0, clamped to k_min = 2"),
        ((1000, 1000), 5, "floor(4 + log2(1000 / 84)) = 7, clamped to k_max = 5"),
        ((21, 84), 3, "sqrt(21 * 84) = 42: a rectangle counts by its area"),
        ((0, 30), 2, "zero area: the finest level"),
    ]
    corners = np.array([[5.0, 7.0, 5.0 + w, 7.0 + h] for (w, h), _, _ in hand])
    got = np.asarray(fpn_level(corners.copy(), 84.0), dtype=np.float64).reshape(-1)
    if got.shape != (len(hand),):
        raise Wrong(
            f"{len(hand)} boxes (N, 4): got levels of shape {got.shape}, want ({len(hand)},)"
        )
    for k, ((w, h), want, why) in zip(got, hand):
        if k != want:
            raise Wrong(f"a {w} x {h} box at canonical size 84: got P{k:g}, want P{want} ({why})")
    rng = np.random.default_rng(71)
    for s0 in (28.0, 56.0, 84.0, 224.0):
        boxes = _random_boxes(rng, 300, 0.0, 500.0)
        boxes[:, 2:] = boxes[:, :2] + (boxes[:, 2:] - boxes[:, :2]) * rng.uniform(
            0.1, 8.0, (300, 1)
        )
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        raw = 4 + np.log2(np.sqrt(area) / s0)
        boxes = boxes[np.abs(raw - np.round(raw)) > 1e-5]
        want = level_for_boxes(boxes, canonical_size=s0, canonical_level=4)
        got = np.asarray(fpn_level(boxes.copy(), s0), dtype=np.float64).reshape(-1)
        if got.shape != want.shape:
            raise Wrong(f"{len(boxes)} boxes: got levels of shape {got.shape}, want {want.shape}")
        if not np.array_equal(got, want):
            i = int(np.flatnonzero(got != want)[0])
            w, h = boxes[i, 2] - boxes[i, 0], boxes[i, 3] - boxes[i, 1]
            raise Wrong(
                f"a {w:.3f} x {h:.3f} box at canonical size {s0:g}: got P{got[i]:g}, "
                f"level_for_boxes gives P{want[i]} (floor(4 + log2(sqrt(wh) / s0)), clamped "
                f"to [2, 5])"
            )


def _minimask_target(gt_mask, box, mask_scale, size):
    sx, sy = mask_scale
    scaled = np.array([[box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy]])
    return mask_targets(
        minimask.tensor(gt_mask[None]),
        minimask.tensor(scaled),
        minimask.tensor(np.array([0])),
        size,
    ).numpy()[0]


@exercise("07.3", "one mask target", "mask_target")
def check_mask_target(mask_target):
    """Hand computation: a 56 x 56 mask whose left half is 1, the box (0, 0, 84, 84) of a
    192-pixel model input with mask_scale (2/3, 2/3): the box covers the whole mask, each of
    the 28 x 28 bins 2 x 2 pixels, sampled (adaptive ratio 2) at the pixels' centres, so the
    target is exactly 1 in columns 0..13 and 0 in columns 14..27. Then 40 random masks (disks
    and rectangles in 128 x 128 images) and random boxes, mask_scale (2/3, 2/3), (1, 1) and
    (0.5, 0.75), M = 28 and 14, against minimask.models.masks.mask_targets (what
    RoIHeads.mask_training_targets calls) with the box scaled by mask_scale. 1e-6: RoIAlign
    in float32."""
    half = np.zeros((56, 56), dtype=np.uint8)
    half[:, :28] = 1
    got = np.asarray(mask_target(half.copy(), np.array([0.0, 0.0, 84.0, 84.0]), (2 / 3, 2 / 3), 28))
    want = np.zeros((28, 28))
    want[:, :14] = 1.0
    if got.shape != (28, 28):
        raise Wrong(f"size 28: got a target of shape {got.shape}, want (28, 28)")
    if np.abs(got - want).max() > 1e-6:
        rows, cols = np.nonzero(np.abs(got - want) > 1e-6)
        raise Wrong(
            f"left half of a 56 x 56 mask, box (0, 0, 84, 84), mask_scale (2/3, 2/3): cell "
            f"({rows[0]}, {cols[0]}) is {got[rows[0], cols[0]]:.6f}, want "
            f"{want[rows[0], cols[0]]:g} (the box in mask pixels is (0, 0, 56, 56); with "
            f"aligned=True and the adaptive sampling ratio the samples sit on pixel centres)"
        )
    rng = np.random.default_rng(72)
    yy, xx = np.mgrid[:128, :128]
    for case in range(40):
        cx, cy, r = rng.uniform(30, 98), rng.uniform(30, 98), rng.uniform(8, 25)
        if case % 2:
            gt = ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r).astype(np.uint8)
        else:
            gt = ((abs(xx - cx) <= r) & (abs(yy - cy) <= 0.6 * r)).astype(np.uint8)
        scale = ((2 / 3, 2 / 3), (1.0, 1.0), (0.5, 0.75))[case % 3]
        size = 28 if case % 4 else 14
        x1 = (cx - r * rng.uniform(0.6, 1.4)) / scale[0]
        y1 = (cy - r * rng.uniform(0.6, 1.4)) / scale[1]
        x2 = (cx + r * rng.uniform(0.6, 1.4)) / scale[0]
        y2 = (cy + r * rng.uniform(0.6, 1.4)) / scale[1]
        box = np.array([x1, y1, x2, y2])
        want = _minimask_target(gt, box, scale, size)
        got = np.asarray(mask_target(gt.copy(), box.copy(), scale, size), dtype=np.float64)
        if got.shape != want.shape:
            raise Wrong(f"size {size}: got a target of shape {got.shape}, want {want.shape}")
        error = np.abs(got - want).max()
        if error > 1e-6:
            i, j = np.unravel_index(np.argmax(np.abs(got - want)), want.shape)
            raise Wrong(
                f"random mask, box {np.round(box, 2).tolist()} (model pixels), mask_scale "
                f"{tuple(round(s, 4) for s in scale)}, size {size}: cell ({i}, {j}) is "
                f"{got[i, j]:.6f}, mask_targets gives {want[i, j]:.6f} (roi_align of the mask "
                f"into the box times mask_scale, spatial_scale 1, sampling_ratio -1, "
                f"aligned=True)"
            )


def _library_mask_loss_gradient(logits, labels, targets):
    """d RoIHeads.mask_loss / d logits by minimask's autograd."""
    heads = RoIHeads(MaskRCNNConfig.tiny(logits.shape[1]))
    x = minimask.tensor(logits, requires_grad=True)
    heads.mask_loss(x, minimask.tensor(labels), minimask.tensor(targets)).backward()
    return x.grad.numpy()


def _torch_mask_loss_gradient(logits, labels, targets):
    """The same gradient by torch's autograd of binary_cross_entropy_with_logits."""
    x = torch.from_numpy(logits.copy()).requires_grad_(True)
    chosen = x[torch.arange(len(labels)), torch.from_numpy(labels - 1)]
    torch_F.binary_cross_entropy_with_logits(chosen, torch.from_numpy(targets)).backward()
    return x.grad.numpy()


@exercise("07.4", "the mask loss's gradient", "mask_loss_gradient")
def check_mask_loss_gradient(mask_loss_gradient):
    """Hand computations: zero logits against targets 1 give (1/2 - 1) / (P M^2) on each
    RoI's class map and exactly 0 on every other map (the classes do not compete); logit
    50 against a target 0 gives sigmoid(50) / (P M^2), which is 1/4 for one RoI of 2 x 2
    cells; a sigmoid of 3/4 against targets 1/4 and 1 on 2 x 2 cells gives 1/8 and -1/16.
    Then 30 random sets (1 to 6 RoIs, 1 to 5 classes, M = 4 to 28, logits up to +-40, soft targets)
    against minimask's autograd of RoIHeads.mask_loss and torch's autograd of
    binary_cross_entropy_with_logits on the chosen maps. float64, to 1e-12 of the largest
    gradient (each entry is one sigmoid and a division)."""
    zeros = np.zeros((2, 3, 4, 4))
    want_zeros = np.zeros_like(zeros)
    want_zeros[0, 0] = want_zeros[1, 2] = -0.5 / 32
    big = np.zeros((1, 2, 2, 2))
    big[0, 1] = 50.0
    want_big = np.zeros_like(big)
    want_big[0, 1] = 0.25
    soft = np.full((1, 1, 2, 2), np.log(3.0))  # sigmoid = 3/4
    soft_targets = np.array([[[0.25, 1.0], [1.0, 1.0]]])
    want_soft = np.array([[[[0.125, -0.0625], [-0.0625, -0.0625]]]])  # (3/4 - t) / 4
    cases = [
        (zeros, np.array([1, 3]), np.ones((2, 4, 4)), want_zeros, "zero logits, targets 1"),
        (big, np.array([2]), np.zeros((1, 2, 2)), want_big, "logit 50, target 0"),
        (soft, np.array([1]), soft_targets, want_soft, "sigmoid 3/4 against targets 1/4 and 1"),
    ]
    rng = np.random.default_rng(74)
    for _ in range(30):
        count, classes, m = (
            int(rng.integers(1, 7)),
            int(rng.integers(1, 6)),
            int(rng.integers(4, 29)),
        )
        logits = rng.normal(0.0, 4.0, (count, classes, m, m))
        logits[0, :, 0, :2] = (40.0, -40.0)
        labels = rng.integers(1, classes + 1, count)
        targets = np.clip(rng.uniform(-0.5, 1.5, (count, m, m)), 0.0, 1.0)
        want = _library_mask_loss_gradient(logits, labels, targets)
        reference = _torch_mask_loss_gradient(logits, labels, targets)
        assert np.abs(want - reference).max() <= 1e-12 * np.abs(want).max()
        why = (
            f"{count} RoIs, {classes} classes, {m} x {m} maps, labels {labels.tolist()}: "
            "minimask's and torch's autograd"
        )
        cases.append((logits, labels, targets, want, why))
    for logits, labels, targets, want, why in cases:
        got = np.asarray(
            mask_loss_gradient(logits.copy(), labels.copy(), targets.copy()), np.float64
        )
        if got.shape != want.shape:
            raise Wrong(f"{why}: got a gradient of shape {got.shape}, want {want.shape}")
        error = np.abs(got - want)
        if error.max() > 1e-12 * np.abs(want).max():
            p, c, i, j = np.unravel_index(np.argmax(error), want.shape)
            raise Wrong(
                f"{why}: d loss / d logits[{p}, {c}, {i}, {j}] is {float(got[p, c, i, j])!r}, "
                f"want {float(want[p, c, i, j])!r} (RoI {p}'s label is {labels[p]}: "
                f"(sigmoid(x) - t) / (P M^2) on its map labels[p] - 1, 0 on every other map)"
            )
