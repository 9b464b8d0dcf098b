"""What the drawing functions accept, turned into plain NumPy: Tensors or arrays in, boxes
as (N, 4) float64 and images as (H, W, 3) floats in [0, 1] out, with a clear error when the
shape is not one of those the docstrings promise."""

import numpy as np


def to_numpy(x):
    """A NumPy array from a minimask Tensor (or anything with ``.numpy()``), array or list;
    None stays None."""
    if x is None:
        return None
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "numpy") and callable(x.numpy):
        if hasattr(x, "detach"):
            x = x.detach()
        return np.asarray(x.numpy())
    return np.asarray(x)


def as_boxes(x, name):
    """(N, 4) float64 boxes (x1, y1, x2, y2) from a Tensor, array or list (one box of 4
    numbers becomes (1, 4), an empty input (0, 4)), or None; ``name`` is the argument's
    name for the error message."""
    x = to_numpy(x)
    if x is None:
        return None
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return np.zeros((0, 4))
    if x.ndim == 1 and x.shape[0] == 4:
        x = x[None]
    if x.ndim != 2 or x.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4) of (x1, y1, x2, y2), got {x.shape}")
    return x


def image_hwc(image):
    """An (H, W, 3) float image in [0, 1] from [3, H, W] / [1, H, W] floats in [0, 1],
    (H, W, 3) uint8 or floats, or a gray (H, W); a leading batch axis of 1 is dropped."""
    img = to_numpy(image)
    if img.ndim == 4 and img.shape[0] == 1:
        img = img[0]
    if img.ndim == 2:
        img = img[:, :, None]
    elif img.ndim == 3:
        channels_last = img.shape[2] in (1, 3, 4) and (
            img.dtype == np.uint8 or img.shape[0] not in (1, 3)
        )
        if not channels_last:
            if img.shape[0] not in (1, 3):
                raise ValueError(
                    f"image must be [3, H, W], [H, W, 3] or [H, W], got shape {img.shape}"
                )
            img = np.transpose(img, (1, 2, 0))
    else:
        raise ValueError(f"image must be [3, H, W], [H, W, 3] or [H, W], got shape {img.shape}")
    img = img[:, :, :3]
    if img.dtype == np.uint8:
        img = img.astype(np.float64) / 255.0
    else:
        img = np.clip(img.astype(np.float64), 0.0, 1.0)
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return img
