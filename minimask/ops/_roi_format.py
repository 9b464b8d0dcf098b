"""Argument checks shared by the RoI operations, and the box -> rois conversion.

The RoI operations take their boxes in either of torchvision's two forms:

    a Tensor (K, 5)            rows (batch_index, x1, y1, x2, y2)
    a list of N Tensors (L, 4) rows (x1, y1, x2, y2); list entry i holds the boxes of image i

and turn them into one "rois" array (K, 5) of float64 rows (batch_index, x1, y1, x2, y2),
the form the kernels read. Boxes are in image pixels, width = x2 - x1 (no "+1").

Every check runs here, in Python, before any kernel: a kernel given a NaN coordinate or a
batch index past the end would return a wrong number (or read outside the feature map)
without a word. The checks read the boxes on the host, so the boxes may live on either
device: boxes already on the host (a CPU Tensor beside a CUDA feature map, as the FPN
pooler passes them) are not copied back from the GPU, and the rois go to the feature
map's device in one copy.
"""

import numbers

import numpy as np

from minimask.autograd.device import backend_for
from minimask.autograd.tensor import Tensor

FEATURE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_feature_map(name, input):
    """``input`` must be a float32 or float64 Tensor (N, C, H, W) with H, W >= 1."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}: input must be a Tensor, got {type(input).__name__}")
    if input.ndim != 4:
        raise ValueError(f"{name}: input must be 4-d (N, C, H, W), got shape {input.shape}")
    if input.dtype not in FEATURE_DTYPES:
        raise TypeError(
            f"{name}: input (the feature map) must be float32 or float64, got {input.dtype}"
        )
    if input.shape[2] < 1 or input.shape[3] < 1:
        raise ValueError(f"{name}: input has an empty feature map, shape {input.shape}")


def output_pair(name, output_size):
    """``output_size`` (an int or an (h, w) pair of positive ints) as a pair."""
    pair = (output_size, output_size) if isinstance(output_size, numbers.Integral) else output_size
    try:
        pair = tuple(pair)
    except TypeError:
        pair = ()
    if len(pair) != 2 or not all(isinstance(v, numbers.Integral) and v >= 1 for v in pair):
        raise ValueError(
            f"{name}: output_size must be a positive int or a pair of positive ints, "
            f"got {output_size!r}"
        )
    return int(pair[0]), int(pair[1])


def check_spatial_scale(name, spatial_scale):
    """``spatial_scale`` (feature cells per image pixel, e.g. 1/16) as a positive float."""
    if not isinstance(spatial_scale, numbers.Real) or not 0 < spatial_scale < np.inf:
        raise ValueError(
            f"{name}: spatial_scale must be a positive finite number, got {spatial_scale!r}"
        )
    return float(spatial_scale)


def _host_boxes(name, boxes, columns, label):
    """A float64 host copy of a Tensor of shape (rows, columns), or a shape error."""
    if not isinstance(boxes, Tensor) or boxes.ndim != 2 or boxes.shape[1] != columns:
        if isinstance(boxes, Tensor):
            what = f"a Tensor of shape {boxes.shape}"
        else:
            what = f"a {type(boxes).__name__}"
        raise ValueError(
            f"{name}: boxes must be a Tensor of shape (K, 5) with rows "
            f"(batch_index, x1, y1, x2, y2), or a list of Tensors of shape (L, 4) with rows "
            f"(x1, y1, x2, y2); {label} is {what}"
        )
    if boxes.dtype.kind not in "iuf":
        raise TypeError(f"{name}: {label} must hold numbers, got dtype {boxes.dtype}")
    return boxes.numpy().astype(np.float64)


def check_box_coordinates(name, coords, labels):
    """Raise if a row (x1, y1, x2, y2) of ``coords`` is not finite or has x2 < x1 or y2 < y1.

    ``labels(i)`` names row i in the message (for example "box boxes[3]").
    """
    bad = ~np.isfinite(coords).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name}: {labels(i)} has a NaN or infinite coordinate: "
            f"(x1, y1, x2, y2) = {tuple(coords[i].tolist())}"
        )
    bad = (coords[:, 2] < coords[:, 0]) | (coords[:, 3] < coords[:, 1])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name}: {labels(i)} has x2 < x1 or y2 < y1: "
            f"(x1, y1, x2, y2) = {tuple(coords[i].tolist())} (boxes are (x1, y1, x2, y2) "
            "with x1 <= x2 and y1 <= y2)"
        )


def boxes_to_rois(name, boxes, input):
    """The checked rois (K, 5) float64 of ``boxes`` as a Tensor on ``input``'s device.

    ``boxes`` is a Tensor (K, 5) or a list/tuple of per-image Tensors (L, 4) (module
    docstring); ``input`` is the feature map (N, C, H, W) they index into.
    """
    batch = input.shape[0]
    if isinstance(boxes, (list, tuple)):
        if len(boxes) > batch:
            raise ValueError(
                f"{name}: boxes is a list of {len(boxes)} Tensors (one per image), but input "
                f"holds only {batch} images (shape {input.shape})"
            )
        parts = [_host_boxes(name, b, 4, f"boxes[{i}]") for i, b in enumerate(boxes)]
        image_of_row = np.concatenate([np.full(len(p), i) for i, p in enumerate(parts)] + [[]])
        row_in_image = np.concatenate([np.arange(len(p)) for p in parts] + [[]])
        coords = np.concatenate(parts + [np.zeros((0, 4))])

        def label(i):
            return f"box boxes[{int(image_of_row[i])}][{int(row_in_image[i])}]"

        check_box_coordinates(name, coords, label)
        rois = np.concatenate([image_of_row[:, None], coords], axis=1)
    else:
        rois = _host_boxes(name, boxes, 5, "boxes")

        def label(i):
            return f"box boxes[{i}]"

        check_box_coordinates(name, rois[:, 1:], label)
        index = rois[:, 0]
        bad = ~((index == np.round(index)) & (index >= 0) & (index < batch))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{name}: box boxes[{i}] has batch index {float(index[i])}, which is not an "
                f"integer in [0, {batch}) (input has {batch} images, shape {input.shape}); "
                "rows are (batch_index, x1, y1, x2, y2)"
            )
    rois = np.ascontiguousarray(rois, dtype=np.float64).reshape(-1, 5)
    return Tensor(backend_for(input.device).asarray(rois), input.device)
