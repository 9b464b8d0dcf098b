"""Checkers of lesson 12 (the paper's ablations: RoIWarp, softmax masks, class-agnostic
masks). References: minimask's ``roi_warp`` (``minimask.ops``), ``RoIHeads.mask_loss`` and
``RoIHeads.mask_probabilities`` built with each ablation's config, torch's ``cross_entropy``
for the softmax mask loss, and hand computations: RoIWarp on a ramp f[i, j] = 10 i + j, on
which a bin's average of bilinear samples is the ramp at the bin's centre (the samples lie
symmetrically about it), losses and probabilities of constant logits. Everything is
float64, compared to 1e-12 relative (a few dozen roundings of numbers below 100, or an exp
and a log, err by ~1e-14)."""

import numpy as np
import torch
import torch.nn.functional as torch_F

import minimask
from exercises import Wrong, exercise
from minimask.models import MaskRCNNConfig, RoIHeads
from minimask.ops import roi_warp


def _ramp(height, width):
    """f[i, j] = 10 i + j: every value says where it was read."""
    return 10.0 * np.arange(height)[:, None] + np.arange(width)[None, :]


def _close(got, want, rtol=1e-12):
    """|got - want| <= rtol * max(1, |want|), elementwise."""
    return np.all(np.abs(got - want) <= rtol * np.maximum(1.0, np.abs(want)))


@exercise("12.1", "RoIWarp: round the box, then RoIAlign", "roi_warp_by_hand")
def check_roi_warp(roi_warp_by_hand):
    """Two hand cases on a 10 x 10 ramp 10 i + j, 2 x 2 bins: box (1.3, 0.8, 5.6, 4.9) at
    scale 1 rounds to (1, 1, 6, 5), bins 2.5 wide and 2 high, centres x 2.25, 4.75 and y 2,
    4: [[22.25, 24.75], [42.25, 44.75]]; box (5, 1, 13, 11) at scale 1/2 is (2.5, 0.5, 6.5,
    5.5), which C's round takes to (3, 1, 7, 6) (np.round's halves to even would give (2, 0,
    6, 6)): centres x 4, 6 and y 2.25, 4.75, [[26.5, 28.5], [51.5, 53.5]]. Then 10 boxes on
    a random 9 x 11 map (halves, boxes over the border, under one cell, sampling ratios 1,
    2 and -1, scales 1, 1/2, 1/4) against minimask.ops.roi_warp. 1e-12, float64."""
    ramp = _ramp(10, 10)
    hand = [
        ((1.3, 0.8, 5.6, 4.9), 1.0, [[22.25, 24.75], [42.25, 44.75]], "rounds to (1, 1, 6, 5)"),
        (
            (5.0, 1.0, 13.0, 11.0),
            0.5,
            [[26.5, 28.5], [51.5, 53.5]],
            "scales to (2.5, 0.5, 6.5, 5.5), which rounds away from zero to (3, 1, 7, 6)",
        ),
    ]
    for box, scale, want, why in hand:
        got = np.asarray(roi_warp_by_hand(ramp.copy(), box, (2, 2), scale, 2), np.float64)
        if got.shape != (2, 2) or not _close(got, np.array(want)):
            raise Wrong(
                f"ramp 10 i + j, box {box}, scale {scale}, 2 x 2 bins, sampling_ratio 2: got "
                f"{np.round(got, 4).tolist()}, want {want} (the box {why}; then RoIAlign "
                f"with spatial_scale 1 and aligned=False)"
            )
    feature = np.random.default_rng(121).standard_normal((9, 11))
    cases = [  # box, output size, spatial scale, sampling ratio
        ((1.0, 3.0, 9.0, 5.0), (2, 2), 0.5, 2),
        ((0.6, 1.1, 4.7, 5.2), (3, 3), 1.0, 2),
        ((-2.5, 3.5, 3.2, 8.4), (2, 3), 1.0, 1),
        ((10.0, 6.0, 30.0, 26.0), (3, 3), 0.25, -1),
        ((2.2, 2.4, 2.5, 2.6), (2, 2), 1.0, 2),
        ((0.0, 0.0, 10.0, 8.0), (4, 5), 1.0, -1),
        ((7.5, 0.5, 21.5, 17.5), (7, 7), 0.5, 2),
        ((3.49, 2.51, 8.5, 6.5), (2, 4), 1.0, 2),
        ((-4.0, -4.0, 40.0, 36.0), (3, 2), 0.25, -1),
        ((4.0, 4.0, 4.0, 4.0), (2, 2), 1.0, 2),
    ]
    for box, output_size, scale, ratio in cases:
        want = roi_warp(
            minimask.tensor(feature[None, None]),
            minimask.tensor(np.array([[0.0, *box]])),
            output_size,
            spatial_scale=scale,
            sampling_ratio=ratio,
        ).numpy()[0, 0]
        got = np.asarray(roi_warp_by_hand(feature.copy(), box, output_size, scale, ratio))
        where = (
            f"random map {feature.shape}, box {box}, output {output_size}, scale {scale}, "
            f"sampling_ratio {ratio}"
        )
        if got.shape != want.shape:
            raise Wrong(f"{where}: got shape {got.shape}, want {want.shape}")
        if not _close(got, want):
            ph, pw = np.argwhere(~np.isclose(got, want, rtol=1e-12, atol=1e-12))[0]
            raise Wrong(
                f"{where}: bin ({ph}, {pw}) = {got[ph, pw]:.6f}, minimask's roi_warp gives "
                f"{want[ph, pw]:.6f} (round box * scale half away from zero, then RoIAlign "
                f"at spatial_scale 1, aligned=False)"
            )


