"""MultiScaleRoIAlign (minimask.models.poolers), mask targets and mask pasting
(minimask.models.masks) against direct roi_align calls, hand computations and
detectron2's paste rule. Each test names its reference and tolerance."""

import numpy as np
import pytest
import torch

import minimask
from minimask.models.masks import mask_targets, paste_masks_in_image
from minimask.models.poolers import MultiScaleRoIAlign
from minimask.ops.roi_align import roi_align

# canonical_size 32 scales the FPN rule to a 64 x 64 image:
# k = clamp(floor(4 + log2(sqrt(w h) / 32)), 2, 5): side 8..15 -> 2, 16..31 -> 3,
# 32..63 -> 4, >= 64 -> 5 (and below 8 clamps to 2).
LEVEL_BOXES = {
    2: [1.0, 2.0, 11.0, 12.0],  # side 10
    3: [3.0, 5.0, 23.0, 25.0],  # side 20
    4: [10.0, 8.0, 50.0, 48.0],  # side 40
    5: [0.0, 0.0, 64.0, 64.0],  # side 64
}


def pooler():
    return MultiScaleRoIAlign(7, sampling_ratio=2, canonical_size=32)


def fpn_features(batch=2, channels=3, requires_grad=False):
    """Random levels P2..P5 of a 64 x 64 image: sizes 16, 8, 4, 2 (stride 2**k)."""
    rng = np.random.default_rng(0)
    return [
        minimask.tensor(
            rng.standard_normal((batch, channels, 64 >> k, 64 >> k)), requires_grad=requires_grad
        )
        for k in range(2, 6)
    ]


def direct(features, image, box, k):
    """roi_align of one box of one image on level k, as the pooler must call it."""
    rois = minimask.tensor(np.array([[image, *box]], dtype=np.float64))
    return roi_align(features[k - 2], rois, 7, 1.0 / 2**k, 2, aligned=True).numpy()[0]


def boxes_tensor(rows):
    return minimask.tensor(np.asarray(rows, dtype=np.float64).reshape(-1, 4))


# ---------------------------------------------------------------- MultiScaleRoIAlign


def test_pooler_boxes_go_to_their_level():
    """Reference: roi_align(features[k], box, 7, 1/2**k, 2, aligned=True) on the level of
    the FPN rule (hand-computed in LEVEL_BOXES); exact equality, and the other levels'
    results differ (so the comparison can tell the levels apart)."""
    features = fpn_features(batch=1)
    boxes = [boxes_tensor([LEVEL_BOXES[k] for k in (2, 3, 4, 5)])]
    out = pooler()(features, boxes, (64, 64)).numpy()
    assert out.shape == (4, 3, 7, 7)
    for row, k in enumerate((2, 3, 4, 5)):
        np.testing.assert_array_equal(out[row], direct(features, 0, LEVEL_BOXES[k], k))
        for other in {2, 3, 4, 5} - {k}:
            assert not np.allclose(out[row], direct(features, 0, LEVEL_BOXES[k], other))


def test_pooler_output_order_follows_input_across_images():
    """Reference: torchvision order, torch.cat(boxes): image 0's boxes then image 1's, each
    in its given order, whatever their levels; row i equals the direct roi_align of box i
    on its image and level, exactly. Also a tiny box (clamped to P2) and an image with no
    boxes in the middle."""
    features = fpn_features(batch=3)
    image0 = [(5, LEVEL_BOXES[5]), (2, LEVEL_BOXES[2]), (3, LEVEL_BOXES[3])]
    image2 = [(4, LEVEL_BOXES[4]), (2, [30.0, 30.0, 32.0, 33.0]), (3, LEVEL_BOXES[3])]
    boxes = [
        boxes_tensor([b for _, b in image0]),
        boxes_tensor([]),
        boxes_tensor([b for _, b in image2]),
    ]
    out = pooler()(features, boxes, (64, 64)).numpy()
    expected = [direct(features, 0, b, k) for k, b in image0]
    expected += [direct(features, 2, b, k) for k, b in image2]
    np.testing.assert_array_equal(out, np.stack(expected))


