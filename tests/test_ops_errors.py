"""Bad input to the detection ops: a clear error, raised in Python before any kernel runs,
whose message names the problem (asserted with pytest.raises(match=...))."""

import math

import numpy as np
import pytest

import minimask
from minimask.ops import batched_nms, nms, roi_align, roi_pool, roi_warp

FEATURES = minimask.zeros((2, 3, 8, 8))
ROI_OPS = [roi_align, roi_pool, roi_warp]


def rois(*rows):
    return minimask.tensor(np.array(rows, dtype=np.float64).reshape(-1, 5))


@pytest.mark.parametrize("op", ROI_OPS)
def test_box_with_x2_less_than_x1_is_named(op):
    boxes = rois([0, 1, 1, 4, 4], [1, 5.0, 1.0, 3.0, 4.0])
    match = r"box boxes\[1\] has x2 < x1 or y2 < y1: \(x1, y1, x2, y2\) = \(5.0, 1.0, 3.0, 4.0\)"
    with pytest.raises(ValueError, match=match):
        op(FEATURES, boxes, 2)


@pytest.mark.parametrize("op", ROI_OPS)
def test_box_with_y2_less_than_y1_in_list_form_is_named(op):
    boxes = [minimask.tensor([[0, 0, 1, 1.0]]), minimask.tensor([[0, 0, 1, 1.0], [0, 3, 1, 2.0]])]
    with pytest.raises(ValueError, match=r"box boxes\[1\]\[1\] has x2 < x1 or y2 < y1"):
        op(FEATURES, boxes, 2)


@pytest.mark.parametrize("op", ROI_OPS)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_coordinates(op, bad):
    with pytest.raises(ValueError, match=r"box boxes\[0\] has a NaN or infinite coordinate"):
        op(FEATURES, rois([0, 0, bad, 2, 2]), 2)


@pytest.mark.parametrize("op", ROI_OPS)
@pytest.mark.parametrize("index", [2, -1, 0.5, math.nan])
def test_batch_index_out_of_range_or_not_integer(op, index):
    match = r"box boxes\[1\] has batch index .*not an integer in \[0, 2\)"
    with pytest.raises(ValueError, match=match):
        op(FEATURES, rois([0, 0, 0, 2, 2], [index, 0, 0, 2, 2]), 2)


@pytest.mark.parametrize("op", ROI_OPS)
def test_more_box_lists_than_images(op):
    boxes = [minimask.zeros((0, 4))] * 3
    with pytest.raises(ValueError, match="list of 3 Tensors .* only 2 images"):
        op(FEATURES, boxes, 2)


@pytest.mark.parametrize("op", ROI_OPS)
@pytest.mark.parametrize(
    "boxes, what",
    [
        (minimask.zeros((3, 4)), r"boxes is a Tensor of shape \(3, 4\)"),
        (minimask.zeros(5), r"boxes is a Tensor of shape \(5,\)"),
        (minimask.zeros((2, 3, 5)), r"boxes is a Tensor of shape \(2, 3, 5\)"),
        ([minimask.zeros((3, 5))], r"boxes\[0\] is a Tensor of shape \(3, 5\)"),
        (np.zeros((3, 5)), "boxes is a ndarray"),
    ],
)
def test_wrong_box_shape(op, boxes, what):
    with pytest.raises(ValueError, match=r"boxes must be a Tensor of shape \(K, 5\).*" + what):
        op(FEATURES, boxes, 2)


@pytest.mark.parametrize("op", ROI_OPS)
@pytest.mark.parametrize("dtype", [minimask.int64, minimask.bool_, minimask.float16])
def test_non_float_feature_map(op, dtype):
    with pytest.raises(TypeError, match="input .* must be float32 or float64, got"):
        op(minimask.zeros((1, 1, 4, 4)).to(dtype), rois([0, 0, 0, 1, 1]), 2)


