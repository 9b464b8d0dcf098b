"""Checkers of lesson 04 (RoIPool and RoIAlign). References: ``minimask.ops.roi_align`` and
``roi_pool``, ``minimask.viz.bilinear_neighbours`` and ``minimask.geometry.roi_align``'s
``roi_geometry`` (the kernels' own formulas), and hand computations, mostly on a ramp
f[i, j] = 10 i + j, on which bilinear interpolation is exact. Values are float64, compared
to 1e-12 (a few dozen roundings of numbers below 100 err by ~1e-14); maxima (a copy of one
input) and sample counts (integers) exactly."""

import itertools

import numpy as np

import minimask
from exercises import Wrong, exercise
from minimask.geometry.roi_align import roi_geometry
from minimask.ops import roi_align, roi_pool
from minimask.viz import bilinear_neighbours, roi_align_sample_points


def _ramp(height, width):
    """f[i, j] = 10 i + j: every value says where it was read."""
    return 10.0 * np.arange(height)[:, None] + np.arange(width)[None, :]


def _minimask_bilinear(feature, y, x):
    cells, weights = bilinear_neighbours(y, x, *feature.shape)
    return float(np.sum(weights * feature[cells[:, 0], cells[:, 1]]))


def _minimask_roi_align(feature, box, output_size, sampling_ratio, aligned):
    """minimask.ops.roi_align of one box on a 2-D map, as a (PH, PW) array."""
    return roi_align(
        minimask.tensor(feature[None, None]),
        minimask.tensor(np.array([[0.0, *box]])),
        output_size,
        sampling_ratio=sampling_ratio,
        aligned=aligned,
    ).numpy()[0, 0]


@exercise("04.1", "bilinear interpolation by RoIAlign's border rule", "bilinear")
def check_bilinear(bilinear):
    """Hand computations: the ramp's value 10 y + x at 12 points inside a 5x6 map (exact for
    bilinear interpolation of an affine function), the weight ly*lx of the one nonzero cell
    of [[0, 0], [0, 1]], and the border rule at 5 points (clamped within one cell of the
    map, 0 beyond). Then 300 random points in and around a random 5x6 map against
    minimask.viz.bilinear_neighbours (the kernels' bilinear_corners). All 1e-12."""
    ramp = _ramp(5, 6)
    rng = np.random.default_rng(40)
    hand = [(ramp, y, x, 10 * y + x, "10 y + x") for y, x in rng.uniform((0, 0), (4, 5), (12, 2))]
    hand += [
        (np.array([[0.0, 0.0], [0.0, 1.0]]), 0.25, 0.5, 0.125, "ly * lx = 0.25 * 0.5"),
        (ramp, -0.5, 2.25, 2.25, "y within one cell above the map: clamped to row 0"),
        (ramp, 4.5, 1.0, 41.0, "y between H-1 and H: the last row repeats"),
        (ramp, 2.0, 6.0, 25.0, "x = W exactly still counts, clamped to column W-1"),
        (ramp, -1.5, 2.0, 0.0, "y < -1: outside, the sample is 0"),
        (ramp, 2.0, 6.01, 0.0, "x > W: outside, the sample is 0"),
    ]
    for feature, y, x, want, why in hand:
        got = float(bilinear(feature.copy(), y, x))
        if abs(got - want) > 1e-12:
            raise Wrong(
                f"bilinear at (y, x) = ({y:.4f}, {x:.4f}) on a {feature.shape} map: got "
                f"{got:.6f}, want {want:.6f} ({why})"
            )
    feature = rng.standard_normal((5, 6))
    for y, x in rng.uniform((-1.5, -1.5), (5.5, 6.5), (300, 2)):
        got, want = float(bilinear(feature, y, x)), _minimask_bilinear(feature, y, x)
        if abs(got - want) > 1e-12:
            raise Wrong(
                f"bilinear at (y, x) = ({y:.4f}, {x:.4f}) on a random 5x6 map: got {got:.6f}, "
                f"minimask's bilinear_neighbours gives {want:.6f}"
            )


