"""Checkers of lesson 08 (NMS and inference). References: ``minimask.ops.nms`` and
``batched_nms``, ``minimask.models.masks.paste_masks_in_image``, reference implementations
written out here in plain Python and NumPy (greedy NMS as a loop over pairs, per-class NMS
as one loop per class, soft-NMS as Algorithm 1 of Bodla et al. 2017), and hand computations
(the lesson's seven boxes, pairs of boxes whose IoU is known exactly, masks whose pasted
values follow from the formula). Kept indices are compared exactly; soft-NMS scores and
pasted values in float64 to 1e-12 against the written-out references and the hand
computations (a few dozen roundings of numbers of order 1), pasted values against
``paste_masks_in_image``, whose output is float32, to 1e-6."""

import math

import numpy as np

import minimask
from exercises import Wrong, exercise
from minimask.models import paste_masks_in_image
from minimask.ops import batched_nms, nms

# the lesson's seven boxes A..G and their scores
LESSON_BOXES = np.array(
    [
        [10, 10, 50, 50],
        [13, 14, 53, 54],
        [7, 6, 46, 47],
        [42, 40, 82, 80],
        [46, 45, 84, 86],
        [92, 14, 122, 44],
        [28, 30, 66, 70],
    ],
    dtype=np.float64,
)
LESSON_SCORES = np.array([0.9, 0.8, 0.75, 0.7, 0.6, 0.65, 0.55])
NAMES = "ABCDEFG"


def _iou(a, b):
    """IoU of two boxes (x1, y1, x2, y2), area (x2 - x1) * (y2 - y1), no "+1"."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _greedy_nms(boxes, scores, threshold):
    """The reference: greedy NMS as the lesson's loop, in plain Python."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    kept = []
    while order:
        best = order.pop(0)
        kept.append(best)
        order = [i for i in order if not _iou(boxes[best], boxes[i]) > threshold]
    return kept


def _per_class_nms(boxes, scores, labels, threshold):
    """The reference: greedy NMS within each class, then all kept boxes by score (equal
    scores: lower index first)."""
    kept = []
    for label in sorted(set(labels.tolist())):
        members = [i for i in range(len(labels)) if labels[i] == label]
        kept += [members[k] for k in _greedy_nms(boxes[members], scores[members], threshold)]
    return sorted(kept, key=lambda i: (-scores[i], i))


def _soft_nms(boxes, scores, method, sigma, iou_threshold, score_threshold):
    """The reference: Algorithm 1 of Bodla et al. 2017, with the authors' code's pruning of
    boxes whose score fell below score_threshold."""
    current = [float(s) for s in scores]
    left = [i for i in range(len(current)) if current[i] >= score_threshold]
    keep, kept_scores = [], []
    while left:
        best = min(left, key=lambda i: (-current[i], i))
        left.remove(best)
        keep.append(best)
        kept_scores.append(current[best])
        for i in left:
            overlap = _iou(boxes[best], boxes[i])
            if method == "linear":
                current[i] *= 1.0 - overlap if overlap >= iou_threshold else 1.0
            else:
                current[i] *= math.exp(-overlap * overlap / sigma)
        left = [i for i in left if current[i] >= score_threshold]
    return keep, kept_scores


def _indices(got, what):
    """A student's kept indices (list, array or Tensor) as a list of ints."""
    if hasattr(got, "numpy"):
        got = got.numpy()
    got = np.asarray(got)
    if got.ndim != 1:
        raise Wrong(f"{what}: want a 1-D list of kept indices, got shape {got.shape}")
    if got.size and got.dtype.kind not in "iu":
        if not np.array_equal(got, np.round(got)):
            raise Wrong(f"{what}: kept indices must be integers, got {got.tolist()}")
    return [int(i) for i in got]


