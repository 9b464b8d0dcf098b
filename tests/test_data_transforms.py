"""Tests of minimask.data.transforms (torchvision GeneralizedRCNNTransform semantics).

References and tolerances are named in each test: torch.nn.functional.interpolate for the
resize (bilinear values: float32 atol 1e-6, float64 atol 1e-12; output sizes: exact),
torchvision's formulas written out in torch for resize_boxes (exact), hand-computed values
(exact), and NumPy for normalize and batch_images (exact).
"""

import numpy as np
import pytest

import minimask as mm
from minimask.data.transforms import (
    batch_images,
    horizontal_flip,
    normalize,
    resize_boxes,
    resize_image,
    resize_scale,
    resized_size,
)


def _torch():
    return pytest.importorskip("torch")


# --------------------------------------------------------------------------- resize_scale
@pytest.mark.parametrize(
    "h, w, min_size, max_size, expected",
    [
        (480, 640, 800, 1333, 800 / 480),  # shorter side -> 800, longer 1066 <= 1333
        (640, 480, 800, 1333, 800 / 480),  # orientation does not matter
        (100, 1000, 800, 1333, 1333 / 1000),  # 8000 > 1333: longer side -> 1333
        (800, 1333, 800, 1333, 1.0),
        (1000, 1000, 800, 1333, 0.8),  # downscaling
        (100, 100, 128, 256, 1.28),
    ],
)
def test_resize_scale_hand_computed(h, w, min_size, max_size, expected):
    # Reference: hand-computed torchvision rule; exact (the same float expression).
    assert resize_scale(h, w, min_size, max_size) == expected


@pytest.mark.parametrize(
    "h, w, scale, expected",
    [
        (480, 640, 800 / 480, (800, 1066)),
        (100, 1000, 1333 / 1000, (133, 1333)),
        (100, 100, 128 / 100, (128, 128)),  # 100 * 1.28 == 128.0 exactly
        (7, 5, 0.5, (3, 2)),
        (97, 97, 800 / 97, (799, 799)),  # float error kept, as torch does (see docstring)
    ],
)
def test_resized_size_hand_computed(h, w, scale, expected):
    # Reference: floor(h * scale), floor(w * scale) by hand; exact.
    assert resized_size(h, w, scale) == expected


def test_resized_size_errors():
    with pytest.raises(ValueError, match="empty side"):
        resized_size(3, 100, 0.1)
    with pytest.raises(ValueError, match="scale"):
        resized_size(3, 3, 0.0)
    with pytest.raises(ValueError, match="height"):
        resized_size(0, 3, 1.0)
    with pytest.raises(ValueError, match="min_size"):
        resize_scale(3, 3, 0, 10)


def _torch_output_size(torch, h, w, scale):
    x = torch.zeros(1, 1, h, w)
    y = torch.nn.functional.interpolate(
        x, scale_factor=scale, mode="nearest", recompute_scale_factor=True
    )
    return tuple(y.shape[2:])


def test_resized_size_matches_torch_output_size():
    # Reference: the output size of torch.nn.functional.interpolate(scale_factor=s,
    # recompute_scale_factor=True) (the same for every mode); exact. Includes the sizes whose
    # float product falls just below an integer (97 -> 799 for min_size 800).
    torch = _torch()
    cases = [(97, 97), (97, 98), (73, 149), (161, 162), (154, 311)]
    cases += [(h, w) for h in range(1, 200, 7) for w in (h, h + 1, 2 * h + 3)]
    for min_size, max_size in [(800, 1333), (128, 256), (37, 61)]:
        for h, w in cases:
            scale = resize_scale(h, w, min_size, max_size)
            assert resized_size(h, w, scale) == _torch_output_size(torch, h, w, scale), (
                min_size,
                max_size,
                h,
                w,
            )


# --------------------------------------------------------------------------- resize_image
@pytest.mark.parametrize("dtype, atol", [(np.float32, 1e-6), (np.float64, 1e-12)])
@pytest.mark.parametrize(
    "in_size, out_size",
    [((7, 5), (11, 13)), ((13, 17), (6, 9)), ((1, 1), (3, 4)), ((9, 9), (9, 4)), ((8, 6), (5, 5))],
)
def test_resize_image_matches_torch_bilinear(dtype, atol, in_size, out_size):
    # Reference: torch.nn.functional.interpolate(size=..., mode="bilinear",
    # align_corners=False); float32 atol 1e-6, float64 atol 1e-12.
    torch = _torch()
    rng = np.random.default_rng(0)
    x = rng.random((3, *in_size)).astype(dtype)
    out = resize_image(mm.tensor(x), out_size)
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(x)[None], size=out_size, mode="bilinear", align_corners=False
    )[0].numpy()
    assert out.shape == (3, *out_size)
    assert out.dtype == dtype
    np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=atol)