def _heads(classes, agnostic=False, kind="softmax"):
    return RoIHeads(MaskRCNNConfig.tiny(classes, mask_loss=kind, class_agnostic_masks=agnostic))


@exercise("12.2", "the softmax mask loss", "softmax_mask_loss")
def check_softmax_mask_loss(softmax_mask_loss):
    """Hand cases: zero logits give log(K + 1) whatever the targets; logit 50 on the RoI's
    class map and 0 elsewhere costs log(1 + K e^-50) a cell where that class is the target
    and 50 + log(1 + K e^-50) where the background is (the naive log of the softmax
    underflows nowhere here, but exp(800) would overflow: subtract the maximum); a target
    of exactly 0.5 is the object (>= 0.5). Then 30 random sets (1 to 6 RoIs, 1 to 4
    classes, 4 x 4 to 28 x 28, soft targets) against RoIHeads.mask_loss with
    mask_loss="softmax" and torch's cross_entropy on the thresholded classes. 1e-12
    relative, float64."""
    tiny = np.log1p(2 * np.exp(-50.0))
    zeros = np.zeros((2, 4, 3, 3))  # 3 classes + background
    big = np.zeros((1, 3, 2, 2))  # 2 classes + background
    big[0, 2] = 50.0  # the map of class 2, the RoI's
    half = np.full((1, 2, 2), 0.5)
    hand = [
        (zeros, np.array([1, 3]), np.ones((2, 3, 3)), np.log(4.0), "zero logits: log(K + 1)"),
        (big, np.array([2]), np.ones((1, 2, 2)), tiny, "logit 50 on the object's class"),
        (big, np.array([2]), np.zeros((1, 2, 2)), 50.0 + tiny, "logit 50, target background"),
        (big, np.array([2]), half, tiny, "targets of exactly 0.5 are the object (>= 0.5)"),
        (800 * big / 50, np.array([2]), np.ones((1, 2, 2)), 0.0, "logit 800: subtract the max"),
    ]
    for logits, labels, targets, want, why in hand:
        got = float(softmax_mask_loss(logits.copy(), labels.copy(), targets.copy()))
        want = float(want)
        if not abs(got - want) <= 1e-12 * max(1.0, abs(want)):
            raise Wrong(
                f"logits {logits.shape}, labels {labels.tolist()}: got {got!r}, want {want!r} "
                f"({why})"
            )
    rng = np.random.default_rng(122)
    for _ in range(30):
        count, classes, m = (
            int(rng.integers(1, 7)),
            int(rng.integers(1, 5)),
            int(rng.integers(4, 29)),
        )
        logits = rng.normal(0.0, 4.0, (count, classes + 1, m, m))
        labels = rng.integers(1, classes + 1, count)
        targets = np.clip(rng.uniform(-0.5, 1.5, (count, m, m)), 0.0, 1.0)
        want = (
            _heads(classes)
            .mask_loss(minimask.tensor(logits), minimask.tensor(labels), minimask.tensor(targets))
            .item()
        )
        cells = np.where(targets >= 0.5, labels[:, None, None], 0)
        reference = torch_F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(cells)).item()
        assert abs(want - reference) <= 1e-12 * max(1.0, abs(want))
        got = float(softmax_mask_loss(logits.copy(), labels.copy(), targets.copy()))
        if not abs(got - want) <= 1e-12 * max(1.0, abs(want)):
            raise Wrong(
                f"{count} RoIs, {classes} classes, {m} x {m} maps, labels {labels.tolist()}: got "
                f"{got!r}, RoIHeads.mask_loss (softmax) gives {want!r} and torch's "
                f"cross_entropy {reference!r} (class labels[p] where the target is >= 0.5, "
                f"background 0 elsewhere; the mean over all P x M x M cells)"
            )


