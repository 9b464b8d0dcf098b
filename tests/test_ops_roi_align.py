"""minimask.ops.roi_align against ONNX Runtime's RoiAlign, a PyTorch grid_sample composite
and its autograd, finite differences, and exact identities (adjoint, translation, scale).

Every test names its reference and tolerance in its docstring. Semantics under test are
torchvision's roi_align (see minimask/cpu/roi_align.py for the formulas).
"""

import math

import numba
import numpy as np
import onnxruntime as ort
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import minimask
from minimask.ops import roi_align

# ---------------------------------------------------------------- helpers


def as_rois(batch_index, boxes):
    """A float64 Tensor (K, 5) of (batch_index, x1, y1, x2, y2)."""
    rows = np.concatenate([np.asarray(batch_index, float).reshape(-1, 1), boxes], axis=1)
    return minimask.tensor(rows.reshape(-1, 5), dtype=minimask.float64)


def random_boxes(rng, count, height, width, scale=1.0):
    """Boxes in image pixels: partly outside the map, some smaller than a cell, some of
    zero size."""
    low = rng.uniform([-3, -3], [width + 1, height + 1], (count, 2))
    size = rng.uniform(0, [width / 2, height / 2], (count, 2))
    size[rng.random(count) < 0.2] *= 0.05  # smaller than one cell
    size[rng.random(count) < 0.1] = 0.0  # degenerate
    return np.concatenate([low, low + size], axis=1) / scale


