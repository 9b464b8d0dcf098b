"""Box regression targets: encode a box relative to a reference box, and decode it back.

torchvision.models.detection._utils.BoxCoder semantics. Boxes are (x1, y1, x2, y2) in pixels,
width = x2 - x1 (no "+1"). With the centre (px, py) and size (pw, ph) of a proposal and
(gx, gy), (gw, gh) of the box it should become:

    dx = wx * (gx - px) / pw        dy = wy * (gy - py) / ph
    dw = ww * log(gw / pw)          dh = wh * log(gh / ph)

The deltas do not depend on where the proposal is or how big it is, which is what lets one
regression head serve every box. The weights scale the targets to a similar range: (1, 1, 1, 1)
for the RPN, (10, 10, 5, 5) for the box head, whose proposals already lie close to their
boxes, so that its smaller deltas are scaled up (torchvision's and detectron2's weights).
"""

import math

import numpy as np

from minimask.autograd.ops import clamp, exp, log, stack

DEFAULT_XFORM_CLIP = math.log(1000.0 / 16)  # dw, dh cap: boxes at most 62.5x their reference


class BoxCoder:
    """encode(reference_boxes, proposals) -> deltas; decode(deltas, boxes) -> boxes.

    ``bbox_xform_clip`` caps dw and dh before exp() in ``decode``, so a wild prediction gives
    a box at most 1000/16 times larger than its reference instead of an overflow.
    """

    def __init__(self, weights, bbox_xform_clip=DEFAULT_XFORM_CLIP):
        self.weights = tuple(float(w) for w in weights)
        if len(self.weights) != 4:
            raise ValueError(f"BoxCoder: weights must be (wx, wy, ww, wh), got {weights!r}")
        self.bbox_xform_clip = bbox_xform_clip

    def encode(self, reference_boxes, proposals):
        """Deltas (N, 4) that turn each proposal (N, 4) into its reference box (N, 4).

        NumPy arrays in, a NumPy array out: that is how the RPN and the RoI heads call it,
        inside their target assignment, which runs on the host (a regression target needs
        no gradient). Tensors in, a Tensor out, by the same operations.
        """
        on_host = isinstance(proposals, np.ndarray)
        if isinstance(reference_boxes, np.ndarray) != on_host:
            raise TypeError(
                "BoxCoder.encode: reference_boxes and proposals must both be NumPy arrays or "
                f"both Tensors, got {type(reference_boxes).__name__} and "
                f"{type(proposals).__name__}"
            )
        if reference_boxes.shape != proposals.shape or proposals.shape[-1:] != (4,):
            raise ValueError(
                f"BoxCoder.encode: reference_boxes {reference_boxes.shape} and proposals "
                f"{proposals.shape} must both be (N, 4)"
            )
        logarithm = np.log if on_host else log
        wx, wy, ww, wh = self.weights
        pw = proposals[:, 2] - proposals[:, 0]
        ph = proposals[:, 3] - proposals[:, 1]
        px = proposals[:, 0] + 0.5 * pw
        py = proposals[:, 1] + 0.5 * ph
        gw = reference_boxes[:, 2] - reference_boxes[:, 0]
        gh = reference_boxes[:, 3] - reference_boxes[:, 1]
        gx = reference_boxes[:, 0] + 0.5 * gw
        gy = reference_boxes[:, 1] + 0.5 * gh
        dx = wx * (gx - px) / pw
        dy = wy * (gy - py) / ph
        dw = ww * logarithm(gw / pw)
        dh = wh * logarithm(gh / ph)
        deltas = (dx, dy, dw, dh)
        return np.stack(deltas, axis=1) if on_host else stack(deltas, dim=1)

    def decode(self, deltas, boxes):
        """Boxes from deltas (N, 4) or class-specific deltas (N, 4K) applied to boxes (N, 4):
        returns (N, 4) or (N, 4K) in the same layout (class k in columns 4k..4k+3).

        A composition of tensor operations, so gradients flow back to ``deltas`` (the
        predictions). dw, dh are clamped at ``bbox_xform_clip`` (no gradient past the clamp).
        """
        if deltas.ndim != 2 or deltas.shape[1] % 4 != 0 or boxes.shape != (deltas.shape[0], 4):
            raise ValueError(
                f"BoxCoder.decode: deltas must be (N, 4K) and boxes (N, 4), got "
                f"{deltas.shape} and {boxes.shape}"
            )
        boxes = boxes.to(deltas.dtype)
        wx, wy, ww, wh = self.weights
        widths = (boxes[:, 2] - boxes[:, 0])[:, None]  # (N, 1): broadcast over the K classes
        heights = (boxes[:, 3] - boxes[:, 1])[:, None]
        ctr_x = boxes[:, 0:1] + 0.5 * widths
        ctr_y = boxes[:, 1:2] + 0.5 * heights
        dx = deltas[:, 0::4] / wx  # (N, K)
        dy = deltas[:, 1::4] / wy
        dw = clamp(deltas[:, 2::4] / ww, max=self.bbox_xform_clip)
        dh = clamp(deltas[:, 3::4] / wh, max=self.bbox_xform_clip)
        pred_ctr_x = dx * widths + ctr_x
        pred_ctr_y = dy * heights + ctr_y
        half_w = 0.5 * exp(dw) * widths
        half_h = 0.5 * exp(dh) * heights
        x1, y1 = pred_ctr_x - half_w, pred_ctr_y - half_h
        x2, y2 = pred_ctr_x + half_w, pred_ctr_y + half_h
        corners = (x1, y1, x2, y2)
        return stack(corners, dim=2).flatten(1)  # (N, K, 4) -> (N, 4K)