VARIANTS = [("sigmoid", False), ("sigmoid", True), ("softmax", False), ("softmax", True)]


def _maps(classes, mask_loss, agnostic):
    """How many maps a RoI has under each ablation (RoIHeads' mask head)."""
    return (1 if agnostic else classes) + (1 if mask_loss == "softmax" else 0)


@exercise("12.3", "each ablation's mask probabilities", "mask_probabilities")
def check_mask_probabilities(mask_probabilities):
    """Hand case: K = 3 classes, map c of every detection constant c (0, 1, 2, ...), labels
    (1, 3): class-specific sigmoid gives sigmoid(label - 1) = (1/2, sigmoid(2)); class-agnostic
    sigmoid sigmoid(0) = 1/2; class-specific softmax (maps 0..3) e^label / (1 + e + e^2 + e^3);
    class-agnostic softmax (maps 0, 1) e / (1 + e). Then 8 random sets per variant (1 to 6
    detections, 1 to 4 classes, M 4 to 28, logits up to +-40) against
    RoIHeads.mask_probabilities of heads built with that mask_loss and class_agnostic_masks.
    1e-12, float64 (probabilities lie in [0, 1])."""
    labels = np.array([1, 3])
    sigmoid = lambda x: 1.0 / (1.0 + np.exp(-x))  # noqa: E731
    e = np.exp(1.0)
    hand = {
        ("sigmoid", False): [sigmoid(0.0), sigmoid(2.0)],
        ("sigmoid", True): [0.5, 0.5],
        ("softmax", False): [e / (1 + e + e**2 + e**3), e**3 / (1 + e + e**2 + e**3)],
        ("softmax", True): [e / (1 + e), e / (1 + e)],
    }
    for (kind, agnostic), want in hand.items():
        want = [float(w) for w in want]
        maps = _maps(3, kind, agnostic)
        logits = np.broadcast_to(
            np.arange(maps, dtype=np.float64)[None, :, None, None], (2, maps, 5, 5)
        )
        got = np.asarray(
            mask_probabilities(logits.copy(), labels.copy(), kind, agnostic), np.float64
        )
        if got.shape != (2, 5, 5):
            raise Wrong(
                f"mask_loss={kind!r}, class_agnostic={agnostic}: got shape {got.shape}, "
                "want (2, 5, 5)"
            )
        if not _close(got[:, 0, 0], np.array(want)):
            raise Wrong(
                f"mask_loss={kind!r}, class_agnostic={agnostic}, {maps} maps with map c equal "
                f"to c, labels {labels.tolist()}: got {got[:, 0, 0].tolist()}, want {want} "
                f"(sigmoid maps: class y is map y - 1, agnostic map 0; softmax maps: the "
                f"background is map 0, class y map y, agnostic object map 1)"
            )
    rng = np.random.default_rng(123)
    for kind, agnostic in VARIANTS:
        for _ in range(8):
            count, classes, m = (
                int(rng.integers(1, 7)),
                int(rng.integers(1, 5)),
                int(rng.integers(4, 29)),
            )
            logits = rng.normal(0.0, 6.0, (count, _maps(classes, kind, agnostic), m, m))
            logits[0, :, 0, 0] = 40.0 * rng.choice([-1.0, 1.0], logits.shape[1])
            labels = rng.integers(1, classes + 1, count)
            heads = _heads(classes, agnostic, kind)
            want = heads.mask_probabilities(minimask.tensor(logits), minimask.tensor(labels))
            want = want.numpy()[:, 0]
            got = np.asarray(
                mask_probabilities(logits.copy(), labels.copy(), kind, agnostic), np.float64
            )
            where = (
                f"mask_loss={kind!r}, class_agnostic={agnostic}, {count} detections, {classes} "
                f"classes, {m} x {m}, labels {labels.tolist()}"
            )
            if got.shape != want.shape:
                raise Wrong(f"{where}: got shape {got.shape}, want {want.shape}")
            if not np.all(np.abs(got - want) <= 1e-12):
                d, i, j = np.unravel_index(np.argmax(np.abs(got - want)), want.shape)
                raise Wrong(
                    f"{where}: detection {d}, cell ({i}, {j}) is {got[d, i, j]!r}, "
                    f"RoIHeads.mask_probabilities gives {want[d, i, j]!r}"
                )