@exercise("04.2", "one RoIAlign bin by hand", "roi_align_bin")
def check_roi_align_bin(roi_align_bin):
    """On the ramp of the lesson (8x8, box (1.3, 0.8, 5.6, 4.9), 2x2 bins, 2x2 samples):
    every bin equals 10 cy + cx at its centre (cx, cy), worked out by hand from the box, for
    both settings of aligned. Then 7 boxes (inside, over the border, under one cell, empty)
    on a random 6x7 map, every bin, sampling_ratio 1-3, both settings of aligned, against
    minimask.ops.roi_align. All 1e-12, float64."""
    ramp, box = _ramp(8, 8), (1.3, 0.8, 5.6, 4.9)
    for aligned, ph, pw in itertools.product((False, True), range(2), range(2)):
        offset = 0.5 if aligned else 0.0
        bin_w, bin_h = (box[2] - box[0]) / 2, (box[3] - box[1]) / 2
        cx = box[0] - offset + (pw + 0.5) * bin_w
        cy = box[1] - offset + (ph + 0.5) * bin_h
        got = float(roi_align_bin(ramp.copy(), box, (2, 2), ph, pw, 2, aligned))
        if abs(got - (10 * cy + cx)) > 1e-12:
            raise Wrong(
                f"ramp 10 i + j, box {box}, bin ({ph}, {pw}), aligned={aligned}: got {got:.6f}, "
                f"want 10 * {cy:.4f} + {cx:.4f} = {10 * cy + cx:.6f} (the ramp at the bin's "
                f"centre, which is the mean of its samples)"
            )
    feature = np.random.default_rng(41).standard_normal((6, 7))
    boxes = [
        (0.6, 1.1, 4.7, 5.2),  # inside
        (-2.0, 3.5, 3.2, 8.4),  # over the border
        (5.0, -1.5, 9.5, 2.0),  # over the border
        (2.2, 2.4, 2.5, 2.6),  # under one cell: aligned=False makes it 1 x 1
        (3.0, 1.0, 3.0, 4.0),  # no width
        (0.0, 0.0, 7.0, 6.0),  # the whole map
        (1.25, 0.75, 6.75, 5.25),
    ]
    for box, output_size, sampling_ratio, aligned in itertools.product(
        boxes, ((2, 3), (3, 2)), (1, 2, 3), (False, True)
    ):
        want = _minimask_roi_align(feature, box, output_size, sampling_ratio, aligned)
        for ph, pw in np.ndindex(output_size):
            got = float(
                roi_align_bin(feature.copy(), box, output_size, ph, pw, sampling_ratio, aligned)
            )
            if abs(got - want[ph, pw]) > 1e-12:
                raise Wrong(
                    f"random map {feature.shape}, box {box}, output {output_size}, "
                    f"sampling_ratio {sampling_ratio}, aligned={aligned}, bin ({ph}, {pw}): "
                    f"got {got:.6f}, minimask's roi_align gives {want[ph, pw]:.6f}"
                )


