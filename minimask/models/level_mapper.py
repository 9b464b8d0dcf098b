"""Which FPN level a region of interest is pooled from (Mask R-CNN / FPN paper, eq. 1).

    k = clamp(floor(canonical_level + log2(sqrt(area) / canonical_size + eps)), k_min, k_max)

A 224 x 224 box (the ImageNet size) goes to P4; each halving of its side goes one level
finer, each doubling one coarser: small boxes are pooled from high-resolution maps.
``MaskRCNNConfig.scaled_to`` scales ``canonical_size`` with the model's input size.

This is maskrcnn-benchmark's form (eps inside the log); torchvision's LevelMapper adds eps
after the log2 instead and returns k - k_min. Both agree except within ~1e-6 of a level
boundary.
"""

import numpy as np

from minimask.autograd.factories import tensor


def level_for_boxes(boxes, k_min=2, k_max=5, canonical_size=224, canonical_level=4, eps=1e-6):
    """FPN level k (int64, values in [k_min, k_max]) of each box (N, 4): a NumPy array
    (N,) for a NumPy array, as the pooler calls it on its host copy of the boxes, or a
    Tensor (N,) on the boxes' device for a Tensor.

    Computed on the host in float64 (a routing decision: no gradient). A box of zero area
    goes to k_min.
    """
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"level_for_boxes: boxes must be (N, 4), got {boxes.shape}")
    on_host = isinstance(boxes, np.ndarray)
    host = (boxes if on_host else boxes.numpy()).astype(np.float64)
    area = (host[:, 2] - host[:, 0]) * (host[:, 3] - host[:, 1])
    scale = np.sqrt(np.maximum(area, 0.0))
    k = np.floor(canonical_level + np.log2(scale / canonical_size + eps))
    k = np.clip(k, k_min, k_max).astype(np.int64)
    return k if on_host else tensor(k, device=boxes.device)
