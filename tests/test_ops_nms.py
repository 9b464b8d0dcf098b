"""minimask.ops.nms / batched_nms against ONNX Runtime's NonMaxSuppression, a plain NumPy
loop (torchvision's CPU algorithm), and the defining properties of greedy NMS.

Every test names its reference in its docstring; indices are compared exactly.
"""

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import minimask
from minimask.ops import batched_nms, box_iou, nms


def nms_reference(boxes, scores, iou_threshold):
    """torchvision's nms_kernel_impl (CPU) in plain NumPy: a stable descending sort, then
    for each unsuppressed box in order, suppress every later box with IoU > threshold."""
    boxes = boxes.astype(np.float64)
    order = np.argsort(-scores.astype(np.float64), kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    suppressed = np.zeros(len(boxes), dtype=bool)
    keep = []
    for position, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        for j in order[position + 1 :]:
            if suppressed[j]:
                continue
            w = max(0.0, min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0]))
            h = max(0.0, min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1]))
            inter = w * h
            with np.errstate(invalid="ignore", divide="ignore"):
                if inter / (areas[i] + areas[j] - inter) > iou_threshold:
                    suppressed[j] = True
    return np.array(keep, dtype=np.int64)


_ORT_SESSION = None


def ort_nms(boxes, scores, iou_threshold):
    """ONNX Runtime NonMaxSuppression (opset 16, center_point_box=0: corners given as
    [y1, x1, y2, x2], any diagonal order; a box is suppressed when IoU > threshold; no score
    threshold; unlimited output): the selected box indices, in selection order."""
    global _ORT_SESSION
    if _ORT_SESSION is None:
        node = helper.make_node(
            "NonMaxSuppression",
            ["boxes", "scores", "max_output_boxes_per_class", "iou_threshold"],
            ["selected_indices"],
            center_point_box=0,
        )
        graph = helper.make_graph(
            [node],
            "nms",
            [
                helper.make_tensor_value_info("boxes", TensorProto.FLOAT, None),
                helper.make_tensor_value_info("scores", TensorProto.FLOAT, None),
                helper.make_tensor_value_info(
                    "max_output_boxes_per_class", TensorProto.INT64, None
                ),
                helper.make_tensor_value_info("iou_threshold", TensorProto.FLOAT, None),
            ],
            [helper.make_tensor_value_info("selected_indices", TensorProto.INT64, None)],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])
        _ORT_SESSION = ort.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
    feeds = {
        "boxes": boxes[None][:, :, [1, 0, 3, 2]].astype(np.float32),
        "scores": scores[None, None].astype(np.float32),
        "max_output_boxes_per_class": np.array([len(boxes)], dtype=np.int64),
        "iou_threshold": np.array([iou_threshold], dtype=np.float32),
    }
    return _ORT_SESSION.run(None, feeds)[0][:, 2]


def run_nms(boxes, scores, iou_threshold):
    return nms(minimask.tensor(boxes), minimask.tensor(scores), iou_threshold).numpy()


def random_boxes(rng, count, extent=100.0, max_size=40.0):
    low = rng.uniform(0, extent, (count, 2))
    return np.concatenate([low, low + rng.uniform(1, max_size, (count, 2))], 1).astype(np.float32)


# ---------------------------------------------------------------- references


@pytest.mark.parametrize("iou_threshold", [0.3, 0.5, 0.7])
def test_matches_onnxruntime_and_numpy_loop(iou_threshold):
    """References: ONNX Runtime NonMaxSuppression and nms_reference (torchvision's CPU loop)
    on 500 random float32 boxes with distinct scores; exact index equality.

    ORT and torchvision agree here. Where they differ: ORT accepts flipped corners (it
    sorts each box's coordinates; minimask rejects x2 < x1), computes the IoU in float32
    against a float32 threshold (minimask: float64), and never suppresses without a
    positive intersection (torchvision does for a negative threshold, which minimask
    rejects)."""
    rng = np.random.default_rng(int(iou_threshold * 10))
    boxes = random_boxes(rng, 500)
    scores = rng.permutation(500).astype(np.float32) / 500
    kept = run_nms(boxes, scores, iou_threshold)
    assert kept.dtype == np.int64
    np.testing.assert_array_equal(kept, ort_nms(boxes, scores, iou_threshold))
    np.testing.assert_array_equal(kept, nms_reference(boxes, scores, iou_threshold))


