"""Checkers of lesson 05 (the model: backbone, FPN, heads, losses). References: minimask
itself (``minimask.nn.functional.group_norm``, the ``BasicBlock``, ``ResNetGN`` and ``FPN``
modules and their parameters, ``F.interpolate``, ``RoIHeads.mask_loss``), and, independent of
it, PyTorch (``torch.nn.functional.group_norm``, ``conv2d``, ``interpolate`` and
``binary_cross_entropy_with_logits``, and torch modules built to the same plan) and hand
computations. Values are float64 and compared to 1e-12 (sums of a few hundred terms of order
1 err by ~1e-14); parameter counts (integers) and nearest-neighbour copies exactly."""

import numpy as np
import torch
import torch.nn.functional as torch_F

import minimask
import minimask.nn.functional as F
from exercises import Wrong, exercise
from minimask.models import MaskRCNNConfig, RoIHeads
from minimask.models.backbone import BasicBlock, ResNetGN
from minimask.models.fpn import FPN


def _count(module):
    """The number of parameter values of a minimask module."""
    return sum(int(np.prod(p.shape)) for p in module.parameters())


@exercise("05.1", "GroupNorm's forward in NumPy", "group_norm")
def check_group_norm(group_norm):
    """A hand case first: a group whose values are all equal has variance 0, so its output
    is the bias; two channels 0 and 2 in one group give -1 and +1 (times sqrt(1 / (1 + eps))).
    Then random float64 inputs of shapes (N, C, H, W), (N, C, L) and (N, C), with 1 group,
    C groups and in between, random weight and bias, eps 1e-5 and 1e-3, against
    minimask.nn.functional.group_norm and torch.nn.functional.group_norm: 1e-12. Last, the
    property that lets the backbone train on batches of one or two images: changing image 1
    leaves image 0's output unchanged (exactly)."""
    x = np.zeros((1, 2, 2, 2))
    x[0, 1] = 2.0  # one group of 8 values: four 0s and four 2s, mean 1, variance 1
    weight, bias = np.array([1.0, 3.0]), np.array([0.5, -1.0])
    got = np.asarray(group_norm(x.copy(), 1, weight, bias, 1e-5))
    scale = 1 / np.sqrt(1 + 1e-5)
    want = np.stack([np.full((2, 2), 0.5 - scale), np.full((2, 2), -1.0 + 3 * scale)])[None]
    if got.shape != want.shape or np.abs(got - want).max() > 1e-12:
        raise Wrong(
            f"channels 0 (all 0) and 1 (all 2) in one group, weight {weight.tolist()}, bias "
            f"{bias.tolist()}: got {np.round(got, 6).ravel().tolist()}, want "
            f"{np.round(want, 6).ravel().tolist()} (mean 1, biased variance 1, so the values "
            f"normalise to -1 and +1 before the weight and bias)"
        )
    got = np.asarray(group_norm(np.full((1, 4, 3), 7.0), 2, np.ones(4), np.arange(4.0), 1e-5))
    if np.abs(got - np.arange(4.0)[None, :, None]).max() > 1e-12:
        raise Wrong(
            f"a constant input (all 7): got {np.round(got, 6).tolist()}, want every channel "
            f"equal to its bias 0, 1, 2, 3 (x - mean is 0 where the group is constant)"
        )
    rng = np.random.default_rng(50)
    cases = [((2, 8, 5, 6), 4, 1e-5), ((2, 8, 5, 6), 1, 1e-5), ((2, 8, 5, 6), 8, 1e-3)]
    cases += [((3, 6, 7), 3, 1e-5), ((4, 12), 6, 1e-5), ((1, 32, 4, 3), 8, 1e-5)]
    for shape, groups, eps in cases:
        x = rng.standard_normal(shape) * 3 + 1
        weight, bias = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
        got = np.asarray(group_norm(x.copy(), groups, weight.copy(), bias.copy(), eps))
        mine = F.group_norm(
            minimask.tensor(x), groups, minimask.tensor(weight), minimask.tensor(bias), eps
        ).numpy()
        theirs = torch_F.group_norm(
            torch.from_numpy(x), groups, torch.from_numpy(weight), torch.from_numpy(bias), eps
        ).numpy()
        where = f"input {shape}, {groups} groups, eps {eps}"
        if got.shape != x.shape:
            raise Wrong(f"{where}: got shape {got.shape}, want {x.shape}")
        for name, want in (("minimask's F.group_norm", mine), ("torch's group_norm", theirs)):
            error = np.abs(got - want).max()
            if error > 1e-12:
                index = np.unravel_index(np.abs(got - want).argmax(), x.shape)
                raise Wrong(
                    f"{where}: at {tuple(int(i) for i in index)} got {got[index]:.8f}, {name} "
                    f"gives {want[index]:.8f} (largest difference {error:.2e}; the variance is "
                    f"the biased one, over the C/G channels and every position of the group)"
                )
    x = rng.standard_normal((2, 8, 4, 4))
    weight, bias = rng.standard_normal(8), rng.standard_normal(8)
    first = np.asarray(group_norm(x.copy(), 4, weight, bias, 1e-5))[0]
    x[1] = 10 * rng.standard_normal((8, 4, 4)) + 5
    second = np.asarray(group_norm(x.copy(), 4, weight, bias, 1e-5))[0]
    if not np.array_equal(first, second):
        raise Wrong(
            f"changing image 1 of the batch changed image 0's output by up to "
            f"{np.abs(first - second).max():.2e}: GroupNorm's statistics are per image, "
            f"over its own channels and positions, never over the batch"
        )


