"""minimask.ops box utilities against hand-computed cases (torchvision.ops semantics).
Tolerance: exact, or 1e-6 relative for float32 divisions."""

import numpy as np
import pytest
import torch

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


# ---------------------------------------------------------------- dtype rules
def _torchvision_upcast(t):
    """torchvision.ops.boxes._upcast, written in torch (torchvision's compiled ops do not
    load here, its Python functions are this short)."""
    if t.is_floating_point():
        return t if t.dtype in (torch.float32, torch.float64) else t.float()
    return t if t.dtype in (torch.int32, torch.int64) else t.int()


def _torchvision_box_area(boxes):
    boxes = _torchvision_upcast(boxes)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _torchvision_box_iou(boxes1, boxes2):
    area1, area2 = _torchvision_box_area(boxes1), _torchvision_box_area(boxes2)
    lt = torch.max(boxes1[:, None, :2], boxes2[:, :2])
    rb = torch.min(boxes1[:, None, 2:], boxes2[:, 2:])
    wh = _torchvision_upcast(rb - lt).clamp(min=0)
    inter = wh[:, :, 0] * wh[:, :, 1]
    return inter / (area1[:, None] + area2 - inter)


# overlapping boxes (so torchvision's corner differences stay positive in every dtype)
# whose areas overflow uint8, int16 (300 x 300 = 90000) and float16 (> 65504)
WIDE_BOXES = np.array([[0, 0, 250, 250], [10, 20, 240, 255], [100, 50, 200, 230]])


@pytest.mark.parametrize(
    "dtype, torch_dtype, area_dtype",
    [
        (np.uint8, torch.uint8, np.int32),
        (np.int16, torch.int16, np.int32),
        (np.int32, torch.int32, np.int32),
        (np.int64, torch.int64, np.int64),
        (np.float16, torch.float16, np.float32),
        (np.float32, torch.float32, np.float32),
    ],
)
def test_box_area_and_iou_upcast_as_torchvision(dtype, torch_dtype, area_dtype):
    """Reference: torchvision's box_area and box_iou (their Python code in torch, above).
    Areas exact and in the upcast dtype (uint8 and int16 -> int32, float16 -> float32);
    IoU to float32 rounding (rtol 1e-6), where computing in the input's dtype overflowed."""
    boxes = WIDE_BOXES.astype(dtype)
    ours = minimask.tensor(boxes)
    theirs = torch.tensor(boxes.astype(np.int64)).to(torch_dtype)
    area = box_area(ours)
    assert area.dtype == area_dtype
    np.testing.assert_array_equal(area.numpy(), _torchvision_box_area(theirs).numpy())
    np.testing.assert_allclose(
        box_iou(ours, ours).numpy(),
        _torchvision_box_iou(theirs, theirs).double().numpy(),
        rtol=1e-6,
    )


def test_box_iou_of_disjoint_uint8_boxes_is_zero():
    """By hand: two uint8 boxes that do not overlap have IoU 0 (minimask upcasts before it
    subtracts corners, so min(x2) - max(x1) = -50 does not wrap around to 206)."""
    boxes = minimask.tensor(np.array([[0, 0, 50, 50], [100, 100, 150, 150]], dtype=np.uint8))
    assert box_iou(boxes, boxes).numpy().tolist() == [[1.0, 0.0], [0.0, 1.0]]