@pytest.mark.parametrize("dtype, atol", [(np.float32, 1e-6), (np.float64, 1e-12)])
def test_resize_image_matches_torchvision_scale_factor_path(dtype, atol):
    # Reference: torchvision's call, interpolate(scale_factor=s, recompute_scale_factor=True,
    # bilinear, align_corners=False); sizes exact, values float32 atol 1e-6 / float64 1e-12.
    torch = _torch()
    rng = np.random.default_rng(1)
    for h, w in [(13, 9), (10, 21), (7, 7)]:
        x = rng.random((3, h, w)).astype(dtype)
        scale = resize_scale(h, w, 17, 30)
        out = resize_image(mm.tensor(x), resized_size(h, w, scale))
        ref = torch.nn.functional.interpolate(
            torch.from_numpy(x)[None],
            scale_factor=scale,
            mode="bilinear",
            recompute_scale_factor=True,
            align_corners=False,
        )[0].numpy()
        assert out.shape == ref.shape
        np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=atol)


def test_resize_image_same_size_is_noop_and_bad_input_raises():
    img = mm.tensor(np.zeros((3, 4, 5), dtype=np.float32))
    assert resize_image(img, (4, 5)) is img
    with pytest.raises(ValueError, match=r"\[3, H, W\]"):
        resize_image(mm.tensor(np.zeros((1, 4, 5), dtype=np.float32)), (2, 2))
    with pytest.raises(ValueError, match="size"):
        resize_image(img, (0, 3))


# --------------------------------------------------------------------------- resize_boxes
def test_resize_boxes_hand_computed():
    # Reference: hand-computed x * new_w / w, y * new_h / h; exact (ratios are powers of 2).
    boxes = mm.tensor([[10.0, 20.0, 30.0, 40.0], [0.0, 0.0, 200.0, 100.0]])
    out = resize_boxes(boxes, (100, 200), (50, 400))
    np.testing.assert_array_equal(
        out.numpy(), np.array([[20, 10, 60, 20], [0, 0, 400, 50]], dtype=np.float32)
    )
    assert out.dtype == np.float32
    b64 = mm.tensor(np.array([[3.0, 3.0, 6.0, 9.0]]))
    out64 = resize_boxes(b64, (3, 3), (4, 5))
    assert out64.dtype == np.float64
    np.testing.assert_allclose(out64.numpy(), [[5.0, 4.0, 10.0, 12.0]], rtol=1e-15)


def test_resize_boxes_empty():
    out = resize_boxes(mm.zeros(0, 4), (10, 20), (30, 40))
    assert out.shape == (0, 4) and out.dtype == np.float32


def test_resize_boxes_matches_torchvision_formula():
    # Reference: torchvision.models.detection.transform.resize_boxes written out in torch
    # (float32 ratios, per-coordinate multiply); exact.
    torch = _torch()
    rng = np.random.default_rng(2)
    boxes = (rng.random((6, 4)) * 300).astype(np.float32)
    orig, new = (427, 640), (800, 1199)
    rh, rw = (
        torch.tensor(s, dtype=torch.float32) / torch.tensor(s0, dtype=torch.float32)
        for s, s0 in zip(new, orig)
    )
    tb = torch.from_numpy(boxes)
    ref = torch.stack((tb[:, 0] * rw, tb[:, 1] * rh, tb[:, 2] * rw, tb[:, 3] * rh), dim=1)
    np.testing.assert_array_equal(resize_boxes(mm.tensor(boxes), orig, new).numpy(), ref.numpy())


def test_resize_boxes_bad_shape():
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        resize_boxes(mm.zeros(3, 5), (1, 1), (2, 2))