def test_ties_degenerate_boxes_and_threshold_zero_match_onnxruntime():
    """References: ONNX Runtime NonMaxSuppression and nms_reference, on integer boxes
    (many exact ties in IoU), zero-size boxes, few distinct scores (ties: lower index
    first), thresholds including 0 (any overlap suppresses). Exact index equality."""
    rng = np.random.default_rng(0)
    for _ in range(60):
        n = int(rng.integers(1, 50))
        low = rng.integers(0, 20, (n, 2))
        boxes = np.concatenate([low, low + rng.integers(0, 10, (n, 2))], 1).astype(np.float32)
        scores = rng.integers(0, 4, n).astype(np.float32)
        threshold = float(rng.choice([0.0, 0.25, 0.5, 0.7]))
        kept = run_nms(boxes, scores, threshold)
        np.testing.assert_array_equal(kept, ort_nms(boxes, scores, threshold))
        np.testing.assert_array_equal(kept, nms_reference(boxes, scores, threshold))


def test_large_input_crosses_many_mask_words():
    """Reference: nms_reference on 1500 clustered boxes (the bitmask spans 24 words per row,
    and many suppressions cross word boundaries); exact index equality."""
    rng = np.random.default_rng(1)
    boxes = random_boxes(rng, 1500, extent=200.0, max_size=60.0)
    scores = rng.random(1500).astype(np.float32)
    np.testing.assert_array_equal(run_nms(boxes, scores, 0.5), nms_reference(boxes, scores, 0.5))


def test_hand_computed_cases():
    """Reference: by hand. IoU of (0,0,10,10) and (1,1,11,11) is 81/119 = 0.68: suppressed at
    0.5, kept at 0.7; IoU exactly equal to the threshold keeps the box (strict >); equal
    scores visit the lower index first; empty input gives an empty int64 result."""
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], dtype=np.float32)
    scores = np.array([0.9, 0.8, 0.7], dtype=np.float32)
    np.testing.assert_array_equal(run_nms(boxes, scores, 0.5), [0, 2])
    np.testing.assert_array_equal(run_nms(boxes, scores, 0.7), [0, 1, 2])
    half = np.array([[0, 0, 2, 1], [0, 0, 1, 1]], dtype=np.float32)  # IoU exactly 0.5
    np.testing.assert_array_equal(run_nms(half, np.array([1.0, 0.5]), 0.5), [0, 1])
    np.testing.assert_array_equal(run_nms(half, np.array([1.0, 0.5]), 0.49), [0])
    same = np.array([[0, 0, 4, 4]] * 3, dtype=np.float32)
    np.testing.assert_array_equal(run_nms(same, np.array([0.5, 0.5, 0.5]), 0.5), [0])
    np.testing.assert_array_equal(run_nms(same, np.array([0.1, 0.5, 0.5]), 0.5), [1])
    empty = run_nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5)
    assert empty.shape == (0,) and empty.dtype == np.int64


# ---------------------------------------------------------------- properties (hypothesis)


@st.composite
def nms_cases(draw):
    """Up to 40 boxes on an integer grid (exact IoUs, frequent ties and duplicates),
    scores from a few levels (frequent score ties), a threshold."""
    n = draw(st.integers(0, 40))
    coords = st.integers(-10, 30)
    boxes = []
    for _ in range(n):
        x, y = draw(coords), draw(coords)
        boxes.append((x, y, x + draw(st.integers(0, 15)), y + draw(st.integers(0, 15))))
    scores = [draw(st.integers(0, 5)) / 5 for _ in range(n)]
    threshold = draw(st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0]))
    return (
        np.array(boxes, dtype=np.float32).reshape(-1, 4),
        np.array(scores, dtype=np.float32),
        threshold,
    )


def rank_before(scores, a, b):
    """Does box a come before box b in NMS order (higher score, or equal and lower index)?"""
    return scores[a] > scores[b] or (scores[a] == scores[b] and a < b)