def ort_roi_align(x, batch_index, boxes, output_size, spatial_scale, sampling_ratio, aligned):
    """ONNX Runtime RoiAlign (opset 16, mode avg) on the same numbers."""
    dtype = TensorProto.DOUBLE if x.dtype == np.float64 else TensorProto.FLOAT
    node = helper.make_node(
        "RoiAlign",
        ["X", "rois", "batch_indices"],
        ["Y"],
        mode="avg",
        output_height=output_size[0],
        output_width=output_size[1],
        sampling_ratio=sampling_ratio,
        spatial_scale=spatial_scale,
        coordinate_transformation_mode="half_pixel" if aligned else "output_half_pixel",
    )
    graph = helper.make_graph(
        [node],
        "roi_align",
        [
            helper.make_tensor_value_info("X", dtype, None),
            helper.make_tensor_value_info("rois", dtype, None),
            helper.make_tensor_value_info("batch_indices", TensorProto.INT64, None),
        ],
        [helper.make_tensor_value_info("Y", dtype, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {"X": x, "rois": boxes.astype(x.dtype), "batch_indices": batch_index.astype(np.int64)}
    return session.run(None, feeds)[0]


def sample_axis(start, size, pooled, sampling_ratio, aligned, scale):
    """torchvision's sample coordinates along one axis of one box, written from its
    definition: (pooled * grid,) positions in feature cells, and the grid size."""
    offset = 0.5 if aligned else 0.0
    begin = start * scale - offset
    length = (start + size) * scale - offset - begin
    if not aligned:
        length = max(length, 1.0)
    bin_size = length / pooled
    grid = sampling_ratio if sampling_ratio > 0 else math.ceil(length / pooled)
    points = [
        begin + p * bin_size + (i + 0.5) * bin_size / grid
        for p in range(pooled)
        for i in range(grid)
    ]
    return np.array(points, dtype=np.float64), grid


def grid_sample_roi_align(x, rois, output_size, scale, sampling_ratio, aligned, border_rule):
    """RoIAlign as a torch composite: sample points -> grid_sample(align_corners=False,
    zeros padding) -> average of each bin's samples (avg_pool2d), one roi at a time.

    grid_sample's zero padding is not RoIAlign's border rule: at y in (-1, 0) it blends the
    edge cell with an implicit 0, where RoIAlign clamps y to 0 (same at the far edge), and
    beyond one cell it gives 0 where RoIAlign also gives 0. With border_rule=True the
    composite accounts for it: it clamps the sample coordinates to [0, size - 1] and
    multiplies by the indicator of [-1, size] on both axes, which is exactly RoIAlign's
    rule. With border_rule=False it is plain grid_sample, valid for boxes whose samples lie
    inside [0, size - 1].
    """
    height, width = x.shape[2:]
    outputs = []
    for n, x1, y1, x2, y2 in rois.tolist():
        ys, grid_h = sample_axis(y1, y2 - y1, output_size[0], sampling_ratio, aligned, scale)
        xs, grid_w = sample_axis(x1, x2 - x1, output_size[1], sampling_ratio, aligned, scale)
        if grid_h == 0 or grid_w == 0:  # adaptive sampling of an empty box: no samples, 0
            outputs.append(torch.zeros((1, x.shape[1], *output_size), dtype=x.dtype))
            continue
        weight = np.ones((len(ys), len(xs)))
        if border_rule:
            weight = np.outer((ys >= -1) & (ys <= height), (xs >= -1) & (xs <= width))
            ys, xs = np.clip(ys, 0, height - 1), np.clip(xs, 0, width - 1)
        grid = np.stack(np.meshgrid((2 * xs + 1) / width - 1, (2 * ys + 1) / height - 1), -1)
        grid = torch.tensor(grid[None], dtype=x.dtype)
        samples = torch.nn.functional.grid_sample(
            x[int(n) : int(n) + 1], grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        samples = samples * torch.tensor(weight, dtype=x.dtype)
        outputs.append(torch.nn.functional.avg_pool2d(samples, (grid_h, grid_w)))
    if not outputs:
        return x.new_zeros((0, x.shape[1], *output_size))
    return torch.cat(outputs)


def backward_of(x, rois, grad, **kwargs):
    """d<roi_align(x), grad>/dx through minimask's autograd."""
    xt = minimask.tensor(x, requires_grad=True)
    out = roi_align(xt, rois, **kwargs)
    out.backward(minimask.tensor(grad))
    return out.numpy(), xt.grad.numpy()


# ---------------------------------------------------------------- ONNX Runtime


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [2, 0, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_matches_onnxruntime(aligned, sampling_ratio, dtype):
    """Reference: ONNX Runtime RoiAlign (opset 16, avg; half_pixel for aligned=True,
    output_half_pixel for aligned=False; sampling_ratio 0 = adaptive). Boxes partly outside
    the map, smaller than a cell and of zero size, on two images, scales 1 and 1/2.

    ORT's CPU kernel follows the same Detectron code as torchvision, including the
    aligned=False "at least 1 x 1" rule and the [-1, H] border rule, and agrees bit for bit
    in float64 (tolerance 1e-12). In float32 ORT computes the sample positions in float32
    and minimask in float64: tolerance 2e-5 absolute on values of order 1.
    """
    rng = np.random.default_rng(sampling_ratio + 10 * aligned)
    x = rng.standard_normal((2, 3, 10, 12)).astype(dtype)
    for scale in (1.0, 0.5):
        boxes = random_boxes(rng, 60, 10, 12, scale).astype(dtype)
        batch_index = rng.integers(0, 2, len(boxes))
        expected = ort_roi_align(x, batch_index, boxes, (3, 4), scale, sampling_ratio, aligned)
        got = roi_align(
            minimask.tensor(x),
            as_rois(batch_index, boxes.astype(np.float64)),
            (3, 4),
            spatial_scale=scale,
            sampling_ratio=sampling_ratio,
            aligned=aligned,
        )
        assert got.dtype == dtype
        tolerance = 1e-12 if dtype == np.float64 else 2e-5
        np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=tolerance)


# ---------------------------------------------------------------- grid_sample composite


def test_forward_matches_plain_grid_sample_inside_the_map():
    """Reference: torch grid_sample(align_corners=False, padding_mode="zeros") composite,
    aligned=True, boxes whose samples all lie in [0, H-1] x [0, W-1] (where zero padding and
    RoIAlign's clamping agree). float64, tolerance 1e-12."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 9, 11))
    low = rng.uniform([0.5, 0.5], [6, 5], (20, 2))
    boxes = np.concatenate([low, np.minimum(low + rng.uniform(0.1, 5, (20, 2)), [10.5, 8.5])], 1)
    rois = as_rois(rng.integers(0, 2, 20), boxes)
    for sampling_ratio in (1, 2, 0):
        expected = grid_sample_roi_align(
            torch.tensor(x), rois.numpy(), (3, 2), 1.0, sampling_ratio, True, border_rule=False
        )
        got = roi_align(minimask.tensor(x), rois, (3, 2), 1.0, sampling_ratio, aligned=True)
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=0, atol=1e-12)


def test_plain_grid_sample_differs_at_the_border():
    """Documents the one difference: a sample at y = -0.5 (one half cell above the map) is
    the edge value for RoIAlign (clamped) but half of it for zero-padded grid_sample, and a
    sample at y = -1.5 is 0 for both. Reference: hand-computed values on a constant map."""
    x = minimask.full((1, 1, 4, 4), 2.0, dtype=minimask.float64)
    # aligned=True, one sample per bin, 1x1 output: the sample is the box centre minus 0.5
    near = roi_align(x, as_rois([0], np.array([[1.0, -0.5, 3.0, 0.5]])), 1, 1.0, 1, True)
    far = roi_align(x, as_rois([0], np.array([[1.0, -1.5, 3.0, -0.5]])), 1, 1.0, 1, True)
    assert near.item() == 2.0 and far.item() == 0.0
    plain = grid_sample_roi_align(
        torch.tensor(x.numpy()), np.array([[0, 1.0, -0.5, 3.0, 0.5]]), (1, 1), 1.0, 1, True, False
    )
    assert plain.item() == pytest.approx(1.0)


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [2, 0])
def test_forward_and_backward_match_grid_sample_with_border_rule(aligned, sampling_ratio):
    """Reference: the torch grid_sample composite with RoIAlign's border rule accounted for
    (coordinates clamped to the map, samples outside [-1, H] x [-1, W] masked to 0; see
    grid_sample_roi_align), for boxes anywhere, and torch autograd through it for the input
    gradient. float64, tolerance 1e-12 (forward) and 1e-11 (gradient)."""
    rng = np.random.default_rng(7 + sampling_ratio + aligned)
    x = rng.standard_normal((2, 3, 8, 10))
    boxes = random_boxes(rng, 30, 8, 10, scale=0.5)
    rois = as_rois(rng.integers(0, 2, 30), boxes)
    grad = rng.standard_normal((30, 3, 2, 3))
    xt = torch.tensor(x, requires_grad=True)
    expected = grid_sample_roi_align(xt, rois.numpy(), (2, 3), 0.5, sampling_ratio, aligned, True)
    expected.backward(torch.tensor(grad))
    got, grad_x = backward_of(
        x, rois, grad, output_size=(2, 3), spatial_scale=0.5,
        sampling_ratio=sampling_ratio, aligned=aligned,
    )  # fmt: skip
    np.testing.assert_allclose(got, expected.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(grad_x, xt.grad.numpy(), rtol=0, atol=1e-11)


def test_float32_backward_matches_grid_sample_autograd():
    """Reference: torch autograd through the (border-rule) grid_sample composite in float32.
    Tolerance 1e-5 absolute (minimask sums in float64, torch in float32)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 5, 12, 12)).astype(np.float32)
    boxes = random_boxes(rng, 40, 12, 12)
    rois = as_rois(np.zeros(40), boxes)
    grad = rng.standard_normal((40, 5, 2, 2)).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    expected = grid_sample_roi_align(xt, rois.numpy(), (2, 2), 1.0, 2, True, True)
    expected.backward(torch.tensor(grad))
    got, grad_x = backward_of(x, rois, grad, output_size=2, sampling_ratio=2, aligned=True)
    assert grad_x.dtype == np.float32
    np.testing.assert_allclose(got, expected.detach().numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(grad_x, xt.grad.numpy(), rtol=0, atol=1e-5)


# ---------------------------------------------------------------- semantics by hand


def test_hand_computed_values():
    """Reference: values computed by hand on a map f[i, j] = 10 i + j (bilinear reproduces a
    linear function exactly inside the map). Exact (tolerance 1e-12)."""
    f = np.add.outer(10.0 * np.arange(5), np.arange(6))[None, None]
    x = minimask.tensor(f)
    # aligned=False, box (1, 1)-(3, 3), 1x1 output, 2x2 samples at 1.5 and 2.5: mean 10*2 + 2
    out = roi_align(x, as_rois([0], np.array([[1.0, 1.0, 3.0, 3.0]])), 1, 1.0, 2, False)
    assert out.item() == pytest.approx(22.0, abs=1e-12)
    # aligned=True shifts by -0.5: samples at 1.0 and 2.0, mean 10*1.5 + 1.5
    out = roi_align(x, as_rois([0], np.array([[1.0, 1.0, 3.0, 3.0]])), 1, 1.0, 2, True)
    assert out.item() == pytest.approx(16.5, abs=1e-12)
    # aligned=False makes a zero-size box 1 x 1: samples at 2.25 and 2.75 around (2, 2)
    out = roi_align(x, as_rois([0], np.array([[2.0, 2.0, 2.0, 2.0]])), 1, 1.0, 2, False)
    assert out.item() == pytest.approx(27.5, abs=1e-12)
    # aligned=True, adaptive: a zero-size box has no samples and gives 0
    out = roi_align(x, as_rois([0], np.array([[2.0, 2.0, 2.0, 2.0]])), 1, 1.0, 0, True)
    assert out.item() == 0.0
    # past the far edge: y in (H-1, H] clamps to row H-1; y > H gives 0
    out = roi_align(x, as_rois([0], np.array([[1.0, 4.5, 1.0, 4.5]])), 1, 1.0, 1, True)
    assert out.item() == pytest.approx(40.5, abs=1e-12)  # (y, x) = (4 -> clamp 4, 0.5)
    out = roi_align(x, as_rois([0], np.array([[1.0, 5.6, 1.0, 5.6]])), 1, 1.0, 1, True)
    assert out.item() == 0.0  # y = 5.1 > H = 5


def test_list_of_boxes_equals_tensor_form():
    """Reference: the (K, 5) form of the same boxes (torchvision's convert_boxes_to_roi_format);
    exact equality."""
    rng = np.random.default_rng(1)
    x = minimask.tensor(rng.standard_normal((2, 3, 7, 7)))
    first, second = random_boxes(rng, 3, 7, 7), random_boxes(rng, 2, 7, 7)
    from_list = roi_align(x, [minimask.tensor(first), minimask.tensor(second)], 2, 1.0, 2, True)
    rois = as_rois([0, 0, 0, 1, 1], np.concatenate([first, second]))
    np.testing.assert_array_equal(from_list.numpy(), roi_align(x, rois, 2, 1.0, 2, True).numpy())


def test_empty_boxes():
    """Reference: torchvision's shapes: no boxes gives (0, C, PH, PW) and a zero gradient."""
    x = minimask.randn(2, 3, 5, 5, requires_grad=True)
    out = roi_align(x, minimask.zeros((0, 5)), (2, 3))
    assert out.shape == (0, 3, 2, 3) and out.dtype == np.float32
    out.sum().backward()
    assert x.grad.shape == x.shape and not x.grad.numpy().any()
    empty_list = roi_align(x, [minimask.zeros((0, 4)), minimask.zeros((0, 4))], 2)
    assert empty_list.shape == (0, 3, 2, 2)


def test_backward_is_deterministic_across_thread_counts():
    """Reference: the same backward with 1 thread. The CPU backward gives one owner to every
    input cell and a fixed summation order, so the result is identical bit for bit for any
    thread count (a scatter with atomic adds would not be)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 40, 9, 9)).astype(np.float32)
    rois = as_rois(rng.integers(0, 2, 50), random_boxes(rng, 50, 9, 9))
    grad = rng.standard_normal((50, 40, 3, 3)).astype(np.float32)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        _, single = backward_of(x, rois, grad, output_size=3, sampling_ratio=0, aligned=True)
    finally:
        numba.set_num_threads(threads)
    _, parallel = backward_of(x, rois, grad, output_size=3, sampling_ratio=0, aligned=True)
    np.testing.assert_array_equal(single, parallel)


# ---------------------------------------------------------------- properties (hypothesis)

EIGHTHS = st.integers(-24, 72).map(lambda v: v / 8)  # dyadic: exact in binary floating point


@st.composite
def roi_cases(draw, max_boxes=3):
    """A small feature map and boxes in image pixels (partly outside the map, smaller than a
    cell or of zero size), with all the RoIAlign parameters."""
    batch = draw(st.integers(1, 2))
    height, width = draw(st.integers(2, 6)), draw(st.integers(2, 6))
    channels = draw(st.integers(1, 2))
    count = draw(st.integers(1, max_boxes))
    boxes = []
    for _ in range(count):
        x1, y1 = draw(EIGHTHS), draw(EIGHTHS)
        w, h = (
            draw(st.integers(0, 40).map(lambda v: v / 8)),
            draw(st.integers(0, 40).map(lambda v: v / 8)),
        )
        boxes.append((draw(st.integers(0, batch - 1)), x1, y1, x1 + w, y1 + h))
    return {
        "shape": (batch, channels, height, width),
        "rois": np.array(boxes, dtype=np.float64),
        "output_size": (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        "spatial_scale": draw(st.sampled_from([1.0, 0.5, 0.25])),
        "sampling_ratio": draw(st.sampled_from([-1, 0, 1, 2])),
        "aligned": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
    }


def params(case):
    return {k: case[k] for k in ("output_size", "spatial_scale", "sampling_ratio", "aligned")}


@settings(max_examples=20)
@given(roi_cases())
def test_gradcheck(case):
    """Reference: central finite differences (minimask.gradcheck, float64, full Jacobian,
    atol 1e-5, rtol 1e-3). RoIAlign is linear in the input, so this checks every entry of the
    backward's matrix against the forward's."""
    x = np.random.default_rng(case["seed"]).standard_normal(case["shape"])
    rois = minimask.tensor(case["rois"])
    x = minimask.tensor(x, requires_grad=True)
    assert minimask.gradcheck(lambda t: roi_align(t, rois, **params(case)), (x,))


@settings(max_examples=40)
@given(roi_cases(max_boxes=4), st.sampled_from([np.float64, np.float32]))
def test_adjoint_identity(case, dtype):
    """<roi_align(x), g> == <x, roi_align_backward(g)>: the backward is the exact transpose
    of the forward. Tolerance relative to sum |x||J^T g|: 1e-12 in float64, 1e-5 in float32."""
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal(case["shape"]).astype(dtype)
    rois = minimask.tensor(case["rois"])
    out_shape = (len(case["rois"]), case["shape"][1], *case["output_size"])
    grad = rng.standard_normal(out_shape).astype(dtype)
    out, grad_x = backward_of(x, rois, grad, **params(case))
    assert out.dtype == dtype and grad_x.dtype == dtype
    lhs = float(np.sum(out.astype(np.float64) * grad))
    rhs = float(np.sum(x.astype(np.float64) * grad_x))
    scale = float(np.sum(np.abs(x) * np.abs(grad_x))) + float(np.sum(np.abs(out * grad))) + 1e-30
    assert abs(lhs - rhs) <= (1e-12 if dtype == np.float64 else 1e-5) * scale


FEATURE_EIGHTHS = st.integers(0, 24).map(lambda v: v / 8)


@settings(max_examples=40)
@given(
    st.tuples(FEATURE_EIGHTHS, FEATURE_EIGHTHS, FEATURE_EIGHTHS, FEATURE_EIGHTHS),
    st.tuples(st.integers(0, 3), st.integers(0, 3)),
    st.sampled_from([1.0, 0.5, 0.25]),
    st.sampled_from([-1, 1, 2]),
    st.booleans(),
    st.sampled_from([np.float64, np.float32]),
    st.integers(0, 2**16),
)
def test_translation_equivariance(box, shift, scale, sampling_ratio, aligned, dtype, seed):
    """Shifting the map content by (dy, dx) whole cells and the box by the same amount (in
    feature cells) leaves the output unchanged, as long as every sample stays in
    [0, H-1] x [0, W-1] (the map is made large enough, so the border rule never applies).
    Reference: the unshifted output; tolerance 1e-12 (float64) / 1e-5 (float32), since the
    sample positions are rounded differently after the shift."""
    start_x, start_y, extent_x, extent_y = box  # in feature cells, after the aligned offset
    shift_y, shift_x = shift
    offset = 0.5 if aligned else 0.0
    min_extent = 0.0 if aligned else 1.0  # aligned=False makes every box at least 1 x 1
    height = math.ceil(start_y + max(extent_y, min_extent)) + shift_y + 2
    width = math.ceil(start_x + max(extent_x, min_extent)) + shift_x + 2
    # image-pixel box whose feature-space box starts at (start_x, start_y): exact (dyadic)
    x1, y1 = (start_x + offset) / scale, (start_y + offset) / scale
    rois = np.array([[0, x1, y1, x1 + extent_x / scale, y1 + extent_y / scale]])
    base = np.random.default_rng(seed).standard_normal((1, 2, height + 3, width + 3))
    base = base.astype(dtype)
    x = base[:, :, 3:, 3:]  # x[i, j] = base[i + 3, j + 3]
    # shifted[i, j] = base[i + 3 - dy, j + 3 - dx] = x[i - dy, j - dx]
    shifted = base[:, :, 3 - shift_y : 3 - shift_y + height, 3 - shift_x : 3 - shift_x + width]
    moved = rois.copy()
    moved[:, [1, 3]] += shift_x / scale
    moved[:, [2, 4]] += shift_y / scale
    kwargs = {"output_size": 2, "spatial_scale": scale, "sampling_ratio": sampling_ratio}
    kwargs["aligned"] = aligned
    out = roi_align(minimask.tensor(x), minimask.tensor(rois), **kwargs)
    out_shifted = roi_align(minimask.tensor(shifted), minimask.tensor(moved), **kwargs)
    tolerance = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(out_shifted.numpy(), out.numpy(), rtol=0, atol=tolerance)


@settings(max_examples=40)
@given(roi_cases(max_boxes=3), st.floats(0.05, 4.0))
def test_scale_identity(case, scale):
    """roi_align(x, b, spatial_scale=s) == roi_align(x, b * s, spatial_scale=1), where b * s
    scales the four coordinates (not the batch index) in float64: the kernel's first step is
    exactly that product, so the two are equal bit for bit. Reference: exact equality."""
    x = minimask.tensor(np.random.default_rng(case["seed"]).standard_normal(case["shape"]))
    scaled = case["rois"].copy()
    scaled[:, 1:] *= scale
    kwargs = params(case)
    kwargs.pop("spatial_scale")
    direct = roi_align(x, minimask.tensor(case["rois"]), spatial_scale=scale, **kwargs)
    prescaled = roi_align(x, minimask.tensor(scaled), spatial_scale=1.0, **kwargs)
    np.testing.assert_array_equal(direct.numpy(), prescaled.numpy())