# --------------------------------------------------------------------------- horizontal_flip
def _example(h=6, w=10):
    rng = np.random.default_rng(3)
    image = mm.tensor(rng.random((3, h, w)).astype(np.float32))
    masks = np.zeros((2, h, w), dtype=np.uint8)
    masks[0, 1:4, 2:5] = 1  # rows 1..3, columns 2..4 -> box (2, 1, 5, 4)
    masks[1, 0:6, 7:10] = 1  # columns 7..9 -> box (7, 0, 10, 6)
    target = {
        "boxes": mm.tensor([[2.0, 1.0, 5.0, 4.0], [7.0, 0.0, 10.0, 6.0]]),
        "labels": mm.tensor(np.array([1, 2], dtype=np.int64)),
        "masks": mm.tensor(masks),
        "crowd_boxes": mm.tensor([[0.5, 1.0, 3.25, 2.0]]),
        "image_id": 42,
    }
    return image, target


def _mask_box(mask):
    ys, xs = np.nonzero(mask)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_flip_hand_computed_and_mask_box_consistent():
    # Reference: hand-computed x1' = W - x2, x2' = W - x1 (W = 10) and the bounding box of
    # each flipped mask (no "+1" convention); exact.
    image, target = _example()
    new_image, new_target = horizontal_flip(image, target)
    np.testing.assert_array_equal(new_image.numpy(), image.numpy()[:, :, ::-1])
    np.testing.assert_array_equal(
        new_target["boxes"].numpy(), [[5.0, 1.0, 8.0, 4.0], [0.0, 0.0, 3.0, 6.0]]
    )
    np.testing.assert_array_equal(new_target["crowd_boxes"].numpy(), [[6.75, 1.0, 9.5, 2.0]])
    for mask, box in zip(new_target["masks"].numpy(), new_target["boxes"].numpy()):
        assert _mask_box(mask) == box.tolist()
    assert new_target["masks"].dtype == np.uint8
    assert new_target["boxes"].dtype == np.float32
    assert new_target["labels"] is target["labels"]
    assert new_target["image_id"] == 42


def test_flip_does_not_mutate_input():
    image, target = _example()
    before = {k: (v.numpy().copy() if isinstance(v, mm.Tensor) else v) for k, v in target.items()}
    image_before = image.numpy().copy()
    _, new_target = horizontal_flip(image, target)
    assert new_target is not target
    np.testing.assert_array_equal(image.numpy(), image_before)
    for k, v in before.items():
        got = target[k].numpy() if isinstance(target[k], mm.Tensor) else target[k]
        np.testing.assert_array_equal(got, v)


def test_flip_twice_is_identity():
    # Reference: the input itself; exact for the quarter-pixel example, atol 1e-5 (float32,
    # coordinates < 100) for random boxes.
    image, target = _example()
    img2, tgt2 = horizontal_flip(*horizontal_flip(image, target))
    np.testing.assert_array_equal(img2.numpy(), image.numpy())
    for key in ("boxes", "masks", "crowd_boxes"):
        np.testing.assert_array_equal(tgt2[key].numpy(), target[key].numpy())
    rng = np.random.default_rng(4)
    boxes = np.sort(rng.random((5, 2, 2)) * 97, axis=1).transpose(0, 2, 1).reshape(5, 4)
    random_target = {"boxes": mm.tensor(boxes.astype(np.float32))}
    img = mm.tensor(np.zeros((3, 5, 97), dtype=np.float32))
    _, back = horizontal_flip(*horizontal_flip(img, random_target))
    np.testing.assert_allclose(back["boxes"].numpy(), boxes, rtol=0, atol=1e-5)


def test_flip_empty_target():
    image = mm.tensor(np.ones((3, 4, 7), dtype=np.float32))
    target = {
        "boxes": mm.zeros(0, 4),
        "labels": mm.tensor(np.zeros(0, dtype=np.int64)),
        "masks": mm.tensor(np.zeros((0, 4, 7), dtype=np.uint8)),
        "crowd_boxes": mm.zeros(0, 4),
        "image_id": 1,
    }
    new_image, new_target = horizontal_flip(image, target)
    assert new_image.shape == (3, 4, 7)
    assert new_target["boxes"].shape == (0, 4)
    assert new_target["masks"].shape == (0, 4, 7)
    assert new_target["crowd_boxes"].shape == (0, 4)
    assert new_target["labels"].shape == (0,)


def test_flip_rejects_masks_of_other_width():
    image, target = _example()
    target["masks"] = mm.tensor(np.zeros((2, 6, 9), dtype=np.uint8))
    with pytest.raises(ValueError, match="masks"):
        horizontal_flip(image, target)


