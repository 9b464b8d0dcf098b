"""Image and target transforms for Mask R-CNN, with the semantics of torchvision's
``GeneralizedRCNNTransform`` (resize, normalize, batch) and of the detection references'
``RandomHorizontalFlip``.

Sizes are ``(height, width)`` pairs of ints; boxes are ``(x1, y1, x2, y2)`` in pixels with
no "+1" (a mask covering columns ``c0..c1`` has ``x1 = c0``, ``x2 = c1 + 1``), as in
``minimask.data.coco``.

Resizing
--------
- ``resize_scale(h, w, min_size, max_size)``:
  ``scale = min(min_size / min(h, w), max_size / max(h, w))`` in Python floats (float64), the
  expression torchvision evaluates. It is ``min_size / min(h, w)`` (the shorter side becomes
  ``min_size``) unless the longer side would then exceed ``max_size``, in which case the
  longer side becomes ``max_size``.
- ``resized_size(h, w, scale)``: ``(floor(h * scale), floor(w * scale))`` evaluated in
  float64 with **no epsilon**. This is exactly the output size of
  ``torch.nn.functional.interpolate(scale_factor=scale, recompute_scale_factor=True)``, which
  torchvision calls. Choice: we match PyTorch bit for bit rather than "repair" float error,
  so a shape computed here is the shape torchvision gets. The consequence, inherited from
  torchvision, is that the shorter side can come out one pixel short: for ``h = 97`` and
  ``min_size = 800``, ``97 * (800 / 97) = 799.999...`` gives 799. (``100 * (128 / 100)`` is
  exactly 128.0, so that case gives 128.) An output side of 0 raises ``ValueError``.
- ``resize_image(image, size)``: bilinear, ``align_corners=False``, to ``size`` with
  ``minimask.nn.functional.interpolate`` on a ``[1, 3, H, W]`` view. Since it is given the
  size, the source coordinate of output index ``d`` is ``(d + 0.5) * in / out - 0.5``
  (clamped at 0), which is what ``recompute_scale_factor=True`` means in PyTorch. The
  result is differentiable; an unchanged size returns the input object itself.
- ``resize_boxes(boxes, original_size, new_size)``: ``x * (new_w / orig_w)``,
  ``y * (new_h / orig_h)`` (torchvision's ``resize_boxes``). The two ratios are computed in
  the boxes' dtype (float32 for float32 boxes, as torchvision does), then multiplied in.

Flipping
--------
``horizontal_flip(image, target)`` mirrors the image along its width ``W``; boxes become
``x1' = W - x2``, ``x2' = W - x1`` (y unchanged), masks are mirrored along their last axis,
``crowd_boxes`` are flipped like boxes. Every other key is copied unchanged (the values are
shared, not deep-copied). The input dict and tensors are not modified: new tensors and a new
dict are returned. Keys that are absent are simply not produced. Data are flipped on the host
(NumPy) and the results are new leaf tensors on the input's device: flipping is data
augmentation, not part of the graph.

Normalizing
-----------
``normalize(image, mean, std)``: ``(image - mean[:, None, None]) / std[:, None, None]``, with
``mean`` and ``std`` (three numbers each) converted to the image's dtype, so a float32 image
gives float32 (rounded exactly like PyTorch: a subtraction then a division). It is built
from minimask operations, so it is differentiable.

Batching
--------
``batch_images(images, size_divisible=32)`` zero-pads each ``[3, H, W]`` image at the bottom
and right to ``(Hp, Wp)``, the largest height and width in the batch each rounded *up* to a
multiple of ``size_divisible``, and stacks them into ``[N, 3, Hp, Wp]``; it also returns the
images' own sizes ``[(H, W), ...]`` (what the detector clips boxes to). The batch is
assembled with NumPy on the host and is a new **leaf** tensor: no gradient flows back to the
images (they are inputs, which never need one).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from minimask.autograd.factories import tensor, zeros
from minimask.autograd.grad_mode import no_grad
from minimask.autograd.tensor import Tensor
from minimask.nn import functional as F

__all__ = [
    "batch_images",
    "horizontal_flip",
    "normalize",
    "resize_boxes",
    "resize_image",
    "resize_scale",
    "resized_size",
]


def _positive_int(value, name: str) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _size_pair(size, name: str) -> tuple[int, int]:
    pair = tuple(size)
    if len(pair) != 2:
        raise ValueError(f"{name} must be a pair (height, width), got {size!r}")
    return _positive_int(pair[0], f"{name}[0]"), _positive_int(pair[1], f"{name}[1]")


def _check_image(image, name: str = "image") -> None:
    if not isinstance(image, Tensor):
        raise TypeError(f"{name} must be a minimask Tensor, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"{name} must have shape [3, H, W], got {image.shape}")
    if image.dtype.kind != "f":
        raise TypeError(f"{name} must be floating point, got {image.dtype}")


# --------------------------------------------------------------------------- resizing
def resize_scale(height: int, width: int, min_size: int, max_size: int) -> float:
    """The factor that makes the shorter side ``min_size`` unless the longer side would then
    exceed ``max_size`` (then the longer side becomes ``max_size``): torchvision's
    ``min(min_size / min(h, w), max_size / max(h, w))``."""
    height, width = _positive_int(height, "height"), _positive_int(width, "width")
    min_size, max_size = _positive_int(min_size, "min_size"), _positive_int(max_size, "max_size")
    return min(min_size / min(height, width), max_size / max(height, width))


def resized_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """``(floor(height * scale), floor(width * scale))`` in float64, exactly as
    ``torch.nn.functional.interpolate(scale_factor=scale, recompute_scale_factor=True)`` sizes
    its output (no epsilon: see the module docstring)."""
    height, width = _positive_int(height, "height"), _positive_int(width, "width")
    scale = float(scale)
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive finite number, got {scale!r}")
    new_h, new_w = math.floor(height * scale), math.floor(width * scale)
    if new_h < 1 or new_w < 1:
        raise ValueError(
            f"scale {scale} turns size ({height}, {width}) into ({new_h}, {new_w}), "
            "which has an empty side"
        )
    return new_h, new_w


def resize_image(image: Tensor, size) -> Tensor:
    """``image`` ``[3, H, W]`` resized bilinearly (``align_corners=False``) to ``size`` =
    ``(new_h, new_w)``; returns ``[3, new_h, new_w]``, or ``image`` itself if the size is
    unchanged."""
    _check_image(image)
    new_h, new_w = _size_pair(size, "size")
    _, height, width = image.shape
    if (new_h, new_w) == (height, width):
        return image
    out = F.interpolate(
        image.reshape(1, 3, height, width),
        size=(new_h, new_w),
        mode="bilinear",
        align_corners=False,
    )
    return out.reshape(3, new_h, new_w)


def resize_boxes(boxes: Tensor, original_size, new_size) -> Tensor:
    """``boxes`` ``[N, 4]`` (x1, y1, x2, y2) scaled from an image of ``original_size`` =
    ``(h, w)`` to one of ``new_size``: x times ``new_w / w``, y times ``new_h / h`` (ratios
    in the boxes' dtype). ``N`` may be 0."""
    if not isinstance(boxes, Tensor):
        raise TypeError(f"boxes must be a minimask Tensor, got {type(boxes).__name__}")
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape [N, 4], got {boxes.shape}")
    if boxes.dtype.kind != "f":
        raise TypeError(f"boxes must be floating point, got {boxes.dtype}")
    orig_h, orig_w = _size_pair(original_size, "original_size")
    new_h, new_w = _size_pair(new_size, "new_size")
    dtype = boxes.dtype.type
    ratio_h = dtype(new_h) / dtype(orig_h)
    ratio_w = dtype(new_w) / dtype(orig_w)
    ratios = np.array([ratio_w, ratio_h, ratio_w, ratio_h], dtype=boxes.dtype)
    return boxes * tensor(ratios, device=boxes.device)


# --------------------------------------------------------------------------- flipping
def _flip_boxes(boxes: Tensor, width: int, name: str) -> Tensor:
    if not isinstance(boxes, Tensor) or boxes.ndim != 2 or boxes.shape[1] != 4:
        shape = boxes.shape if isinstance(boxes, Tensor) else type(boxes).__name__
        raise ValueError(f"target[{name!r}] must be a Tensor of shape [N, 4], got {shape}")
    b = boxes.numpy()
    flipped = b.copy()
    flipped[:, 0] = b.dtype.type(width) - b[:, 2]
    flipped[:, 2] = b.dtype.type(width) - b[:, 0]
    return tensor(flipped, device=boxes.device)


def horizontal_flip(image: Tensor, target: dict) -> tuple[Tensor, dict]:
    """Mirror ``image`` ``[3, H, W]`` and its ``target`` left to right.

    ``boxes`` and ``crowd_boxes``: ``x1' = W - x2``, ``x2' = W - x1``; ``masks`` ``[N, H, W]``
    are mirrored along their width; other keys are copied unchanged. Returns a new image and a
    new dict (the inputs are not modified).
    """
    _check_image(image)
    width = image.shape[2]
    new_image = tensor(np.ascontiguousarray(image.numpy()[:, :, ::-1]), device=image.device)
    new_target = dict(target)
    for key in ("boxes", "crowd_boxes"):
        if key in target:
            new_target[key] = _flip_boxes(target[key], width, key)
    if "masks" in target:
        masks = target["masks"]
        if not isinstance(masks, Tensor) or masks.ndim != 3 or masks.shape[2] != width:
            shape = masks.shape if isinstance(masks, Tensor) else type(masks).__name__
            raise ValueError(
                f"target['masks'] must be a Tensor of shape [N, H, {width}] (the image's "
                f"width), got {shape}"
            )
        flipped = np.ascontiguousarray(masks.numpy()[:, :, ::-1])
        new_target["masks"] = tensor(flipped, device=masks.device)
    return new_image, new_target


# --------------------------------------------------------------------------- normalizing
def normalize(image: Tensor, mean, std) -> Tensor:
    """``(image - mean[:, None, None]) / std[:, None, None]`` for ``image`` ``[3, H, W]``;
    ``mean`` and ``std`` hold three numbers, taken in the image's dtype."""
    if not isinstance(image, Tensor):
        raise TypeError(f"image must be a minimask Tensor, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"normalize: image must have shape [3, H, W], got {image.shape}")
    if image.dtype.kind != "f":
        raise TypeError(f"normalize: image must be floating point, got {image.dtype}")
    mean, std = (v.numpy() if isinstance(v, Tensor) else v for v in (mean, std))
    mean_a = np.asarray(mean, dtype=np.float64).reshape(-1)
    std_a = np.asarray(std, dtype=np.float64).reshape(-1)
    if mean_a.shape != (3,) or std_a.shape != (3,):
        raise ValueError(
            f"normalize: mean and std must hold 3 numbers, got {mean_a.size} and {std_a.size}"
        )
    if not np.all(std_a != 0):
        raise ValueError(f"normalize: std must not contain zeros, got {std_a.tolist()}")
    mean_t = tensor(mean_a.astype(image.dtype).reshape(3, 1, 1), device=image.device)
    std_t = tensor(std_a.astype(image.dtype).reshape(3, 1, 1), device=image.device)
    return (image - mean_t) / std_t


# --------------------------------------------------------------------------- batching
def batch_images(images, size_divisible: int = 32) -> tuple[Tensor, list[tuple[int, int]]]:
    """Zero-pad ``images`` (a sequence of ``[3, H, W]`` float tensors of one dtype and
    device) at the bottom/right to the batch's largest height and width, each rounded up to
    a multiple of ``size_divisible``, and stack them: ``(batch [N, 3, Hp, Wp], [(H, W),
    ...])``. The batch is a new leaf tensor (no gradient flows back to the images)."""
    size_divisible = _positive_int(size_divisible, "size_divisible")
    images = list(images)
    if not images:
        raise ValueError("batch_images: needs at least one image")
    first = images[0]
    for i, img in enumerate(images):
        if not isinstance(img, Tensor):
            raise ValueError(
                f"batch_images: image {i} must be a minimask Tensor, got {type(img).__name__}"
            )
        if img.ndim != 3 or img.shape[0] != 3:
            raise ValueError(f"batch_images: image {i} must have shape [3, H, W], got {img.shape}")
        if img.dtype.kind != "f":
            raise ValueError(
                f"batch_images: image {i} (shape {img.shape}) must be floating point, "
                f"got {img.dtype}"
            )
        if img.dtype != first.dtype:
            raise ValueError(
                f"batch_images: image {i} (shape {img.shape}) has dtype {img.dtype}, "
                f"image 0 has {first.dtype}"
            )
        if img.device != first.device:
            raise ValueError(
                f"batch_images: image {i} (shape {img.shape}) is on {img.device}, "
                f"image 0 on {first.device}"
            )
    image_sizes = [(int(img.shape[1]), int(img.shape[2])) for img in images]
    max_h = max(h for h, _ in image_sizes)
    max_w = max(w for _, w in image_sizes)
    pad_h = -(-max_h // size_divisible) * size_divisible
    pad_w = -(-max_w // size_divisible) * size_divisible
    # padded where the images are: on a GPU, one copy kernel per image instead of a copy
    # of each image to the host and of the batch back
    batch = zeros((len(images), 3, pad_h, pad_w), dtype=first.dtype, device=first.device)
    with no_grad():
        for i, ((h, w), img) in enumerate(zip(image_sizes, images)):
            batch[i, :, :h, :w] = img.detach()
    return batch, image_sizes