@exercise("04.3", "RoIPool's quantisation", "roi_pool_by_hand")
def check_roi_pool(roi_pool_by_hand):
    """On the lesson's ramp and box: [[33, 36], [53, 56]], the maxima worked out by hand
    (box rounded to (1, 1, 6, 5), bins of 2.5 rows and 3 columns). Then 8 boxes on a random
    7x8 map, among them coordinates that scale to exact halves (2.5 rounds to 3, not to
    np.round's 2), boxes over the border and one outside the map (empty bins: 0), with
    spatial_scale 1, 1/2 and 1/4, against minimask.ops.roi_pool: exact (a max copies one
    input)."""
    ramp = _ramp(8, 8)
    got = np.asarray(roi_pool_by_hand(ramp.copy(), (1.3, 0.8, 5.6, 4.9), (2, 2), 1.0))
    want = np.array([[33.0, 36.0], [53.0, 56.0]])
    if got.shape != (2, 2) or not np.array_equal(got, want):
        raise Wrong(
            f"ramp 10 i + j, box (1.3, 0.8, 5.6, 4.9), 2x2 bins: got {got.tolist()}, want "
            f"{want.tolist()} (the box rounds to columns 1..6 and rows 1..5, both inclusive)"
        )
    feature = np.random.default_rng(42).standard_normal((7, 8))
    cases = [  # box, output size, spatial scale
        ((1.0, 3.0, 9.0, 5.0), (2, 2), 0.5),  # x1, x2, y1, y2 scale to 0.5, 4.5, 1.5, 2.5
        ((5.0, 1.0, 13.0, 11.0), (3, 2), 0.5),  # 2.5, 6.5, 0.5, 5.5
        ((0.6, 1.1, 4.7, 5.2), (3, 3), 1.0),
        ((-2.5, 3.5, 3.2, 8.4), (2, 3), 1.0),  # over the border, -2.5 rounds to -3
        ((10.0, 6.0, 30.0, 26.0), (3, 3), 0.25),  # 2.5, 1.5, 7.5, 6.5
        ((2.2, 2.4, 2.5, 2.6), (2, 2), 1.0),  # under one cell: every bin is that cell
        ((0.0, 0.0, 7.0, 6.0), (4, 5), 1.0),
        ((9.0, 1.0, 12.0, 4.0), (2, 2), 1.0),  # right of the map: every bin empty
    ]
    for box, output_size, scale in cases:
        want = roi_pool(
            minimask.tensor(feature[None, None]),
            minimask.tensor(np.array([[0.0, *box]])),
            output_size,
            spatial_scale=scale,
        ).numpy()[0, 0]
        got = np.asarray(roi_pool_by_hand(feature.copy(), box, output_size, scale))
        where = f"random map {feature.shape}, box {box}, output {output_size}, scale {scale}"
        if got.shape != want.shape:
            raise Wrong(f"{where}: got shape {got.shape}, want {want.shape}")
        if not np.array_equal(got, want):
            ph, pw = np.argwhere(got != want)[0]
            raise Wrong(
                f"{where}: bin ({ph}, {pw}) = {got[ph, pw]:.6f}, minimask's roi_pool gives "
                f"{want[ph, pw]:.6f} (round halves away from zero; x2 and y2 are inclusive)"
            )


@exercise("04.4", "adaptive sampling: samples per bin", "adaptive_grid")
def check_adaptive_grid(adaptive_grid):
    """Hand counts: 14 / 7 = 2 exactly gives 2 (not 3), 21 / 7 gives 3, a box under one cell
    gives 1 x 1, an empty box 0 x 0 with aligned=True and 1 x 1 without, and 40 x 20 cells
    at spatial_scale 1/16 in 7x7 bins give ceil(20/7) x ceil(40/7) = 3 x 6. Then 200 random
    boxes, output sizes, scales and aligned against minimask.geometry.roi_align.roi_geometry
    (the kernels' rule) and the grid of minimask.viz.roi_align_sample_points. Exact
    integers."""
    hand = [  # box, output size, spatial scale, aligned, (grid_h, grid_w)
        ((0.0, 0.0, 21.0, 14.0), (7, 7), 1.0, True, (2, 3)),
        ((2.0, 2.0, 2.3, 2.2), (7, 7), 1.0, True, (1, 1)),
        ((2.0, 2.0, 2.3, 2.2), (7, 7), 1.0, False, (1, 1)),
        ((3.0, 3.0, 3.0, 3.0), (2, 2), 1.0, True, (0, 0)),
        ((3.0, 3.0, 3.0, 3.0), (2, 2), 1.0, False, (1, 1)),
        ((0.0, 0.0, 640.0, 320.0), (7, 7), 1 / 16, True, (3, 6)),
    ]
    rng = np.random.default_rng(43)
    for _ in range(200):
        x1, y1 = rng.uniform(-20, 200, 2)
        w, h = rng.uniform(0, 300, 2)
        output_size = tuple(int(v) for v in rng.integers(1, 15, 2))
        scale, aligned = float(rng.choice([1.0, 0.25, 1 / 16])), bool(rng.integers(2))
        box = (x1, y1, x1 + w, y1 + h)
        grid = roi_geometry(np.array([0.0, *box]), scale, *output_size, -1, aligned)[5:]
        points = roi_align_sample_points(box, output_size, scale, -1, aligned)
        assert grid == points.shape[2:4]
        hand.append((box, output_size, scale, aligned, grid))
    for box, output_size, scale, aligned, want in hand:
        got = adaptive_grid(box, output_size, scale, aligned)
        if tuple(got) != tuple(want):
            raise Wrong(
                f"box {tuple(round(v, 4) for v in box)}, output {output_size}, spatial_scale "
                f"{scale}, aligned={aligned}: got {tuple(got)} samples per bin, want {want} "
                f"(ceil(roi_h / PH), ceil(roi_w / PW), the box's size in feature cells)"
            )