def _torch_block_count(in_channels, out_channels, stride, groups):
    """The parameters of a torch BasicBlock built to the same plan (bias-free convs, GN)."""
    layers = [
        torch.nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
        torch.nn.GroupNorm(groups, out_channels),
        torch.nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False),
        torch.nn.GroupNorm(groups, out_channels),
    ]
    if stride != 1 or in_channels != out_channels:
        layers += [
            torch.nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
            torch.nn.GroupNorm(groups, out_channels),
        ]
    return sum(p.numel() for layer in layers for p in layer.parameters())


def _torch_backbone_count(stage_channels, blocks_per_stage, in_channels):
    stem = stage_channels[0]
    groups = minimask.nn.normalization.group_count(8, stem)
    count = sum(
        p.numel()
        for layer in (
            torch.nn.Conv2d(in_channels, stem, 3, 2, 1, bias=False),
            torch.nn.GroupNorm(groups, stem),
        )
        for p in layer.parameters()
    )
    channels = stem
    for out_channels, blocks in zip(stage_channels, blocks_per_stage):
        groups = minimask.nn.normalization.group_count(8, out_channels)
        count += _torch_block_count(channels, out_channels, 2, groups)
        count += (blocks - 1) * _torch_block_count(out_channels, out_channels, 1, groups)
        channels = out_channels
    return count