def test_pooler_gradient_reaches_used_levels_only():
    """Reference: the gradient of sum(pooler output) w.r.t. level k equals that of the sum
    of the direct roi_align calls on level k (float64, rtol 1e-12: the two sides add the
    same terms in a different order); levels with no box get none (grad None or all
    zeros)."""
    features = fpn_features(batch=1, requires_grad=True)
    boxes = [boxes_tensor([LEVEL_BOXES[2], LEVEL_BOXES[4], LEVEL_BOXES[2]])]
    pooler()(features, boxes, (64, 64)).sum().backward()
    for k, feature in zip(range(2, 6), features):
        if k in (3, 5):
            assert feature.grad is None or not np.any(feature.grad.numpy())
    reference = fpn_features(batch=1, requires_grad=True)
    total = None
    for k, box in ((2, LEVEL_BOXES[2]), (4, LEVEL_BOXES[4]), (2, LEVEL_BOXES[2])):
        rois = minimask.tensor(np.array([[0.0, *box]]))
        part = roi_align(reference[k - 2], rois, 7, 1.0 / 2**k, 2, aligned=True).sum()
        total = part if total is None else total + part
    total.backward()
    for k in (2, 4):
        grad = features[k - 2].grad.numpy()
        assert np.any(grad)
        np.testing.assert_allclose(grad, reference[k - 2].grad.numpy(), rtol=1e-12, atol=1e-12)


def test_pooler_no_boxes():
    """Reference: torchvision returns (0, C, PH, PW) for no boxes; shape check."""
    out = pooler()(fpn_features(), [boxes_tensor([]), boxes_tensor([])], (64, 64))
    assert out.shape == (0, 3, 7, 7)


# ---------------------------------------------------------------- mask_targets


def rectangle_masks():
    """gt 0: rows 6..33, columns 4..31 (28 x 28 pixels = box (4, 6, 32, 34));
    gt 1: the left half of that, columns 4..17."""
    masks = np.zeros((2, 40, 40), dtype=np.uint8)
    masks[0, 6:34, 4:32] = 1
    masks[1, 6:34, 4:18] = 1
    return minimask.tensor(masks)


def test_mask_targets_rectangle_is_all_ones():
    """Hand computation, exact: proposal = the filled rectangle (4, 6, 32, 34), M = 28. The
    box is 28 pixels wide, so adaptive sampling takes 1 sample per bin, at the bin centre
    x1 + j + 0.5, which aligned=True shifts by -0.5 onto pixel x1 + j exactly: every target
    is exactly 1. Same for a 56-pixel box of the 2x upscaled mask (2 samples per bin, both
    on pixel centres)."""
    out = mask_targets(rectangle_masks(), boxes_tensor([[4, 6, 32, 34]]), minimask.tensor([0]))
    assert out.shape == (1, 28, 28) and out.dtype == np.float32
    np.testing.assert_array_equal(out.numpy(), np.ones((1, 28, 28)))
    big = np.zeros((1, 80, 80), dtype=np.uint8)
    big[0, 12:68, 8:64] = 1
    out = mask_targets(minimask.tensor(big), boxes_tensor([[8, 12, 64, 68]]), minimask.tensor([0]))
    np.testing.assert_array_equal(out.numpy(), np.ones((1, 28, 28)))


def test_mask_targets_fractional_edges():
    """Hand computation, tolerance 1e-6: a 20 x 20 filled rectangle (4..23) and proposal
    (4, 4, 24, 24), M = 28: bin j's single sample is at x = 4 + (j + 0.5) * 20/28, read at
    feature coordinate x - 0.5. Bin 0: coordinate 4 - 1/7, bilinear 6/7 on pixel 4 (inside)
    and 1/7 on pixel 3 (outside) -> 6/7; bin 27 symmetric -> 6/7; bins 1..26 read between
    two inside pixels -> 1. So the target is the outer product of [6/7, 1, ..., 1, 6/7]
    with itself: fractional at the edges (targets are not thresholded), all in [0, 1]."""
    masks = np.zeros((1, 30, 30), dtype=np.uint8)
    masks[0, 4:24, 4:24] = 1
    out = mask_targets(minimask.tensor(masks), boxes_tensor([[4, 4, 24, 24]]), minimask.tensor([0]))
    edge = np.ones(28)
    edge[[0, 27]] = 6 / 7
    np.testing.assert_allclose(out.numpy()[0], np.outer(edge, edge), atol=1e-6)


