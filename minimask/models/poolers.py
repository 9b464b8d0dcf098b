"""Multi-scale RoIAlign: pool every box from the FPN level that suits its size.

torchvision.ops.MultiScaleRoIAlign semantics, with two stated differences:

1. The level -> stride rule is given, not inferred: level k (k_min..k_max, P2..P5) has
   stride 2**k, so it is pooled with ``spatial_scale = 1 / 2**k`` (torchvision infers the
   scale of each map as 2**round(log2(feature_size / image_size)), which is the same number
   for an FPN whose level k is the input downsampled k times).
2. RoIAlign runs with ``aligned=True`` (the half-pixel shift of detectron2, which puts a
   box edge on the pixel boundary it names); torchvision's pooler uses aligned=False.

For box b = (x1, y1, x2, y2) the level is (minimask.models.level_mapper, FPN paper eq. 1)

    k(b) = clamp(floor(canonical_level + log2(sqrt(w * h) / canonical_size)), k_min, k_max)

and the output row i is ``roi_align(features[k(b_i) - k_min], b_i, output_size,
1 / 2**k(b_i), sampling_ratio, aligned=True)``. Rows come back in the input order: all
boxes of image 0, then all boxes of image 1, ... (the order of ``torch.cat(boxes)``).

The paper's Table 2c ablation swaps the pooling: ``method="warp"`` (RoIWarp: the box
rounded to the level's grid, then sampled as RoIAlign with aligned=False) or
``method="pool"`` (RoIPool: rounded box, rounded bins, max). The level rule is the same.

The pooler has no parameters. It is differentiable w.r.t. the feature maps (each level
only gets gradient from the boxes assigned to it); the boxes get no gradient.
"""

import numpy as np

from minimask.autograd.factories import tensor
from minimask.autograd.ops import cat
from minimask.models.level_mapper import level_for_boxes
from minimask.ops.roi_align import roi_align
from minimask.ops.roi_pool import roi_pool
from minimask.ops.roi_warp import roi_warp

POOLING_METHODS = ("align", "warp", "pool")


class MultiScaleRoIAlign:
    """``MultiScaleRoIAlign(output_size, sampling_ratio=2, canonical_size=224,
    canonical_level=4, k_min=2, k_max=5, method="align")``; see the module docstring.

    ``canonical_size`` is a parameter so a model on small inputs can scale it with its
    input size (``MaskRCNNConfig.scaled_to`` does, with the anchor sizes).
    """

    def __init__(
        self,
        output_size,
        sampling_ratio=2,
        canonical_size=224,
        canonical_level=4,
        k_min=2,
        k_max=5,
        method="align",
    ):
        if method not in POOLING_METHODS:
            raise ValueError(
                f"MultiScaleRoIAlign: method must be one of {POOLING_METHODS}, got {method!r}"
            )
        self.method = method
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        self.output_size = tuple(int(v) for v in output_size)
        self.sampling_ratio = int(sampling_ratio)
        self.canonical_size = float(canonical_size)
        self.canonical_level = int(canonical_level)
        self.k_min, self.k_max = int(k_min), int(k_max)

    def __repr__(self):
        return (
            f"MultiScaleRoIAlign(output_size={self.output_size}, "
            f"sampling_ratio={self.sampling_ratio}, canonical_size={self.canonical_size}, "
            f"levels={self.k_min}..{self.k_max}, method={self.method!r})"
        )

    def __call__(self, features, boxes, image_size=None):
        """Pool ``boxes`` (list of per-image (L_i, 4) Tensors) from ``features`` (list of
        (N, C, H_k, W_k) Tensors for levels k_min..k_max) -> (sum L_i, C, PH, PW).

        ``image_size`` (H, W) is accepted for torchvision's call signature; it is not
        needed because the stride of level k is taken as 2**k.
        """
        n_levels = self.k_max - self.k_min + 1
        if len(features) != n_levels:
            raise ValueError(
                f"MultiScaleRoIAlign: expected {n_levels} feature maps (levels "
                f"{self.k_min}..{self.k_max}), got {len(features)}"
            )
        # Host copy of all boxes as rois (K, 5) rows (image_index, x1, y1, x2, y2). Each
        # level's rows stay on the host: the RoI op checks its boxes on the host and copies
        # them to the feature map's device once (minimask/ops/_roi_format.py).
        parts = [b.numpy().astype(np.float64).reshape(-1, 4) for b in boxes]
        coords = np.concatenate(parts + [np.zeros((0, 4))])
        image_of_row = np.concatenate([np.full(len(p), i) for i, p in enumerate(parts)] + [[]])
        rois = np.concatenate([image_of_row[:, None], coords], axis=1)

        levels = level_for_boxes(
            coords,
            k_min=self.k_min,
            k_max=self.k_max,
            canonical_size=self.canonical_size,
            canonical_level=self.canonical_level,
        )

        pooled, order = [], []
        for k, feature in zip(range(self.k_min, self.k_max + 1), features):
            rows = np.flatnonzero(levels == k)
            if len(rows) == 0:
                continue
            level_rois = tensor(rois[rows])  # float64: the exact coordinates
            pooled.append(self._pool(feature, level_rois, 1.0 / 2**k))
            order.append(rows)
        if not pooled:  # no boxes at all: an empty result with the right shape
            empty = tensor(np.zeros((0, 5)))
            return self._pool(features[0], empty, 1.0 / 2**self.k_min)
        # pooled rows are grouped by level; row j of the concatenation is box order[j], so
        # box i is row inverse[i] with inverse = argsort(order).
        order = np.concatenate(order)
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        stacked = pooled[0] if len(pooled) == 1 else cat(pooled, 0)
        return stacked[inverse]

    def _pool(self, feature, rois, spatial_scale):
        """One level's pooling by ``self.method``."""
        if self.method == "pool":
            return roi_pool(feature, rois, self.output_size, spatial_scale=spatial_scale)
        if self.method == "warp":
            return roi_warp(
                feature,
                rois,
                self.output_size,
                spatial_scale=spatial_scale,
                sampling_ratio=self.sampling_ratio,
            )
        return roi_align(
            feature,
            rois,
            self.output_size,
            spatial_scale=spatial_scale,
            sampling_ratio=self.sampling_ratio,
            aligned=True,
        )