@exercise(
    "05.2", "parameters of a block and of the backbone", "block_parameters", "backbone_parameters"
)
def check_parameters(block_parameters, backbone_parameters):
    """Hand count: block_parameters(32, 64, 2) = 9*32*64 + 2*64 + 9*64*64 + 2*64 + 32*64 +
    2*64 = 57,728, and (64, 64, 1), which has no downsample, 9*64*64*2 + 4*64 = 73,984.
    Then blocks of several widths and strides against minimask's BasicBlock and a torch
    block built to the same plan, and backbones (the small and tiny presets' channels, 2 or 3
    blocks per stage, 1 or 3 input channels) against minimask's ResNetGN and the torch
    equivalent. Exact integers."""
    for args, want, why in (
        (
            (32, 64, 2),
            57728,
            "conv1 18,432 + gn1 128 + conv2 36,864 + gn2 128 + downsample 2,048 + 128",
        ),
        ((64, 64, 1), 73984, "two 3x3 convs of 36,864 and two GNs of 128; no downsample"),
    ):
        got = block_parameters(*args)
        if got != want:
            raise Wrong(f"block_parameters{args}: got {got}, want {want:,} ({why})")
    for in_channels, out_channels, stride in (
        (32, 32, 2),  # stride 2 with equal channels: still a downsample
        (64, 128, 2),
        (128, 128, 1),
        (16, 24, 1),  # more channels at stride 1: a downsample as well
        (8, 16, 2),
    ):
        mine = _count(BasicBlock(in_channels, out_channels, stride))
        groups = minimask.nn.normalization.group_count(8, out_channels)
        theirs = _torch_block_count(in_channels, out_channels, stride, groups)
        assert mine == theirs
        got = block_parameters(in_channels, out_channels, stride)
        if got != mine:
            raise Wrong(
                f"block_parameters({in_channels}, {out_channels}, {stride}): got {got}, "
                f"minimask's BasicBlock has {mine:,} (and the torch block {theirs:,}); a "
                f"downsample exists when the stride is not 1 or the channels change"
            )
    for stage_channels, blocks, in_channels in (
        ((32, 64, 128, 256), (1, 1, 1, 1), 3),
        ((8, 16, 32, 64), (1, 1, 1, 1), 3),
        ((32, 64, 128, 256), (2, 2, 2, 2), 3),
        ((16, 32, 48, 64), (3, 1, 2, 1), 1),
    ):
        mine = _count(ResNetGN(in_channels, stage_channels, blocks))
        theirs = _torch_backbone_count(stage_channels, blocks, in_channels)
        assert mine == theirs
        got = backbone_parameters(stage_channels, blocks, in_channels)
        if got != mine:
            raise Wrong(
                f"backbone_parameters({stage_channels}, {blocks}, in_channels={in_channels}): "
                f"got {got}, minimask's ResNetGN has {mine:,} (the torch equivalent {theirs:,});"
                f" the stem is a 3x3 conv of {in_channels} -> {stage_channels[0]} channels and "
                f"a GN, and each stage's first block takes the previous stage's channels"
            )


def _torch_inners(c_maps, weights, biases):
    """The FPN's top-down pathway in torch: conv2d 1x1 and nearest interpolation."""
    laterals = [
        torch_F.conv2d(torch.from_numpy(c), torch.from_numpy(w), torch.from_numpy(b))
        for c, w, b in zip(c_maps, weights, biases)
    ]
    inner = laterals[-1]
    inners = [inner]
    for lateral in laterals[-2::-1]:
        inner = lateral + torch_F.interpolate(inner, size=lateral.shape[-2:], mode="nearest")
        inners.insert(0, inner)
    return [i.numpy() for i in inners]


