"""Reference solutions of lesson 07's exercises (lessons/exercises/lesson07.py checks them)."""

import numpy as np

import minimask
from minimask.ops import roi_align


def decode(deltas, boxes, weights, clip):
    """Boxes (N, 4K) from deltas (N, 4K) applied to boxes (N, 4): class k's deltas are
    columns 4k..4k+3. Divide by the weights, clamp dw and dh from above at clip, then move
    the centre by (dx w, dy h) and scale the size by (e^dw, e^dh)."""
    wx, wy, ww, wh = weights
    widths = (boxes[:, 2] - boxes[:, 0])[:, None]  # (N, 1): broadcast over the K classes
    heights = (boxes[:, 3] - boxes[:, 1])[:, None]
    ctr_x = boxes[:, 0:1] + 0.5 * widths
    ctr_y = boxes[:, 1:2] + 0.5 * heights
    dx, dy = deltas[:, 0::4] / wx, deltas[:, 1::4] / wy
    dw = np.minimum(deltas[:, 2::4] / ww, clip)
    dh = np.minimum(deltas[:, 3::4] / wh, clip)
    x = ctr_x + dx * widths
    y = ctr_y + dy * heights
    half_w, half_h = 0.5 * np.exp(dw) * widths, 0.5 * np.exp(dh) * heights
    out = np.stack([x - half_w, y - half_h, x + half_w, y + half_h], axis=2)  # (N, K, 4)
    return out.reshape(len(boxes), -1)


def canonical_size_for(min_size):
    """The paper's 224 scaled as the anchors are: 224 * min_size / 512."""
    return 224.0 * min_size / 512


def fpn_level(boxes, canonical_size, canonical_level=4, k_min=2, k_max=5):
    """floor(k0 + log2(sqrt(wh) / s0)), clamped to [k_min, k_max]; zero area gives k_min."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.sqrt(np.maximum(w * h, 0.0))
    with np.errstate(divide="ignore"):  # log2(0) = -inf, clamped to k_min
        k = np.floor(canonical_level + np.log2(side / canonical_size))
    return np.clip(k, k_min, k_max).astype(np.int64)


def mask_target(gt_mask, box, mask_scale, size=28):
    """The object's mask resampled into the box: the box (model pixels) times mask_scale is
    the box in the mask's pixels; roi_align with aligned=True and the adaptive sampling
    ratio, one box on a one-channel map."""
    sx, sy = mask_scale
    x1, y1, x2, y2 = box
    rois = np.array([[0.0, x1 * sx, y1 * sy, x2 * sx, y2 * sy]])
    mask = minimask.tensor(np.asarray(gt_mask, dtype=np.float32)[None, None])
    with minimask.no_grad():
        out = roi_align(
            mask, minimask.tensor(rois), size, spatial_scale=1.0, sampling_ratio=-1, aligned=True
        )
    return out.numpy()[0, 0]


def mask_loss_gradient(mask_logits, labels, targets):
    """d L_sigmoid / d mask_logits (P, K, M, M): (sigmoid(x) - t) / (P M^2) on each RoI's
    class map (labels - 1), 0 on the other maps, which the loss does not read."""
    count, _, m, _ = mask_logits.shape
    rows, channels = np.arange(count), np.asarray(labels) - 1
    x = mask_logits[rows, channels]  # (P, M, M)
    gradient = np.zeros_like(mask_logits)
    gradient[rows, channels] = (1.0 / (1.0 + np.exp(-x)) - targets) / (count * m * m)
    return gradient