def test_mask_targets_left_half_and_matching():
    """Hand computation, exact: the proposal (4, 6, 32, 34) matched to gt 1 (left half of the
    box filled) gives ones in columns 0..13 and zeros in 14..27 (same sampling argument as
    the all-ones test); matched to gt 0 it gives all ones: the index picks the mask."""
    proposals = boxes_tensor([[4, 6, 32, 34], [4, 6, 32, 34]])
    out = mask_targets(rectangle_masks(), proposals, minimask.tensor([1, 0])).numpy()
    half = np.zeros((28, 28))
    half[:, :14] = 1
    np.testing.assert_array_equal(out[0], half)
    np.testing.assert_array_equal(out[1], np.ones((28, 28)))


def test_mask_targets_empty_lists_and_range():
    """Reference: torchvision shapes. No proposals -> (0, M, M); the per-image list form
    concatenates images in order (equal to the single-image calls, exact); random masks and
    proposals give targets within [0, 1]."""
    empty = mask_targets(rectangle_masks(), boxes_tensor([]), minimask.tensor(np.zeros(0, int)))
    assert empty.shape == (0, 28, 28)
    rng = np.random.default_rng(1)
    masks = minimask.tensor((rng.random((3, 30, 40)) > 0.5).astype(np.uint8))
    xy = rng.uniform(-5, 45, size=(20, 2, 2))
    proposals = boxes_tensor(np.concatenate([xy.min(1), xy.max(1)], axis=1))
    matched = minimask.tensor(rng.integers(0, 3, size=20))
    out = mask_targets(masks, proposals, matched, output_size=14).numpy()
    assert out.shape == (20, 14, 14)
    assert out.min() >= 0.0 and out.max() <= 1.0
    both = mask_targets(
        [masks, rectangle_masks()],
        [proposals, boxes_tensor([[4, 6, 32, 34]])],
        [matched, minimask.tensor([1])],
        output_size=14,
    ).numpy()
    second = mask_targets(
        rectangle_masks(), boxes_tensor([[4, 6, 32, 34]]), minimask.tensor([1]), output_size=14
    )
    np.testing.assert_array_equal(both, np.concatenate([out, second.numpy()]))


# ---------------------------------------------------------------- paste_masks_in_image


def test_paste_ones_covers_exactly_the_box_pixels():
    """Hand computation, exact: box (10, 20, 30, 40), M = 28, 64 x 64 image. Column x reads
    mask coordinate u = (x + 0.5 - 10) / 20 * 28 - 0.5: x = 9 -> -1.2 and x = 30 -> 28.2
    (no mask cell within 1: value 0), x = 10 -> 0.2 and x = 29 -> 26.8 (between two mask
    cells of value 1: value 1); rows likewise. So both the probabilities and the 0.5
    threshold give ones on rows 20..39, columns 10..29 and zeros elsewhere."""
    expected = np.zeros((1, 1, 64, 64))
    expected[0, 0, 20:40, 10:30] = 1
    box = boxes_tensor([[10, 20, 30, 40]])
    out = paste_masks_in_image(minimask.ones(1, 28, 28), box, (64, 64))
    assert out.shape == (1, 1, 64, 64) and out.dtype == np.uint8
    np.testing.assert_array_equal(out.numpy(), expected)
    floats = paste_masks_in_image(minimask.ones(1, 28, 28), box, (64, 64), threshold=None)
    np.testing.assert_array_equal(floats.numpy(), expected)


