"""The detection ops on "cuda" against their CPU twins: roi_align, roi_pool, nms.

The CPU kernels (minimask/cpu/roi_align.py, roi_pool.py, nms.py) are the reference: they
are checked against ONNX Runtime, PyTorch and finite differences in test_ops_*.py. Here
every CUDA kernel runs through the public ``minimask.ops`` call on device "cuda" and is
compared with the same call on "cpu", on tiny shapes (2 images, 2 channels, 6 x 6 maps,
a few boxes, 2 x 2 bins) in float32 and float64, with boxes partly outside the map, a
degenerate box, both ``aligned`` modes, fixed and adaptive sampling.

Tolerances. Where a kernel does the CPU's operations in the CPU's order (roi_align
forward and deterministic backward, roi_pool, the nms mask) the result must be
bit-identical in numba's simulator, which rounds every operation once as the CPU does;
on a real GPU the compiler may fuse a multiply and an add (one rounding instead of two),
so there the float results are compared with rtol = atol/max|ref| = 1e-12 (float64) or
4e-7 (float32: about 3 ulp, the float64 sums differ in their last bits and may round to
a neighbouring float32). The atomic-add backward kernels add in another order: the same
tolerances, on every device. Integer results (argmax, kept indices, the mask) are exact.

No GPU: the kernels run in numba's simulator (tests/conftest.py sets NUMBA_ENABLE_CUDASIM),
one Python thread per GPU thread: the whole file takes about 20 s there.
"""

import importlib

import numpy as np
import pytest
from numba import config

import minimask as mm
from minimask.ops import batched_nms, nms, roi_align, roi_pool

cuda = pytest.importorskip("minimask.cuda")
pytestmark = pytest.mark.skipif(not cuda.is_available(), reason="no CUDA GPU or simulator")

SIMULATOR = bool(config.ENABLE_CUDASIM)
DTYPES = [np.float64, np.float32]
TOLERANCE = {np.float64: 1e-12, np.float32: 4e-7}

# Boxes (batch_index, x1, y1, x2, y2) in image pixels, for spatial_scale 0.5 on 6 x 6 maps
# (map coordinates are half of these):
ROIS = np.array(
    [
        [0, 1.0, -3.0, 9.0, 7.0],  # crosses the top edge
        [1, -4.0, 2.0, 14.5, 15.0],  # crosses the left, right and bottom edges
        [0, 3.0, 3.0, 3.6, 3.0],  # zero height, narrower than a cell: degenerate
        [0, 2.0, 0.0, 10.0, 8.0],  # overlaps roi 0: their gradients add up
    ]
)
SPATIAL_SCALE = 0.5


def feature_map(dtype, seed=0):
    return np.random.default_rng(seed).standard_normal((2, 2, 6, 6)).astype(dtype)


def output_weight(shape, dtype, seed=1):
    """Random weights w for the loss sum(out * w), so that grad_out = w."""
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def assert_same(ours, reference, dtype, exact, what):
    """Bit-identical when ``exact``, else within the dtype's tolerance (module docstring)."""
    assert ours.dtype == reference.dtype and ours.shape == reference.shape, what
    if exact:
        np.testing.assert_array_equal(ours, reference, err_msg=what)
        return
    tol = TOLERANCE[dtype]
    scale = max(float(np.max(np.abs(reference), initial=0.0)), 1.0)
    np.testing.assert_allclose(ours, reference, rtol=tol, atol=tol * scale, err_msg=what)


@pytest.fixture
def deterministic_mode():
    """Set the switch with ``deterministic_mode(flag)``; restored after the test."""
    saved = mm.are_deterministic_algorithms_enabled()
    yield mm.use_deterministic_algorithms
    mm.use_deterministic_algorithms(saved)


def run_roi_op(op, device, feature, rois, weight_seed=1, **kwargs):
    """(output, input gradient) of ``op(input, rois, **kwargs)`` on ``device``, with the
    loss sum(out * w)."""
    x = mm.tensor(feature, device=device, requires_grad=True)
    if isinstance(rois, list):  # torchvision's list form: one (L, 4) array per image
        boxes = [mm.tensor(b, device=device) for b in rois]
    else:
        boxes = mm.tensor(rois, device=device)
    out = op(x, boxes, **kwargs)
    weight = output_weight(out.shape, feature.dtype, weight_seed)
    (out * mm.tensor(weight, device=device)).sum().backward()
    assert out.device == device and x.grad.device == device
    return out.numpy(), x.grad.numpy()