@pytest.mark.parametrize("op", ROI_OPS)
@pytest.mark.parametrize("shape", [(3, 8, 8), (1, 1, 2, 8, 8), (8,)])
def test_feature_map_not_4d(op, shape):
    with pytest.raises(ValueError, match=r"input must be 4-d \(N, C, H, W\), got shape"):
        op(minimask.zeros(shape), rois([0, 0, 0, 1, 1]), 2)


@pytest.mark.parametrize("op", ROI_OPS)
@pytest.mark.parametrize("size", [0, (2, 0), (2, 2, 2), 1.5, "7"])
def test_bad_output_size(op, size):
    with pytest.raises(ValueError, match="output_size must be a positive int or a pair"):
        op(FEATURES, rois([0, 0, 0, 1, 1]), size)


@pytest.mark.parametrize("op", ROI_OPS)
@pytest.mark.parametrize("scale", [0.0, -1.0, math.nan, math.inf])
def test_bad_spatial_scale(op, scale):
    with pytest.raises(ValueError, match="spatial_scale must be a positive finite number"):
        op(FEATURES, rois([0, 0, 0, 1, 1]), 2, scale)


def test_bad_sampling_ratio():
    with pytest.raises(TypeError, match="sampling_ratio must be an int"):
        roi_align(FEATURES, rois([0, 0, 0, 1, 1]), 2, 1.0, 1.5)


BOXES = minimask.tensor([[0, 0, 2, 2], [1, 1, 3, 3.0]])
SCORES = minimask.tensor([0.5, 0.4])


@pytest.mark.parametrize("op", ["nms", "batched_nms"])
def test_nms_bad_input(op):
    def call(boxes=BOXES, scores=SCORES, threshold=0.5, idxs=None):
        if op == "nms":
            return nms(boxes, scores, threshold)
        idxs = minimask.tensor([0] * len(scores)) if idxs is None else idxs
        return batched_nms(boxes, scores, idxs, threshold)

    with pytest.raises(ValueError, match=r"scores must have shape \(2,\), one per box, got \(3,\)"):
        call(scores=minimask.tensor([0.5, 0.4, 0.3]))
    with pytest.raises(ValueError, match=r"boxes must have shape \(n, 4\)"):
        call(boxes=minimask.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"box boxes\[1\] has x2 < x1 or y2 < y1"):
        call(boxes=minimask.tensor([[0, 0, 2, 2], [3, 1, 1, 3.0]]))
    with pytest.raises(ValueError, match=r"box boxes\[0\] has a NaN or infinite coordinate"):
        call(boxes=minimask.tensor([[0, 0, math.inf, 2], [1, 1, 3, 3.0]]))
    with pytest.raises(ValueError, match=r"scores\[1\] is NaN"):
        call(scores=minimask.tensor([0.5, math.nan]))
    for threshold in (-0.1, math.nan, "0.5"):
        with pytest.raises(ValueError, match="iou_threshold must be a number >= 0"):
            call(threshold=threshold)
    if op == "batched_nms":
        with pytest.raises(ValueError, match=r"idxs must be a Tensor of shape \(2,\)"):
            call(idxs=minimask.tensor([0, 1, 2]))
        with pytest.raises(TypeError, match="idxs must be an integer Tensor"):
            call(idxs=minimask.tensor([0.0, 1.0]))


def test_errors_are_raised_before_any_kernel(monkeypatch):
    """The checks run in Python: with the backend's kernels replaced by a tripwire, bad input
    still raises its own error."""
    import minimask.cpu as cpu

    def tripwire(*args, **kwargs):
        raise AssertionError("a kernel ran on bad input")

    for name in ("roi_align_forward", "roi_pool_forward", "nms"):
        monkeypatch.setattr(cpu, name, tripwire)
    with pytest.raises(ValueError, match="x2 < x1"):
        roi_align(FEATURES, rois([0, 3, 0, 1, 1]), 2)
    with pytest.raises(ValueError, match="batch index"):
        roi_pool(FEATURES, rois([5, 0, 0, 1, 1]), 2)
    with pytest.raises(ValueError, match="NaN"):
        nms(BOXES, minimask.tensor([math.nan, 0.1]), 0.5)