@settings(max_examples=60)
@given(nms_cases())
def test_greedy_nms_properties(case):
    """The defining properties of greedy NMS, and the NumPy loop as reference:
    kept indices come in NMS order (score descending, ties lower index first); kept boxes
    pairwise have IoU <= threshold; every dropped box has IoU > threshold with a kept box
    that comes before it."""
    boxes, scores, threshold = case
    kept = run_nms(boxes, scores, threshold)
    np.testing.assert_array_equal(kept, nms_reference(boxes, scores, threshold))
    for a, b in zip(kept, kept[1:]):
        assert rank_before(scores, a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        exact = minimask.tensor(boxes.astype(np.float64))  # IoU in float64, as NMS computes it
        iou = box_iou(exact, exact).numpy()
    iou = np.nan_to_num(iou, nan=0.0)  # 0/0 (two empty boxes) never suppresses
    for position, a in enumerate(kept):
        for b in kept[position + 1 :]:
            assert iou[a, b] <= threshold
    dropped = np.setdiff1d(np.arange(len(boxes)), kept)
    for d in dropped:
        assert any(iou[k, d] > threshold and rank_before(scores, k, d) for k in kept)


@settings(max_examples=60)
@given(nms_cases(), st.data())
def test_batched_nms_never_suppresses_across_categories(case, data):
    """Reference: nms run separately on each category's boxes (torchvision's
    _batched_nms_vanilla), merged in NMS order. Coordinates include negative values, where
    torchvision's max-based coordinate shift could let categories overlap."""
    boxes, scores, threshold = case
    categories = np.array(
        data.draw(
            st.lists(st.sampled_from([-1, 0, 3, 7]), min_size=len(boxes), max_size=len(boxes))
        ),
        dtype=np.int64,
    )
    kept = batched_nms(
        minimask.tensor(boxes), minimask.tensor(scores), minimask.tensor(categories), threshold
    ).numpy()
    expected = []
    for category in np.unique(categories):
        members = np.flatnonzero(categories == category)
        expected.extend(members[nms_reference(boxes[members], scores[members], threshold)])
    expected = sorted(expected, key=lambda i: (-scores[i], i))
    np.testing.assert_array_equal(kept, np.array(expected, dtype=np.int64))


def test_batched_nms_rpn_sized_input_matches_per_category_reference():
    """Reference: nms_reference run on each category's boxes, merged in NMS order, for the
    RPN's shape of input: five categories (FPN levels) of up to 700 boxes in one image, so
    each category's bitmask spans several words. Exact index equality."""
    rng = np.random.default_rng(2)
    counts = [700, 400, 150, 40, 10]
    boxes = random_boxes(rng, sum(counts), extent=120.0, max_size=50.0)
    scores = rng.random(sum(counts)).astype(np.float32)
    levels = np.repeat(np.arange(5), counts)
    kept = batched_nms(
        minimask.tensor(boxes), minimask.tensor(scores), minimask.tensor(levels), 0.7
    ).numpy()
    expected = []
    for level in range(5):
        members = np.flatnonzero(levels == level)
        expected.extend(members[nms_reference(boxes[members], scores[members], 0.7)])
    expected = sorted(expected, key=lambda i: (-scores[i], i))
    np.testing.assert_array_equal(kept, np.array(expected, dtype=np.int64))
    assert len(kept) < len(boxes)


def test_batched_nms_hand_computed():
    """Reference: by hand: two identical boxes in different categories both survive; in the
    same category the lower-scored one goes. Empty input gives an empty int64 result."""
    boxes = minimask.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10.0]])
    scores = minimask.tensor([0.9, 0.8, 0.7])
    kept = batched_nms(boxes, scores, minimask.tensor([1, 2, 1]), 0.5)
    np.testing.assert_array_equal(kept.numpy(), [0, 1])
    empty = batched_nms(
        minimask.zeros((0, 4)), minimask.zeros(0), minimask.zeros(0, dtype=minimask.int64), 0.5
    )
    assert empty.shape == (0,) and empty.dtype == np.int64