def test_paste_clips_to_the_image():
    """Hand computation, exact: same rule with boxes partly outside a 64 x 64 image:
    (50, 40, 80, 70) keeps rows 40..63, columns 50..63; (-10, -5, 10, 15) keeps rows 0..14,
    columns 0..9 (pixels whose centre is in the box, inside the image)."""
    boxes = boxes_tensor([[50, 40, 80, 70], [-10, -5, 10, 15]])
    out = paste_masks_in_image(minimask.ones(2, 28, 28), boxes, (64, 64)).numpy()
    expected = np.zeros((2, 1, 64, 64), dtype=np.uint8)
    expected[0, 0, 40:, 50:] = 1
    expected[1, 0, :15, :10] = 1
    np.testing.assert_array_equal(out, expected)


def test_paste_bilinear_values_by_hand():
    """Hand computation, tolerance 1e-7: M = 2 mask [[0, 1], [0, 1]] into box (0, 0, 4, 4)
    of a 4 x 4 image: u = x/2 - 0.25 for x = 0..3 is -0.25, 0.25, 0.75, 1.25, so the
    column values are 0.75*0, 0.75*0 + 0.25*1, 0.25*0 + 0.75*1, 0.75*1 = 0, .25, .75, .75
    (the missing weights fall on the zero padding), and the row factors (a column of ones)
    are .75, 1, 1, .75: the image is their outer product."""
    mask = minimask.tensor(np.array([[[0.0, 1.0], [0.0, 1.0]]]))
    out = paste_masks_in_image(mask, boxes_tensor([[0, 0, 4, 4]]), (4, 4), threshold=None)
    expected = np.outer([0.75, 1, 1, 0.75], [0, 0.25, 0.75, 0.75])
    np.testing.assert_allclose(out.numpy()[0, 0], expected, atol=1e-7)


def test_paste_matches_detectron2_grid_sample():
    """Reference: detectron2's _do_paste_mask, F.grid_sample(masks, grid,
    align_corners=False) with the grid (pixel centre - box corner) / box size * 2 - 1 over
    the whole image (torch float64); random probabilities and real-valued boxes, some
    partly outside; threshold None gives float32 in [0, 1]; tolerance 1e-6."""
    rng = np.random.default_rng(2)
    masks = rng.random((6, 28, 28))
    xy = rng.uniform(-10, 60, size=(6, 2, 2))
    boxes = np.concatenate([xy.min(1), xy.max(1) + 1], axis=1)
    height, width = 48, 56
    out = paste_masks_in_image(minimask.tensor(masks), boxes_tensor(boxes), (height, width), None)
    assert out.dtype == np.float32
    out = out.numpy()
    assert out.min() >= 0.0 and out.max() <= 1.0
    b = torch.from_numpy(boxes)
    ys = (torch.arange(height, dtype=torch.float64) + 0.5 - b[:, 1:2]) / (b[:, 3:4] - b[:, 1:2])
    xs = (torch.arange(width, dtype=torch.float64) + 0.5 - b[:, 0:1]) / (b[:, 2:3] - b[:, 0:1])
    gy = (ys * 2 - 1)[:, :, None].expand(-1, height, width)
    gx = (xs * 2 - 1)[:, None, :].expand(-1, height, width)
    grid = torch.stack([gx, gy], dim=3)
    reference = torch.nn.functional.grid_sample(
        torch.from_numpy(masks)[:, None], grid, align_corners=False
    )
    np.testing.assert_allclose(out, reference.numpy(), atol=1e-6)


@pytest.mark.parametrize("threshold", [0.5, None])
def test_paste_no_detections(threshold):
    """Reference: torchvision shapes, D = 0 -> (0, 1, H, W) (uint8 with a threshold, float32
    without)."""
    out = paste_masks_in_image(minimask.zeros(0, 28, 28), boxes_tensor([]), (30, 40), threshold)
    assert out.shape == (0, 1, 30, 40)
    assert out.dtype == (np.uint8 if threshold is not None else np.float32)