@exercise("05.3", "the FPN's top-down merge", "upsample_nearest", "top_down")
def check_top_down(upsample_nearest, top_down):
    """upsample_nearest: a 2x2 map [[1, 2], [3, 4]] to 3x3 and 4x3 by hand, then random maps
    to (2h, 2w), (2h - 1, 2w), (2h, 2w - 1) and (2h - 1, 2w - 1) against minimask's
    F.interpolate and torch's interpolate, mode "nearest": exact (copies). top_down: one
    channel, weight 1, bias 0, by hand; then a float64 FPN with random weights on the c2..c5
    of a 70 x 45 input (sides 18, 9, 5, 3 and 12, 6, 3, 2: odd and even) and of a 64 x 64
    input. Every inner map against torch (conv2d 1x1 + interpolate), and the FPN module's
    own outputs p2..p5 against its output convs applied to your inner maps: 1e-12."""
    small = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    for size, want in (
        ((3, 3), [[1, 1, 2], [1, 1, 2], [3, 3, 4]]),
        ((4, 3), [[1, 1, 2], [1, 1, 2], [3, 3, 4], [3, 3, 4]]),
    ):
        got = np.asarray(upsample_nearest(small.copy(), size))
        if got.shape != (1, 1, *size) or not np.array_equal(got[0, 0], want):
            raise Wrong(
                f"upsample_nearest([[1, 2], [3, 4]], {size}): got {got.tolist()}, want {want} "
                f"(each value fills a 2x2 block, cut to the size)"
            )
    rng = np.random.default_rng(51)
    x = rng.standard_normal((2, 3, 5, 4))
    for size in ((10, 8), (9, 8), (10, 7), (9, 7)):
        got = np.asarray(upsample_nearest(x.copy(), size))
        mine = F.interpolate(minimask.tensor(x), size=size, mode="nearest").numpy()
        theirs = torch_F.interpolate(torch.from_numpy(x), size=size, mode="nearest").numpy()
        assert np.array_equal(mine, theirs)
        if got.shape != mine.shape or not np.array_equal(got, mine):
            raise Wrong(
                f"upsample_nearest of a (2, 3, 5, 4) map to {size}: got shape {got.shape}, "
                f"not the copy that F.interpolate(mode='nearest') and torch give "
                f"(shape {mine.shape})"
            )
    c_maps = [np.zeros((1, 1, 3, 3)), small.copy()]
    ones = [np.ones((1, 1, 1, 1)), np.ones((1, 1, 1, 1))]
    got = top_down(c_maps, ones, [np.zeros(1), np.zeros(1)])
    want = [[[1, 1, 2], [1, 1, 2], [3, 3, 4]], small[0, 0].tolist()]
    if len(got) != 2 or [np.asarray(g)[0, 0].tolist() for g in got] != want:
        raise Wrong(
            f"top_down of c = (zeros 3x3, [[1, 2], [3, 4]]), weights 1, biases 0: got "
            f"{[np.asarray(g).tolist() for g in got]}, want {want} (finest first; the coarse "
            f"map's lateral is itself, the fine one's 0 plus the upsampled coarse map)"
        )
    channels, width = (6, 8, 10, 12), 5
    for sizes in (((18, 12), (9, 6), (5, 3), (3, 2)), ((16, 16), (8, 8), (4, 4), (2, 2))):
        fpn = FPN(channels, width).double()
        c_maps = [rng.standard_normal((2, c, *s)) for c, s in zip(channels, sizes)]
        weights = [conv.weight.numpy().copy() for conv in fpn.lateral_convs]
        biases = [rng.standard_normal(width) for _ in channels]
        for conv, bias in zip(fpn.lateral_convs, biases):
            conv.bias.data = minimask.tensor(bias).data
        with minimask.no_grad():
            outputs = fpn({f"c{k + 2}": minimask.tensor(c) for k, c in enumerate(c_maps)})
        theirs = _torch_inners(c_maps, weights, biases)
        got = top_down([c.copy() for c in c_maps], [w.copy() for w in weights], biases)
        if len(got) != 4:
            raise Wrong(f"top_down of 4 maps returned {len(got)} maps, want 4 (finest first)")
        for level, (mine, want) in enumerate(zip(got, theirs)):
            mine = np.asarray(mine)
            name = f"inner{level + 2} of c maps of sizes {sizes}"
            if mine.shape != want.shape:
                raise Wrong(f"{name}: got shape {mine.shape}, want {want.shape}")
            error = np.abs(mine - want).max()
            if error > 1e-12:
                raise Wrong(
                    f"{name}: differs from torch's conv2d 1x1 + nearest interpolate by up to "
                    f"{error:.2e}"
                )
            with minimask.no_grad():
                p = fpn.output_convs[level](minimask.tensor(mine)).numpy()
            error = np.abs(p - outputs[f"p{level + 2}"].numpy()).max()
            if error > 1e-12:
                raise Wrong(
                    f"{name}: the FPN's output conv applied to it differs from the module's "
                    f"p{level + 2} by up to {error:.2e}"
                )