# ------------------------------------------------------------------------------ roi_align


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
def test_roi_align_matches_cpu(dtype, aligned, sampling_ratio, deterministic_mode):
    """roi_align forward and deterministic backward on cuda == on cpu (the reference).

    Tolerance: bit-identical in the simulator (same operations in the same order: the
    forward's per-element sum, the backward's per-plane loop nest (k, ph, pw, iy, ix));
    on a GPU rtol 1e-12 (float64) / 4e-7 (float32) for possible fused multiply-adds.
    Covers boxes partly outside the map, a degenerate box, overlapping boxes, both
    aligned modes, fixed (2) and adaptive (-1) sampling.
    """
    deterministic_mode(True)
    feature = feature_map(dtype)
    kwargs = dict(
        output_size=2,
        spatial_scale=SPATIAL_SCALE,
        sampling_ratio=sampling_ratio,
        aligned=aligned,
    )
    cpu_out, cpu_grad = run_roi_op(roi_align, "cpu", feature, ROIS, **kwargs)
    cuda_out, cuda_grad = run_roi_op(roi_align, "cuda", feature, ROIS, **kwargs)
    assert_same(cuda_out, cpu_out, dtype, SIMULATOR, "roi_align forward")
    assert_same(cuda_grad, cpu_grad, dtype, SIMULATOR, "roi_align input gradient")
    assert np.any(cpu_grad != 0) and np.any(cpu_out != 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("aligned", [False, True])
def test_roi_align_atomic_backward_agrees(dtype, aligned, deterministic_mode):
    """The atomic-add backward (use_deterministic_algorithms(False)) against the
    deterministic CUDA backward and the CPU backward (the reference).

    Tolerance: rtol 1e-12 (float64) / 4e-7 (float32) on every device: the atomic adds land
    in an order the scheduler picks, so the float64 sums may differ in their last bits.
    """
    feature = feature_map(dtype)
    kwargs = dict(output_size=(2, 3), spatial_scale=SPATIAL_SCALE, aligned=aligned)
    _, cpu_grad = run_roi_op(roi_align, "cpu", feature, ROIS, **kwargs)
    deterministic_mode(True)
    _, deterministic_grad = run_roi_op(roi_align, "cuda", feature, ROIS, **kwargs)
    deterministic_mode(False)
    _, atomic_grad = run_roi_op(roi_align, "cuda", feature, ROIS, **kwargs)
    assert_same(atomic_grad, cpu_grad, dtype, False, "atomic vs cpu")
    assert_same(atomic_grad, deterministic_grad, dtype, False, "atomic vs deterministic")


def test_roi_align_deterministic_backward_is_reproducible(deterministic_mode):
    """The deterministic backward gives the same bits on two runs (the guarantee it exists
    for, on a GPU too), with many overlapping boxes sending terms to the same cells and
    the boxes passed in the list-of-(L, 4) form. Reference: the first run; exact."""
    deterministic_mode(True)
    rng = np.random.default_rng(3)
    corners = rng.uniform(-1.0, 5.0, (6, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(1.0, 4.0, (6, 2))], axis=1)
    feature = feature_map(np.float32)
    per_image = [boxes[:4], boxes[4:]]
    kwargs = dict(output_size=2, sampling_ratio=2, aligned=True)
    first = run_roi_op(roi_align, "cuda", feature, per_image, **kwargs)
    second = run_roi_op(roi_align, "cuda", feature, per_image, **kwargs)
    np.testing.assert_array_equal(first[1], second[1])
    _, cpu_grad = run_roi_op(roi_align, "cpu", feature, per_image, **kwargs)
    assert_same(first[1], cpu_grad, np.float32, SIMULATOR, "deterministic vs cpu")


def test_roi_align_empty_rois():
    """No boxes: an empty (0, C, PH, PW) output and a zero gradient on both devices
    (reference: the CPU; exact)."""
    feature = feature_map(np.float64)
    empty = np.zeros((0, 5))
    cpu_out, cpu_grad = run_roi_op(roi_align, "cpu", feature, empty, output_size=2)
    cuda_out, cuda_grad = run_roi_op(roi_align, "cuda", feature, empty, output_size=2)
    assert cuda_out.shape == cpu_out.shape == (0, 2, 2, 2)
    np.testing.assert_array_equal(cuda_grad, cpu_grad)


# ------------------------------------------------------------------------------- roi_pool


def tied_feature_map(dtype):
    """Small integers: many ties within a bin (the first maximum in row-major order must
    win on both devices)."""
    return np.random.default_rng(4).integers(0, 3, (2, 2, 6, 6)).astype(dtype)


# half-pixel coordinates test C's round-half-away-from-zero (x1*s = 2.5 -> 3); roi 2 lies
# right of the map (every bin empty: output 0, argmax -1); rois 0 and 3 overlap.
POOL_ROIS = np.array(
    [
        [0, 5.0, -3.0, 9.0, 7.0],
        [1, -4.0, 2.0, 14.5, 15.0],
        [0, 14.0, 1.0, 18.0, 5.0],
        [0, 2.0, 1.0, 11.0, 9.0],
    ]
)


@pytest.mark.parametrize("dtype", DTYPES)
def test_roi_pool_matches_cpu(dtype, deterministic_mode):
    """roi_pool forward (values and, through the gradient, argmax) and the deterministic
    backward on cuda == on cpu (the reference): bit-identical on every device (a max picks
    an input value; the backward adds whole gradients in the CPU's order, no products).
    Ties, overlapping bins, empty bins and rounding at .5 are in the inputs."""
    deterministic_mode(True)
    feature = tied_feature_map(dtype)
    kwargs = dict(output_size=(2, 3), spatial_scale=SPATIAL_SCALE)
    cpu_out, cpu_grad = run_roi_op(roi_pool, "cpu", feature, POOL_ROIS, **kwargs)
    cuda_out, cuda_grad = run_roi_op(roi_pool, "cuda", feature, POOL_ROIS, **kwargs)
    assert_same(cuda_out, cpu_out, dtype, True, "roi_pool forward")
    assert_same(cuda_grad, cpu_grad, dtype, True, "roi_pool input gradient")
    assert np.all(cpu_out[2] == 0)  # the box outside the map: empty bins


@pytest.mark.parametrize("dtype", DTYPES)
def test_roi_pool_atomic_backward_agrees(dtype, deterministic_mode):
    """The atomic-add roi_pool backward against the CPU backward (the reference), on a map
    with ties so that several bins send gradients to one element. Tolerance: rtol 1e-12
    (float64) / 4e-7 (float32): atomic adds in another order (a sum of a few terms)."""
    deterministic_mode(False)
    feature = tied_feature_map(dtype)
    kwargs = dict(output_size=(2, 3), spatial_scale=SPATIAL_SCALE)
    _, cpu_grad = run_roi_op(roi_pool, "cpu", feature, POOL_ROIS, **kwargs)
    _, cuda_grad = run_roi_op(roi_pool, "cuda", feature, POOL_ROIS, **kwargs)
    assert_same(cuda_grad, cpu_grad, dtype, False, "roi_pool atomic gradient")


# ------------------------------------------------------------------------------------ nms


def random_boxes(n, seed):
    rng = np.random.default_rng(seed)
    corners = rng.uniform(0.0, 12.0, (n, 2))
    return np.concatenate([corners, corners + rng.uniform(0.0, 6.0, (n, 2))], axis=1)


def run_nms(device, boxes, scores, iou_threshold):
    kept = nms(mm.tensor(boxes, device=device), mm.tensor(scores, device=device), iou_threshold)
    assert kept.device == device
    return kept.numpy()


@pytest.mark.parametrize("dtype", DTYPES)
def test_nms_matches_cpu_across_tiles(dtype):
    """nms on cuda == on cpu (the reference), kept indices exactly, for 70 boxes: two 64-box
    tiles per side, so a diagonal, an off-diagonal, a below-diagonal and partial tiles all
    run. Integer scores in 0..4: many ties (lower index first)."""
    boxes = random_boxes(70, seed=5).astype(dtype)
    scores = np.random.default_rng(6).integers(0, 5, 70).astype(dtype)
    for iou_threshold in (0.2, 0.5):
        cpu_kept = run_nms("cpu", boxes, scores, iou_threshold)
        cuda_kept = run_nms("cuda", boxes, scores, iou_threshold)
        assert cuda_kept.dtype == np.int64
        np.testing.assert_array_equal(cuda_kept, cpu_kept)
        assert 1 < len(cpu_kept) < 70


def test_batched_nms_coordinate_trick_matches_cpu_per_category():
    """batched_nms on cuda (one NMS over boxes shifted apart by category) == on cpu (one NMS
    per category, merged; the reference), kept indices exactly: 70 boxes in 3 categories
    that overlap each other in space, with negative category ids and score ties."""
    boxes = random_boxes(70, seed=8) - 4.0
    scores = np.random.default_rng(9).integers(0, 5, 70).astype(np.float64)
    categories = np.random.default_rng(10).choice([-2, 0, 5], 70)
    kept = {
        device: batched_nms(
            mm.tensor(boxes, device=device),
            mm.tensor(scores, device=device),
            mm.tensor(categories, device=device),
            0.3,
        ).numpy()
        for device in ("cpu", "cuda")
    }
    np.testing.assert_array_equal(kept["cuda"], kept["cpu"])
    assert 3 < len(kept["cpu"]) < 70


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_nms_iou_bitmask_matches_cpu():
    """The CUDA IoU bitmask (64 x 64 tiles, shared memory) == the CPU's ``iou_bitmask``
    word for word (reference; exact), for 70 sorted boxes including duplicates and
    zero-area boxes (NaN IoU: no bit). The simulator's NumPy warns on that 0/0; a GPU
    does not."""
    boxes = random_boxes(70, seed=7)
    boxes[10] = boxes[3]  # a duplicate: IoU 1
    boxes[20, 2:] = boxes[20, :2]  # zero area
    boxes[21, 2:] = boxes[21, :2] + [0.0, 2.0]  # zero width
    # (the packages export the function nms, which hides the module of the same name)
    cpu_nms = importlib.import_module("minimask.cpu.nms")
    cuda_nms = importlib.import_module("minimask.cuda.nms")
    cpu_mask = cpu_nms.iou_bitmask(boxes, 0.3)
    cuda_mask = cuda.to_numpy(cuda_nms.iou_bitmask(cuda.asarray(boxes), 0.3))
    assert cuda_mask.dtype == np.uint64 and cuda_mask.shape == (70, 2)
    np.testing.assert_array_equal(cuda_mask, cpu_mask)
    assert cpu_mask.any()


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_nms_ties_threshold_and_degenerate_boxes():
    """Hand-made cases, cuda == cpu (the reference) and == the expected indices, exact:
    equal scores keep the lower index; IoU exactly at the threshold (0.5) keeps the box
    (the test is IoU > threshold); identical boxes suppress each other; zero-area boxes
    (NaN IoU) never suppress."""
    boxes = np.array(
        [
            [0.0, 0.0, 3.0, 1.0],  # 0
            [1.0, 0.0, 4.0, 1.0],  # 1: IoU(0, 1) = 2 / 4 = 0.5 exactly
            [0.0, 0.0, 3.0, 1.0],  # 2: same box as 0, same score: 0 comes first
            [5.0, 5.0, 5.0, 5.0],  # 3: zero area
            [5.0, 5.0, 5.0, 5.0],  # 4: the same point: NaN IoU, kept
            [10.0, 0.0, 12.0, 2.0],  # 5: alone
        ]
    )
    scores = np.array([0.9, 0.8, 0.9, 0.5, 0.5, 0.1])
    expected = [0, 1, 3, 4, 5]
    np.testing.assert_array_equal(run_nms("cpu", boxes, scores, 0.5), expected)
    np.testing.assert_array_equal(run_nms("cuda", boxes, scores, 0.5), expected)
    np.testing.assert_array_equal(run_nms("cuda", boxes, scores, 0.49), [0, 3, 4, 5])


def test_nms_empty():
    """No boxes: an empty int64 index Tensor on cuda, as on cpu (the reference; exact)."""
    kept = run_nms("cuda", np.zeros((0, 4)), np.zeros(0), 0.5)
    assert kept.shape == (0,) and kept.dtype == np.int64
    np.testing.assert_array_equal(kept, run_nms("cpu", np.zeros((0, 4)), np.zeros(0), 0.5))