def _random_boxes(rng, n, spread=100.0, low=0.0):
    """n boxes in a few clusters (so that many pairs overlap), all with positive area."""
    centres = rng.uniform(low + 10, low + spread, (max(1, n // 4), 2))
    centre = centres[rng.integers(len(centres), size=n)] + rng.normal(0, 4, (n, 2))
    size = rng.uniform(6, 30, (n, 2))
    return np.concatenate([centre - size / 2, centre + size / 2], axis=1)


def _random_scores(rng, n):
    """Scores in (0, 1), rounded to 2 decimals so that some are equal (ties)."""
    return np.round(rng.uniform(0.01, 1.0, n), 2)


@exercise("08.1", "greedy NMS: all IoUs, then one sweep", "nms_by_hand")
def check_nms_by_hand(nms_by_hand):
    """Hand computations: the lesson's seven boxes at IoU thresholds 0.2, 0.3, 0.5 and 0.7
    (the lists the lesson's step-by-step loop prints), two boxes with IoU exactly 0.5 at
    threshold 0.5 (both stay: "greater than"), and three boxes of equal score where only the
    order 0, 1, 2 (ties: lower index first) keeps boxes 0 and 2. Then 150 random sets of 1
    to 40 boxes in clusters, with equal scores among them, at thresholds 0.3, 0.5 and 0.7,
    against minimask.ops.nms and a greedy loop written out here. Exact indices."""
    hand = [
        (LESSON_BOXES, LESSON_SCORES, 0.2, [0, 3, 5], "the lesson's boxes A..G"),
        (LESSON_BOXES, LESSON_SCORES, 0.3, [0, 3, 5, 6], "the lesson's boxes A..G"),
        (LESSON_BOXES, LESSON_SCORES, 0.5, [0, 3, 5, 6], "the lesson's boxes A..G"),
        (LESSON_BOXES, LESSON_SCORES, 0.7, [0, 3, 5, 4, 6], "the lesson's boxes A..G"),
        (
            np.array([[0.0, 0, 3, 1], [1, 0, 4, 1]]),
            np.array([0.9, 0.8]),
            0.5,
            [0, 1],
            "IoU exactly 0.5 = the threshold: a box is dropped only for IoU > threshold",
        ),
        (
            np.array([[0.0, 0, 10, 10], [5, 0, 15, 10], [10, 0, 20, 10]]),
            np.array([0.5, 0.5, 0.5]),
            0.3,
            [0, 2],
            "equal scores are visited lower index first (np.argsort(-scores, kind='stable')); "
            "IoU(0, 1) = IoU(1, 2) = 1/3",
        ),
    ]
    for boxes, scores, threshold, want, why in hand:
        got = _indices(nms_by_hand(boxes.copy(), scores.copy(), threshold), "nms_by_hand")
        if got != want:
            letters = "" if boxes is not LESSON_BOXES else f" = {[NAMES[i] for i in got]}"
            raise Wrong(
                f"{len(boxes)} boxes, threshold {threshold}: got {got}{letters}, want {want} "
                f"({why})"
            )
    rng = np.random.default_rng(80)
    for case in range(150):
        n = int(rng.integers(1, 41))
        boxes, scores = _random_boxes(rng, n), _random_scores(rng, n)
        threshold = float(rng.choice([0.3, 0.5, 0.7]))
        want = _greedy_nms(boxes, scores, threshold)
        library = nms(minimask.tensor(boxes), minimask.tensor(scores), threshold).numpy().tolist()
        assert library == want, "minimask.ops.nms and the reference disagree"
        got = _indices(nms_by_hand(boxes.copy(), scores.copy(), threshold), "nms_by_hand")
        if got != want:
            raise Wrong(
                f"random case {case}: {n} boxes, threshold {threshold}: got {got}, "
                f"minimask.ops.nms keeps {want}"
            )


@exercise("08.2", "soft-NMS", "soft_nms")
def check_soft_nms(soft_nms):
    """Hand computations with sigma 0.5 and N_t 0.3: two boxes with IoU exactly 0.5 (Gaussian
    0.8 exp(-0.25 / 0.5), linear 0.8 (1 - 0.5)), IoU 1/7 (below N_t: linear leaves the
    score, Gaussian multiplies it by exp(-2/49)), two equal boxes (IoU 1: linear gives 0,
    dropped below 0.001; Gaussian 0.8 exp(-2); with sigma 0.1 0.8 exp(-10) < 0.001,
    dropped), three boxes whose order changes after a decay, and a box that starts below
    the score threshold. Then the lesson's boxes and 120 random sets of 1 to 30 boxes, both
    decays, sigma 0.3 or 0.5, N_t 0.3 or 0.5, against Algorithm 1 written out here. Kept
    indices exactly, scores to 1e-12 (float64)."""
    pair_half = np.array([[0.0, 0, 3, 1], [1, 0, 4, 1]])  # IoU 2/4
    pair_seventh = np.array([[0.0, 0, 4, 1], [3, 0, 7, 1]])  # IoU 1/7
    same = np.array([[2.0, 2, 9, 9], [2, 2, 9, 9]])
    three = np.array([[0.0, 0, 3, 1], [1, 0, 4, 1], [10, 0, 13, 1]])
    two = np.array([0.9, 0.8])
    e = math.exp
    hand = [  # boxes, scores, method, sigma, N_t, (keep, scores), why
        (
            pair_half,
            two,
            "gaussian",
            0.5,
            0.3,
            ([0, 1], [0.9, 0.8 * e(-0.5)]),
            "0.8 exp(-0.5^2/0.5)",
        ),
        (pair_half, two, "linear", 0.5, 0.3, ([0, 1], [0.9, 0.4]), "0.8 (1 - 0.5)"),
        (pair_seventh, two, "linear", 0.5, 0.3, ([0, 1], [0.9, 0.8]), "IoU 1/7 < N_t: no decay"),
        (
            pair_seventh,
            two,
            "gaussian",
            0.5,
            0.3,
            ([0, 1], [0.9, 0.8 * e(-2 / 49)]),
            "the Gaussian decays every overlap: 0.8 exp(-(1/7)^2 / 0.5)",
        ),
        (same, two, "linear", 0.5, 0.3, ([0], [0.9]), "0.8 (1 - 1) = 0 < 0.001: dropped"),
        (same, two, "gaussian", 0.5, 0.3, ([0, 1], [0.9, 0.8 * e(-2)]), "0.8 exp(-1/0.5)"),
        (same, two, "gaussian", 0.1, 0.3, ([0], [0.9]), "0.8 exp(-10) < 0.001: dropped"),
        (
            three,
            np.array([0.9, 0.85, 0.6]),
            "gaussian",
            0.5,
            0.3,
            ([0, 2, 1], [0.9, 0.6, 0.85 * e(-0.5)]),
            "box 1 falls to 0.85 exp(-0.5) = 0.516, below box 2's 0.6: pick the highest "
            "current score each time",
        ),
        (
            pair_seventh,
            np.array([0.9, 0.0005]),
            "gaussian",
            0.5,
            0.3,
            ([0], [0.9]),
            "a score below score_threshold from the start is dropped",
        ),
    ]
    rng = np.random.default_rng(81)
    cases = [
        (LESSON_BOXES, LESSON_SCORES, m, 0.5, 0.3, None, "the lesson's boxes")
        for m in ("gaussian", "linear")
    ]
    for _ in range(120):
        n = int(rng.integers(1, 31))
        boxes = _random_boxes(rng, n)
        scores = rng.uniform(0.01, 1.0, n)
        method = str(rng.choice(["gaussian", "linear"]))
        sigma, n_t = float(rng.choice([0.3, 0.5])), float(rng.choice([0.3, 0.5]))
        cases.append((boxes, scores, method, sigma, n_t, None, f"random, {n} boxes"))
    for boxes, scores, method, sigma, n_t, want, why in hand + cases:
        if want is None:
            want = _soft_nms(boxes, scores, method, sigma, n_t, 0.001)
        setting = f"method={method!r}, sigma={sigma}, iou_threshold={n_t}"
        result = soft_nms(
            boxes.copy(),
            scores.copy(),
            method=method,
            sigma=sigma,
            iou_threshold=n_t,
            score_threshold=0.001,
        )
        if not isinstance(result, tuple) or len(result) != 2:
            raise Wrong("soft_nms must return a pair (kept indices, their new scores)")
        keep = _indices(result[0], "soft_nms")
        new = np.asarray(result[1], dtype=np.float64).reshape(-1)
        if keep != list(want[0]):
            raise Wrong(
                f"{why}, {setting}: kept {keep}, want {list(want[0])} (in the order picked: "
                f"the highest current score first, lower index on ties)"
            )
        if len(new) != len(keep) or not np.allclose(new, want[1], rtol=0, atol=1e-12):
            raise Wrong(
                f"{why}, {setting}: scores {np.round(new, 6).tolist()}, want "
                f"{np.round(want[1], 6).tolist()}"
            )


@exercise("08.3", "per-class NMS by the coordinate offset", "nms_by_offset")
def check_nms_by_offset(nms_by_offset):
    """Hand computations: the lesson's person and horse (IoU 0.58; per class both stay,
    [0, 2]), one class (then it is plain nms), and two boxes of labels 1 and 2 that lie
    entirely at negative coordinates with the largest coordinate -1 (a shift of
    label * (max + 1), torchvision's, is 0 there and the horse would suppress the person;
    the shift must exceed the range max - min). Then 150 random sets of 1 to 40 boxes with
    labels from {3, 7, 90} or {0, 1}, some at negative coordinates, against
    minimask.ops.batched_nms (on the CPU one nms per class, a different algorithm) and a
    per-class greedy loop written out here. Exact indices."""
    scene = np.array([[25.0, 10, 70, 80], [28, 12, 72, 83], [20, 20, 80, 90], [22, 24, 84, 92]])
    negative = np.array([[-41.0, -41, -1, -1], [-45, -43, -5, -3]])
    hand = [
        (scene, np.array([0.9, 0.7, 0.8, 0.6]), np.array([1, 1, 2, 2]), [0, 2], "person, horse"),
        (scene, np.array([0.9, 0.7, 0.8, 0.6]), np.array([5, 5, 5, 5]), [0], "one class"),
        (
            negative,
            np.array([0.9, 0.8]),
            np.array([1, 2]),
            [0, 1],
            "two classes at negative coordinates, largest coordinate -1: the shift must be "
            "more than max - min, the range of all coordinates (label * (max + 1) is 0 here)",
        ),
    ]
    rng = np.random.default_rng(82)
    cases = []
    for _ in range(150):
        n = int(rng.integers(1, 41))
        low = float(rng.choice([0.0, -200.0, -1000.0]))
        boxes, scores = _random_boxes(rng, n, low=low), _random_scores(rng, n)
        labels = rng.choice([3, 7, 90] if rng.integers(2) else [0, 1], size=n)
        cases.append((boxes, scores, labels, None, f"random, {n} boxes from x = {low:.0f} on"))
    for boxes, scores, labels, want, why in hand + cases:
        threshold = 0.5 if want is not None else float(rng.choice([0.3, 0.5, 0.7]))
        if want is None:
            want = _per_class_nms(boxes, scores, labels, threshold)
            library = batched_nms(
                minimask.tensor(boxes), minimask.tensor(scores), minimask.tensor(labels), threshold
            )
            assert library.numpy().tolist() == want, "batched_nms and the reference disagree"
        got = nms_by_offset(boxes.copy(), scores.copy(), labels.copy(), threshold)
        got = _indices(got, "nms_by_offset")
        if got != want:
            raise Wrong(
                f"{why}, labels {labels.tolist()[:12]}{'...' if len(labels) > 12 else ''}, "
                f"threshold {threshold}: got {got}, batched_nms keeps {want}"
            )


def _mask_coordinates(size, lo, hi, m):
    """Mask coordinate u of every pixel centre along one axis (the lesson's formula)."""
    return (np.arange(size) + 0.5 - lo) / (hi - lo) * m - 0.5


def _check_shape(got, height, width):
    got = np.asarray(got.numpy() if hasattr(got, "numpy") else got, dtype=np.float64)
    if got.shape != (height, width):
        raise Wrong(f"paste_mask must return a ({height}, {width}) array, got {got.shape}")
    return got


@exercise("08.4", "pasting a mask into its box", "paste_mask")
def check_paste_mask(paste_mask):
    """Hand computations on the lesson's box (10.3, 6.7, 45.8, 30.2) in a 40 x 56 image,
    M = 28: an affine mask f[v, u] = 0.3 + 0.02 v + 0.01 u, which bilinear interpolation
    reproduces exactly, equals 0.3 + 0.02 v + 0.01 u at every pixel whose (v, u) lies in
    [0, M - 1]^2, and 0 at every pixel more than one mask cell outside; an all-ones mask is
    1 on those inner pixels and, at >= 0.5, covers exactly the pixels whose centre is in the
    box. All 1e-12. Then 16 random masks (M = 28 or 7) in random boxes (fractional corners,
    over the image's border, smaller than a pixel, the whole image) against
    minimask.models.paste_masks_in_image (threshold=None): 1e-6, its output is float32."""
    height, width, m = 40, 56, 28
    box = (10.3, 6.7, 45.8, 30.2)
    v = _mask_coordinates(height, box[1], box[3], m)[:, None] + np.zeros((1, width))
    u = _mask_coordinates(width, box[0], box[2], m)[None, :] + np.zeros((height, 1))
    inner = (v >= 0) & (v <= m - 1) & (u >= 0) & (u <= m - 1)
    far = (v < -1) | (v > m) | (u < -1) | (u > m)
    rows, cols = np.mgrid[0:m, 0:m]
    affine = 0.3 + 0.02 * rows + 0.01 * cols
    got = _check_shape(paste_mask(affine.copy(), box, height, width), height, width)
    want = 0.3 + 0.02 * v + 0.01 * u
    error = np.where(inner, np.abs(got - want), 0.0)
    if error.max() > 1e-12:
        y, x = np.unravel_index(np.argmax(error), error.shape)
        raise Wrong(
            f"affine mask 0.3 + 0.02 v + 0.01 u in box {box}: pixel (y, x) = ({y}, {x}) at mask "
            f"(v, u) = ({v[y, x]:.4f}, {u[y, x]:.4f}) got {got[y, x]:.6f}, want "
            f"{want[y, x]:.6f} (bilinear interpolation of an affine map is exact)"
        )
    if np.abs(got[far]).max() > 1e-12:
        y, x = np.argwhere(far & (got != 0))[0]
        raise Wrong(
            f"affine mask in box {box}: pixel (y, x) = ({y}, {x}) lies at mask (v, u) = "
            f"({v[y, x]:.4f}, {u[y, x]:.4f}), more than one cell outside the mask, so it must "
            f"be 0, got {got[y, x]:.6f}"
        )
    ones = _check_shape(paste_mask(np.ones((m, m)), box, height, width), height, width)
    if np.abs(ones[inner] - 1.0).max() > 1e-12:
        raise Wrong(f"all-ones mask in box {box}: the pixels inside the mask's cells must be 1")
    cy, cx = np.arange(height) + 0.5, np.arange(width) + 0.5
    centres = ((cy >= box[1]) & (cy <= box[3]))[:, None] & ((cx >= box[0]) & (cx <= box[2]))
    if not np.array_equal(ones >= 0.5, centres):
        raise Wrong(
            f"all-ones mask in box {box}, >= 0.5: {int((ones >= 0.5).sum())} pixels, want the "
            f"{int(centres.sum())} whose centre lies in the box"
        )
    rng = np.random.default_rng(83)
    boxes = [
        (3.2, 4.7, 30.9, 22.1),
        (-8.5, -3.0, 20.25, 15.5),  # over the top-left border
        (40.0, 25.0, 70.0, 48.0),  # over the bottom-right border
        (12.3, 7.6, 12.8, 8.2),  # smaller than a pixel
        (0.0, 0.0, 56.0, 40.0),  # the whole image
    ]
    for _ in range(11):
        x1, y1 = rng.uniform(-10, 50), rng.uniform(-10, 35)
        boxes.append((x1, y1, x1 + rng.uniform(1, 40), y1 + rng.uniform(1, 30)))
    for index, box in enumerate(boxes):
        size = 7 if index % 4 == 3 else 28
        mask = rng.uniform(0, 1, (size, size))
        want = paste_masks_in_image(
            minimask.tensor(mask[None]), minimask.tensor(np.array([box])), (height, width), None
        ).numpy()[0, 0]
        got = _check_shape(paste_mask(mask.copy(), box, height, width), height, width)
        error = np.abs(got - want)
        if error.max() > 1e-6:
            y, x = np.unravel_index(np.argmax(error), error.shape)
            rounded = tuple(round(c, 3) for c in box)
            raise Wrong(
                f"random {size} x {size} mask in box {rounded}: pixel (y, x) = ({y}, {x}) got "
                f"{got[y, x]:.6f}, paste_masks_in_image gives {want[y, x]:.6f}"
            )
