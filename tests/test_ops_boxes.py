"""minimask.ops box utilities against hand-computed cases (torchvision.ops semantics).
Tolerance: exact, or 1e-6 relative for float32 divisions."""

import numpy as np
import pytest

import minimask
from minimask.ops import box_area, box_iou, clip_boxes_to_image, remove_small_boxes


def test_box_area():
    """By hand: (x2 - x1) * (y2 - y1), no +1; a degenerate box has area 0."""
    boxes = minimask.tensor([[0, 0, 10, 5], [1.5, 2.0, 4.0, 2.0], [-2, -3, 2, 3]])
    np.testing.assert_array_equal(box_area(boxes).numpy(), [50.0, 0.0, 24.0])


def test_box_iou_pairwise():
    """By hand: (N, M) matrix; IoU(A, B) = 81 / 119 for A = (0,0,10,10), B = (1,1,11,11);
    disjoint boxes 0; touching edges 0; a box inside another: area ratio."""
    a = minimask.tensor([[0, 0, 10, 10], [20, 20, 30, 30.0]])
    b = minimask.tensor([[1, 1, 11, 11], [10, 0, 20, 10], [2, 2, 7, 6.0], [0, 0, 10, 10.0]])
    iou = box_iou(a, b)
    assert iou.shape == (2, 4)
    expected = np.array([[81 / 119, 0.0, 20 / 100, 1.0], [0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(iou.numpy(), expected, rtol=1e-6, atol=0)


def test_box_iou_is_differentiable():
    """Reference: finite differences (minimask.gradcheck, float64) through the composite of
    tensor operations, away from the kinks of min/max/clamp."""
    a = minimask.tensor([[0.0, 0.0, 10.0, 10.0], [2.0, 3.0, 6.0, 9.0]], requires_grad=True)
    b = minimask.tensor([[1.0, 1.5, 11.0, 11.5]], dtype=minimask.float64, requires_grad=True)
    a = a.double().detach().requires_grad_()
    assert minimask.gradcheck(box_iou, (a, b))


def test_clip_boxes_to_image():
    """By hand: x clamped to [0, width], y to [0, height]; size is (height, width)."""
    boxes = minimask.tensor([[-5, -5, 50, 50], [10, 20, 30, 40], [70, -1, 80, 3.0]])
    clipped = clip_boxes_to_image(boxes, (30, 60))
    expected = [[0, 0, 50, 30], [10, 20, 30, 30], [60, 0, 60, 3]]
    np.testing.assert_array_equal(clipped.numpy(), expected)
    assert clipped.dtype == boxes.dtype
    batched = clip_boxes_to_image(minimask.tensor(np.array(expected * 2, np.float32)[None]), (5, 5))
    assert batched.shape == (1, 6, 4)


def test_remove_small_boxes():
    """By hand: keep indices with width >= min_size and height >= min_size (inclusive)."""
    boxes = minimask.tensor([[0, 0, 2, 2], [0, 0, 1, 5], [0, 0, 5, 1.9], [3, 3, 6, 9.0]])
    keep = remove_small_boxes(boxes, 2.0)
    assert keep.dtype == np.int64
    np.testing.assert_array_equal(keep.numpy(), [0, 3])
    assert remove_small_boxes(minimask.zeros((0, 4)), 1.0).shape == (0,)


@pytest.mark.parametrize(
    "call",
    [
        lambda: box_area(minimask.zeros((3, 5))),
        lambda: box_iou(minimask.zeros((3, 4)), minimask.zeros((2, 3, 4))),
        lambda: clip_boxes_to_image(minimask.zeros(4, 3), (10, 10)),
        lambda: remove_small_boxes(minimask.zeros(4), 1.0),
    ],
)
def test_bad_box_shapes(call):
    """Boxes must have a last dimension of 4 (and be (n, 4) where pairs or indices are made)."""
    with pytest.raises(ValueError, match=r"must have shape \((n|\.\.\.), 4\)"):
        call()
