"""minimask.ops.roi_pool against a plain NumPy loop written from torchvision's definition,
finite differences away from ties, the tie rule, and roi_warp == roi_align on the
pre-quantised boxes.

Every test names its reference and tolerance in its docstring.
"""

import math

import numpy as np
import pytest

import minimask
from minimask.ops import roi_align, roi_pool, roi_warp


def as_rois(batch_index, boxes):
    rows = np.concatenate([np.asarray(batch_index, float).reshape(-1, 1), boxes], axis=1)
    return minimask.tensor(rows.reshape(-1, 5), dtype=minimask.float64)


def c_round(value):
    """C's round(): halves away from zero."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def roi_pool_reference(x, rois, output_size, spatial_scale):
    """torchvision's roi_pool_forward_kernel_impl, line by line, in plain Python/NumPy:
    returns (out, argmax)."""
    pooled_h, pooled_w = output_size
    channels, height, width = x.shape[1:]
    out = np.zeros((len(rois), channels, pooled_h, pooled_w), dtype=x.dtype)
    argmax = np.full(out.shape, -1, dtype=np.int64)
    for k, (n, x1, y1, x2, y2) in enumerate(rois):
        start_w, start_h = c_round(x1 * spatial_scale), c_round(y1 * spatial_scale)
        end_w, end_h = c_round(x2 * spatial_scale), c_round(y2 * spatial_scale)
        roi_w = max(end_w - start_w + 1, 1)
        roi_h = max(end_h - start_h + 1, 1)
        bin_h, bin_w = roi_h / pooled_h, roi_w / pooled_w
        for ph in range(pooled_h):
            for pw in range(pooled_w):
                h0 = min(max(math.floor(ph * bin_h) + start_h, 0), height)
                h1 = min(max(math.ceil((ph + 1) * bin_h) + start_h, 0), height)
                w0 = min(max(math.floor(pw * bin_w) + start_w, 0), width)
                w1 = min(max(math.ceil((pw + 1) * bin_w) + start_w, 0), width)
                if h1 <= h0 or w1 <= w0:
                    continue  # empty bin: 0, argmax -1
                for c in range(channels):
                    window = x[int(n), c, h0:h1, w0:w1]
                    i, j = np.unravel_index(np.argmax(window), window.shape)  # first max
                    out[k, c, ph, pw] = window[i, j]
                    argmax[k, c, ph, pw] = (h0 + i) * width + (w0 + j)
    return out, argmax


def random_boxes(rng, count, height, width, scale):
    low = rng.uniform([-3, -3], [width + 1, height + 1], (count, 2))
    size = rng.uniform(0, [width, height], (count, 2))
    size[rng.random(count) < 0.2] = 0.0
    return np.concatenate([low, low + size], axis=1) / scale


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("spatial_scale", [1.0, 0.5, 0.3])
def test_forward_and_backward_match_numpy_loop(dtype, spatial_scale):
    """Reference: roi_pool_reference (torchvision's definition as a NumPy loop); the
    gradient reference sends each output gradient to its argmax with np.add.at. Distinct
    random values (no ties). Exact equality (a max is a copy; the gradient sums are
    compared to 1e-12 / 1e-6)."""
    rng = np.random.default_rng(int(spatial_scale * 10))
    x = rng.permutation(2 * 3 * 9 * 11).reshape(2, 3, 9, 11).astype(dtype) / 7
    rois = as_rois(rng.integers(0, 2, 40), random_boxes(rng, 40, 9, 11, spatial_scale))
    expected, argmax = roi_pool_reference(x, rois.numpy(), (3, 2), spatial_scale)
    xt = minimask.tensor(x, requires_grad=True)
    out = roi_pool(xt, rois, (3, 2), spatial_scale)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out.numpy(), expected)
    grad = rng.standard_normal(out.shape).astype(dtype)
    out.backward(minimask.tensor(grad))
    expected_grad = np.zeros((2, 3, 9 * 11), dtype=np.float64)
    batch = rois.numpy()[:, 0].astype(int)
    for k, c, ph, pw in np.ndindex(argmax.shape):
        if argmax[k, c, ph, pw] >= 0:
            expected_grad[batch[k], c, argmax[k, c, ph, pw]] += grad[k, c, ph, pw]
    tolerance = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(
        xt.grad.numpy(), expected_grad.reshape(x.shape), rtol=0, atol=tolerance
    )


def test_gradcheck_away_from_ties():
    """Reference: central finite differences (minimask.gradcheck, float64, atol 1e-5, rtol
    1e-3) on distinct values 0.1 apart, so a step of 1e-6 never changes an argmax."""
    rng = np.random.default_rng(2)
    x = minimask.tensor(rng.permutation(2 * 6 * 7).reshape(1, 2, 6, 7) * 0.1, requires_grad=True)
    rois = as_rois([0, 0, 0], np.array([[0.0, 0.0, 4.0, 3.0], [2.2, 1.4, 6.6, 5.5], [-1, 3, 2, 9]]))
    assert minimask.gradcheck(lambda t: roi_pool(t, rois, (2, 3), 1.0), (x,))


def test_tie_rule_first_maximum_in_row_major_order():
    """Reference: torchvision's tie rule (strict >, bins scanned row by row): on a constant
    map the first element of every bin is the max and alone gets the gradient; an empty bin
    (box outside the map) gives 0 and sends nothing."""
    x = minimask.ones((1, 1, 4, 4), dtype=minimask.float64, requires_grad=True)
    rois = as_rois([0, 0], np.array([[0.0, 0.0, 3.0, 3.0], [10.0, 10.0, 12.0, 12.0]]))
    out = roi_pool(x, rois, 2, 1.0)
    np.testing.assert_array_equal(out.numpy()[0, 0], np.ones((2, 2)))
    np.testing.assert_array_equal(out.numpy()[1, 0], np.zeros((2, 2)))
    out.sum().backward()
    expected = np.zeros((4, 4))
    expected[[0, 0, 2, 2], [0, 2, 0, 2]] = 1.0  # top-left cell of each 2x2 bin
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], expected)


def test_rounding_is_half_away_from_zero():
    """Reference: C's round() as in torchvision: x1 = 2.5 rounds to 3 (NumPy's round-half-
    even would give 2), so the 1x1 bin of box (2.5, 0)-(2.5, 0) is the single cell (0, 3)."""
    x = minimask.tensor(np.arange(8.0).reshape(1, 1, 1, 8))
    out = roi_pool(x, as_rois([0], np.array([[2.5, 0.0, 2.5, 0.0]])), 1, 1.0)
    assert out.item() == 3.0


@pytest.mark.parametrize("sampling_ratio", [-1, 2])
@pytest.mark.parametrize("spatial_scale", [1.0, 0.25])
def test_roi_warp_is_roi_align_on_quantised_boxes(sampling_ratio, spatial_scale):
    """Reference: roi_align(aligned=False, spatial_scale=1) on the boxes scaled and rounded
    by hand (C's round); exact equality, forward and input gradient."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 8, 8))
    boxes = random_boxes(rng, 12, 8, 8, spatial_scale)
    batch_index = rng.integers(0, 2, 12)
    quantised = np.vectorize(c_round)(boxes * spatial_scale).astype(np.float64)
    grad = rng.standard_normal((12, 3, 2, 3))
    results = []
    for fn, rois, scale in (
        (roi_warp, as_rois(batch_index, boxes), spatial_scale),
        (roi_align, as_rois(batch_index, quantised), 1.0),
    ):
        xt = minimask.tensor(x, requires_grad=True)
        kwargs = {"aligned": False} if fn is roi_align else {}
        out = fn(xt, rois, (2, 3), scale, sampling_ratio, **kwargs)
        out.backward(minimask.tensor(grad))
        results.append((out.numpy(), xt.grad.numpy()))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_roi_warp_differs_from_roi_align():
    """RoIWarp rounds the box, RoIAlign does not: on the map f[i, j] = j, a box from x = 0.4
    to 2.4 (aligned=False, one bin, 2 samples per axis) averages x = 0.9 and 1.9 for
    RoIAlign (1.4) but x = 0.5 and 1.5 for RoIWarp (box 0 to 2, mean 1.0). Hand-computed."""
    x = minimask.tensor(np.tile(np.arange(6.0), (1, 1, 4, 1)))
    rois = as_rois([0], np.array([[0.4, 0.0, 2.4, 2.0]]))
    assert roi_align(x, rois, 1, 1.0, 2, aligned=False).item() == pytest.approx(1.4)
    assert roi_warp(x, rois, 1, 1.0, 2).item() == pytest.approx(1.0)


def test_empty_boxes():
    """Reference: torchvision's shapes: no boxes gives (0, C, PH, PW) and a zero gradient."""
    x = minimask.randn(1, 2, 5, 5, requires_grad=True)
    out = roi_pool(x, minimask.zeros((0, 5)), 3)
    assert out.shape == (0, 2, 3, 3)
    out.sum().backward()
    assert not x.grad.numpy().any()
    assert roi_warp(x, [minimask.zeros((0, 4))], 3).shape == (0, 2, 3, 3)


def test_nan_propagates():
    """A NaN in a bin is that bin's maximum (this project's max_pool2d rule; torchvision's
    strict > would skip it and hide the NaN). Reference: by hand."""
    values = np.arange(16.0).reshape(1, 1, 4, 4)
    values[0, 0, 1, 1] = np.nan
    out = roi_pool(minimask.tensor(values), as_rois([0], np.array([[0.0, 0.0, 3.0, 3.0]])), 2)
    assert np.isnan(out.numpy()[0, 0, 0, 0])
    np.testing.assert_array_equal(out.numpy()[0, 0].ravel()[1:], [7.0, 13.0, 15.0])
