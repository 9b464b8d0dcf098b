"""Reference solutions of lesson 05's exercises (lessons/exercises/lesson05.py checks them)."""

import numpy as np


def group_norm(x, num_groups, weight, bias, eps=1e-5):
    """Split the C channels of every sample into num_groups groups of C / G channels, bring
    each (sample, group) to mean 0 and variance 1 (the biased variance, plus eps), then scale
    and shift each channel by its own weight and bias."""
    n, c = x.shape[:2]
    groups = x.reshape(n, num_groups, -1)  # (N, G, C/G * spatial): one row per (sample, group)
    mean = groups.mean(axis=2, keepdims=True)
    var = groups.var(axis=2, keepdims=True)  # biased: divides by the count, not count - 1
    normalised = ((groups - mean) / np.sqrt(var + eps)).reshape(x.shape)
    per_channel = (1, c) + (1,) * (x.ndim - 2)
    return normalised * weight.reshape(per_channel) + bias.reshape(per_channel)


def block_parameters(in_channels, out_channels, stride):
    """conv1 3x3 (in -> out), gn1, conv2 3x3 (out -> out), gn2, and, when the shape changes,
    the 1x1 downsample conv (in -> out) with its GN. No conv has a bias; a GroupNorm has a
    weight and a bias per channel."""
    count = 9 * in_channels * out_channels + 2 * out_channels
    count += 9 * out_channels * out_channels + 2 * out_channels
    if stride != 1 or in_channels != out_channels:
        count += in_channels * out_channels + 2 * out_channels
    return count


def backbone_parameters(stage_channels, blocks_per_stage, in_channels=3):
    """The stem (conv 3x3 in -> stage_channels[0], GN), then each stage: a first block with
    stride 2 from the previous stage's channels, and blocks - 1 blocks of stride 1."""
    stem = stage_channels[0]
    count = 9 * in_channels * stem + 2 * stem
    channels = stem
    for out_channels, blocks in zip(stage_channels, blocks_per_stage):
        count += block_parameters(channels, out_channels, 2)
        count += (blocks - 1) * block_parameters(out_channels, out_channels, 1)
        channels = out_channels
    return count


def upsample_nearest(x, size):
    """Every pixel of (N, C, h, w) copied into a 2 x 2 block, cut to size = (H, W), where
    H is 2h or 2h - 1 (and W 2w or 2w - 1): what nearest interpolation to that size does."""
    height, width = size
    return x.repeat(2, axis=2).repeat(2, axis=3)[:, :, :height, :width]


def top_down(c_maps, lateral_weights, lateral_biases):
    """inner_coarsest = lateral(c_coarsest); then, finer and finer,
    inner_k = lateral_k(c_k) + upsample_nearest(inner_{k+1}, size of c_k).
    A 1x1 convolution is a matrix product over the channels, plus the bias."""

    def lateral(x, weight, bias):
        return np.einsum("dc,nchw->ndhw", weight[:, :, 0, 0], x) + bias[None, :, None, None]

    inner = lateral(c_maps[-1], lateral_weights[-1], lateral_biases[-1])
    inners = [inner]
    for level in range(len(c_maps) - 2, -1, -1):
        here = lateral(c_maps[level], lateral_weights[level], lateral_biases[level])
        inner = here + upsample_nearest(inner, here.shape[-2:])
        inners.insert(0, inner)
    return inners


def mask_loss_by_hand(mask_logits, labels, goal):
    """Pick, for every positive RoI, the logit map of its class (channel label - 1); binary
    cross-entropy with logits in the stable form max(z, 0) - z t + log(1 + exp(-|z|));
    the mean over the P x M x M cells."""
    chosen = mask_logits[np.arange(len(labels)), np.asarray(labels) - 1]  # (P, M, M)
    loss = np.maximum(chosen, 0.0) - chosen * goal + np.log1p(np.exp(-np.abs(chosen)))
    return loss.mean()