def _mask_cases(rng):
    """(mask_logits, labels, goal) of the checker."""
    cases = []
    for count, classes, m in ((3, 3, 28), (5, 4, 6), (1, 1, 4)):
        logits = 4 * rng.standard_normal((count, classes, m, m))
        labels = rng.integers(1, classes + 1, count)
        goal = (rng.uniform(size=(count, m, m)) > 0.5).astype(np.float64)
        goal[0, 0, :2] = [0.25, 0.75]  # mask targets are RoIAlign samples: fractions too
        cases.append((logits, labels, goal))
    return cases


@exercise("05.4", "the mask loss by hand", "mask_loss_by_hand")
def check_mask_loss(mask_loss_by_hand):
    """Hand cases: every logit 0 gives log 2 = 0.693147..., whatever the target; logits of
    +-800 on a target they agree with give 0 and against it 800 per cell (the stable form
    max(z, 0) - z t + log(1 + exp(-|z|)); log(sigmoid(z)) overflows there); only the label's
    channel counts (the other channels are set to nan). Then random float64 cases (3 to 5
    RoIs, 1 to 4 classes, 4 x 4 to 28 x 28) against RoIHeads.mask_loss of minimask and
    torch's binary_cross_entropy_with_logits on the label's channel: 1e-12."""
    labels = np.array([2, 1])
    goal = np.zeros((2, 4, 4))
    goal[0, :2] = 1.0
    logits = np.full((2, 3, 4, 4), np.nan)  # channels other than the label's must not be read
    logits[0, 1], logits[1, 0] = 0.0, 0.0
    got = float(mask_loss_by_hand(logits.copy(), labels.copy(), goal.copy()))
    if not abs(got - np.log(2)) <= 1e-12:
        raise Wrong(
            f"logits 0 on the labels' channels (nan elsewhere), labels {labels.tolist()}: got "
            f"{got:.6f}, want log 2 = {np.log(2):.6f} (channel label - 1 of each RoI, and "
            f"only that one)"
        )
    logits[0, 1] = np.where(goal[0] > 0, 800.0, -800.0)  # agrees with its target
    logits[1, 0] = 800.0  # the target is all 0: each of its 16 cells costs 800
    got = float(mask_loss_by_hand(logits.copy(), labels.copy(), goal.copy()))
    want = 16 * 800.0 / 32
    if not abs(got - want) <= 1e-12 * want:
        raise Wrong(
            f"logits +-800 (RoI 0 right everywhere, RoI 1 wrong everywhere): got {got}, want "
            f"16 * 800 / 32 = {want} (use the stable form max(z, 0) - z t + log1p(exp(-|z|)),"
            f" and the mean over all P x M x M = 32 cells)"
        )
    rng = np.random.default_rng(52)
    for logits, labels, goal in _mask_cases(rng):
        count, classes, m, _ = logits.shape
        heads = RoIHeads(MaskRCNNConfig.tiny(classes))
        mine = float(
            heads.mask_loss(
                minimask.tensor(logits), minimask.tensor(labels), minimask.tensor(goal)
            ).numpy()
        )
        chosen = torch.from_numpy(logits[np.arange(count), labels - 1])
        theirs = float(torch_F.binary_cross_entropy_with_logits(chosen, torch.from_numpy(goal)))
        assert abs(mine - theirs) <= 1e-12
        got = float(mask_loss_by_hand(logits.copy(), labels.copy(), goal.copy()))
        if not abs(got - mine) <= 1e-12:
            raise Wrong(
                f"{count} RoIs, {classes} classes, {m} x {m} masks, labels {labels.tolist()}: "
                f"got {got:.10f}, RoIHeads.mask_loss gives {mine:.10f} and torch's "
                f"binary_cross_entropy_with_logits {theirs:.10f}"
            )
