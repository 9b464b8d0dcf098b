"""Reference solutions of lesson 12's exercises (lessons/exercises/lesson12.py checks them)."""

import numpy as np

import minimask
from minimask.ops import roi_align


def roi_warp_by_hand(feature, box, output_size, spatial_scale, sampling_ratio):
    """RoIWarp of one box on a 2-D map: the box scaled to the map and rounded half away
    from zero (C's round), then RoIAlign of the rounded box at scale 1 without the
    half-pixel shift."""
    scaled = np.asarray(box, np.float64) * spatial_scale
    rounded = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)
    return roi_align(
        minimask.tensor(np.asarray(feature, np.float64)[None, None]),
        minimask.tensor(np.concatenate([[0.0], rounded])[None]),
        output_size,
        spatial_scale=1.0,
        sampling_ratio=sampling_ratio,
        aligned=False,
    ).numpy()[0, 0]


def softmax_mask_loss(mask_logits, labels, targets):
    """Mean over all P x M x M cells of -log softmax at each cell's class: labels[p] where
    the target is >= 0.5, the background 0 elsewhere. The maximum is subtracted before
    the exponentials (log-sum-exp), so large logits do not overflow."""
    classes = np.where(targets >= 0.5, labels[:, None, None], 0)  # (P, M, M)
    top = mask_logits.max(axis=1, keepdims=True)
    log_total = top[:, 0] + np.log(np.exp(mask_logits - top).sum(axis=1))  # (P, M, M)
    picked = np.take_along_axis(mask_logits, classes[:, None], axis=1)[:, 0]
    return float(np.mean(log_total - picked))


def mask_probabilities(mask_logits, labels, mask_loss, class_agnostic):
    """(D, M, M): each detection's mask probabilities for its label. Sigmoid maps: class y
    is map y - 1 (map 0 when class-agnostic). Softmax maps: a softmax over the maps, then
    class y's map y (the background is map 0; class-agnostic: the object map 1)."""
    rows = np.arange(len(labels))
    if mask_loss == "softmax":
        shifted = np.exp(mask_logits - mask_logits.max(axis=1, keepdims=True))
        probabilities = shifted / shifted.sum(axis=1, keepdims=True)
        channel = np.ones_like(labels) if class_agnostic else labels
    else:
        probabilities = 1.0 / (1.0 + np.exp(-mask_logits))
        channel = np.zeros_like(labels) if class_agnostic else labels - 1
    return probabilities[rows, channel]