# --------------------------------------------------------------------------- batch_images
def test_batch_images_shapes_contents_padding():
    # Reference: the images themselves (top-left block) and zeros elsewhere; exact.
    rng = np.random.default_rng(5)
    arrays = [rng.random((3, h, w)).astype(np.float32) + 0.5 for h, w in [(40, 70), (65, 33)]]
    batch, sizes = batch_images([mm.tensor(a) for a in arrays])
    assert batch.shape == (2, 3, 96, 96)  # 65 -> 96, 70 -> 96
    assert batch.dtype == np.float32
    assert sizes == [(40, 70), (65, 33)]
    assert batch.is_leaf and not batch.requires_grad
    b = batch.numpy()
    for i, a in enumerate(arrays):
        h, w = a.shape[1:]
        np.testing.assert_array_equal(b[i, :, :h, :w], a)
        assert not b[i, :, h:, :].any() and not b[i, :, :, w:].any()


@pytest.mark.parametrize("size_divisible, expected", [(32, (64, 32)), (1, (33, 32)), (7, (35, 35))])
def test_batch_images_rounding(size_divisible, expected):
    images = [mm.zeros(3, 33, 10), mm.zeros(3, 5, 32)]
    batch, _ = batch_images(images, size_divisible=size_divisible)
    assert batch.shape[2:] == expected
    assert all(s % size_divisible == 0 for s in batch.shape[2:])


def test_batch_images_float64_and_single():
    img = mm.tensor(np.ones((3, 32, 64)))
    batch, sizes = batch_images([img])
    assert batch.shape == (1, 3, 32, 64) and batch.dtype == np.float64
    assert sizes == [(32, 64)]


@pytest.mark.parametrize(
    "images, match",
    [
        ([mm.zeros(3, 4, 4), mm.zeros(4, 4)], r"image 1 must have shape \[3, H, W\], got \(4, 4\)"),
        ([mm.zeros(1, 4, 4)], r"image 0 must have shape \[3, H, W\], got \(1, 4, 4\)"),
        ([mm.zeros(3, 4, 4), mm.zeros(3, 4, 4, dtype=mm.float64)], r"image 1 \(shape"),
        ([mm.zeros(3, 4, 4, dtype=mm.uint8)], "image 0.*floating point"),
        ([mm.zeros(3, 4, 4), np.zeros((3, 4, 4))], "image 1 must be a minimask Tensor"),
        ([], "at least one image"),
    ],
)
def test_batch_images_errors(images, match):
    with pytest.raises(ValueError, match=match):
        batch_images(images)


def test_batch_images_bad_size_divisible():
    with pytest.raises(ValueError, match="size_divisible"):
        batch_images([mm.zeros(3, 4, 4)], size_divisible=0)


# --------------------------------------------------------------------------- normalize
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normalize_matches_numpy(dtype):
    # Reference: NumPy (x - mean[:, None, None]) / std[:, None, None] in the image's dtype;
    # exact (the same two IEEE operations).
    rng = np.random.default_rng(6)
    x = rng.random((3, 5, 7)).astype(dtype)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    out = normalize(mm.tensor(x), mean, std)
    m = np.array(mean, dtype=dtype)[:, None, None]
    s = np.array(std, dtype=dtype)[:, None, None]
    assert out.dtype == dtype
    np.testing.assert_array_equal(out.numpy(), (x - m) / s)


def test_normalize_errors():
    with pytest.raises(ValueError, match=r"\[3, H, W\]"):
        normalize(mm.zeros(1, 4, 4), [0.0], [1.0])
    with pytest.raises(ValueError, match=r"\[3, H, W\]"):
        normalize(mm.zeros(4, 4), [0, 0, 0], [1, 1, 1])
    with pytest.raises(ValueError, match="3 numbers"):
        normalize(mm.zeros(3, 4, 4), [0, 0], [1, 1, 1])
    with pytest.raises(ValueError, match="zeros"):
        normalize(mm.zeros(3, 4, 4), [0, 0, 0], [1, 0, 1])


def test_normalize_is_differentiable():
    # Reference: d/dx (x - m) / s = 1 / s, by hand; float32 rtol 1e-6.
    x = mm.tensor(np.ones((3, 2, 2), dtype=np.float32), requires_grad=True)
    normalize(x, [0.1, 0.2, 0.3], [0.5, 2.0, 4.0]).sum().backward()
    expected = np.broadcast_to(np.array([2.0, 0.5, 0.25])[:, None, None], (3, 2, 2))
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-6)
