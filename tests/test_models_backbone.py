"""The GroupNorm ResNet backbone (minimask.models.backbone) and the FPN (minimask.models.fpn).

References and tolerances.
- Shapes: exact; every level's side is ceil(side / stride), stride 4..64 (p6).
- PyTorch mirror: torch.nn modules of the same structure and parameter names (test-only
  code below), loaded with the minimask weights, in float64. Outputs agree to rtol 1e-10
  (atol 1e-10 times the largest |value|): each value passes through about ten convs and
  GroupNorms, each a sum of at most a few thousand products rounded differently by the two
  libraries (u = 1.1e-16); a wrong padding, stride or shortcut gives O(1) differences.
- Gradients: float64 ``minimask.gradcheck`` (central differences, its defaults atol 1e-5,
  rtol 1e-3, random projections) on a tiny instance.
"""

import contextlib
import math

import numpy as np
import pytest
import torch

import minimask as mm
from minimask.models.backbone import BasicBlock, ResNetGN
from minimask.models.fpn import FPN
from minimask.nn.normalization import group_count

LEVELS = {"c2": 4, "c3": 8, "c4": 16, "c5": 32}
PYRAMID = {"p2": 4, "p3": 8, "p4": 16, "p5": 32, "p6": 64}


@pytest.fixture(autouse=True, scope="module")
def single_threaded_torch():
    """One torch thread: on a 2-core machine torch's spinning OpenMP workers otherwise
    starve minimask's Numba threads (see tests/conftest.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def image(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ------------------------------------------------------------------ shapes
@pytest.mark.parametrize("height, width", [(64, 64), (70, 54)])
def test_shapes_and_strides(height, width):
    """c2..c5 and p2..p6 have side ceil(side / stride) for strides 4..64 (exact), the
    stage channels and the FPN channels; also for the odd 70 x 54 input."""
    mm.manual_seed(0)
    backbone = ResNetGN(stage_channels=(8, 16, 16, 32), num_groups=4)
    fpn = FPN(backbone.stage_channels, 8)
    x = mm.tensor(image((2, 3, height, width), dtype=np.float32))
    features = backbone(x)
    pyramid = fpn(features)
    assert list(features) == list(LEVELS)
    assert list(pyramid) == list(PYRAMID)
    for (name, stride), channels in zip(LEVELS.items(), backbone.stage_channels):
        expected = (2, channels, math.ceil(height / stride), math.ceil(width / stride))
        assert features[name].shape == expected, name
    for name, stride in PYRAMID.items():
        expected = (2, 8, math.ceil(height / stride), math.ceil(width / stride))
        assert pyramid[name].shape == expected, name


def test_group_count_divides_channels():
    """num_groups is lowered to the largest divisor of the channels (exact)."""
    assert group_count(8, 32) == 8
    assert group_count(8, 4) == 4
    assert group_count(8, 12) == 6
    assert group_count(8, 7) == 7
    model = ResNetGN(stage_channels=(4, 12, 16, 32), num_groups=8)
    assert model.gn1.num_groups == 4
    assert model.layer2[0].gn1.num_groups == 6
    assert model.layer4[0].gn2.num_groups == 8


# ------------------------------------------------------------------ names and init
def test_parameter_names_are_dotted_and_stable():
    """state_dict keys follow torchvision's ResNet names (exact list for a 1-block stage,
    and a sample for 2 blocks)."""
    model = ResNetGN(blocks_per_stage=(1, 2, 1, 1))
    names = list(model.state_dict())
    assert names[:12] == [
        "conv1.weight",
        "gn1.weight",
        "gn1.bias",
        "layer1.0.conv1.weight",
        "layer1.0.gn1.weight",
        "layer1.0.gn1.bias",
        "layer1.0.conv2.weight",
        "layer1.0.gn2.weight",
        "layer1.0.gn2.bias",
        "layer1.0.downsample.0.weight",
        "layer1.0.downsample.1.weight",
        "layer1.0.downsample.1.bias",
    ]
    assert "layer2.1.conv2.weight" in names
    assert not any(name.startswith("layer2.1.downsample") for name in names)  # same shape
    assert "layer4.0.downsample.1.bias" in names
    fpn_names = list(FPN((32, 64, 128, 256), 64).state_dict())
    assert fpn_names[:2] == ["lateral_convs.0.weight", "lateral_convs.0.bias"]
    assert "output_convs.3.weight" in fpn_names


def test_initialisation():
    """Conv weights have std sqrt(2 / fan_out) (kaiming_normal_, fan_out, relu; within 10%
    for the 256 x 128 x 3 x 3 conv), GN weight 1 and bias 0 (exact), FPN biases 0 (exact);
    zero_init_residual zeroes exactly each block's gn2 weight."""
    mm.manual_seed(0)
    model = ResNetGN()
    weight = model.layer4[0].conv1.weight.numpy()
    assert weight.shape == (256, 128, 3, 3)
    assert abs(weight.std() / math.sqrt(2 / (256 * 9)) - 1) < 0.1
    for name, value in model.state_dict().items():
        if ".gn" in name or name.startswith("gn") or "downsample.1" in name:
            expected = 1.0 if name.endswith("weight") else 0.0
            assert np.all(value.numpy() == expected), name
    zeroed = ResNetGN(zero_init_residual=True)
    for name, value in zeroed.state_dict().items():
        if name.endswith("gn2.weight"):
            assert np.all(value.numpy() == 0), name
        elif name.endswith("gn1.weight"):
            assert np.all(value.numpy() == 1), name
    fpn = FPN((32, 64, 128, 256), 64)
    assert all(np.all(v.numpy() == 0) for k, v in fpn.state_dict().items() if k.endswith("bias"))


# ------------------------------------------------------------------ PyTorch mirror
class TorchBlock(torch.nn.Module):
    """torch twin of BasicBlock (same names)."""

    def __init__(self, in_channels, out_channels, stride, num_groups):
        super().__init__()
        groups = group_count(num_groups, out_channels)
        conv = torch.nn.Conv2d
        self.conv1 = conv(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.gn1 = torch.nn.GroupNorm(groups, out_channels)
        self.conv2 = conv(out_channels, out_channels, 3, padding=1, bias=False)
        self.gn2 = torch.nn.GroupNorm(groups, out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = torch.nn.Sequential(
                conv(in_channels, out_channels, 1, stride=stride, bias=False),
                torch.nn.GroupNorm(groups, out_channels),
            )

    def forward(self, x):
        out = torch.relu(self.gn1(self.conv1(x)))
        out = self.gn2(self.conv2(out))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))


class TorchResNetGN(torch.nn.Module):
    """torch twin of ResNetGN (same names)."""

    def __init__(self, in_channels, stage_channels, blocks_per_stage, num_groups):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(in_channels, stage_channels[0], 3, 2, 1, bias=False)
        self.gn1 = torch.nn.GroupNorm(group_count(num_groups, stage_channels[0]), stage_channels[0])
        channels = stage_channels[0]
        for index, (out_channels, blocks) in enumerate(zip(stage_channels, blocks_per_stage)):
            layers = [TorchBlock(channels, out_channels, 2, num_groups)]
            layers += [
                TorchBlock(out_channels, out_channels, 1, num_groups) for _ in range(blocks - 1)
            ]
            setattr(self, f"layer{index + 1}", torch.nn.Sequential(*layers))
            channels = out_channels

    def forward(self, x):
        x = torch.relu(self.gn1(self.conv1(x)))
        out = {}
        for index in range(4):
            x = getattr(self, f"layer{index + 1}")(x)
            out[f"c{index + 2}"] = x
        return out


class TorchFPN(torch.nn.Module):
    """torch twin of FPN (same names), written as torchvision's FeaturePyramidNetwork."""

    def __init__(self, in_channels_list, out_channels):
        super().__init__()
        conv = torch.nn.Conv2d
        self.lateral_convs = torch.nn.ModuleList(
            [conv(c, out_channels, 1) for c in in_channels_list]
        )
        self.output_convs = torch.nn.ModuleList(
            [conv(out_channels, out_channels, 3, padding=1) for _ in in_channels_list]
        )

    def forward(self, features):
        maps = list(features.values())
        inner = self.lateral_convs[-1](maps[-1])
        outputs = [self.output_convs[-1](inner)]
        for level in range(len(maps) - 2, -1, -1):
            lateral = self.lateral_convs[level](maps[level])
            inner = lateral + torch.nn.functional.interpolate(
                inner, size=lateral.shape[-2:], mode="nearest"
            )
            outputs.insert(0, self.output_convs[level](inner))
        outputs.append(torch.nn.functional.max_pool2d(outputs[-1], 1, 2))
        return {f"p{level + 2}": p for level, p in enumerate(outputs)}


def copy_weights(ours, theirs):
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})


def assert_close(ours, theirs, what):
    theirs = theirs.detach().numpy()
    scale = max(1.0, float(np.abs(theirs).max()))
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-10, atol=1e-10 * scale, err_msg=what)


@pytest.mark.parametrize("height, width", [(64, 64), (70, 54)])
def test_matches_torch_mirror(height, width):
    """Backbone (2 blocks in one stage, so the identity shortcut is covered too) and FPN
    outputs equal the torch mirror's in float64: rtol 1e-10 (see the module docstring).
    The GN weights and FPN biases are randomised first, so that a swapped weight and bias
    or a dropped bias would show."""
    config = dict(in_channels=3, stage_channels=(8, 16, 16, 24), blocks_per_stage=(1, 2, 1, 1))
    mm.manual_seed(0)
    ours = ResNetGN(**config, num_groups=4).double()
    fpn = FPN(ours.stage_channels, 8).double()
    rng = np.random.default_rng(1)
    for module in (ours, fpn):
        for name, p in module.named_parameters():
            if "gn" in name or "downsample.1" in name or name.endswith("bias"):
                p.data[...] = rng.uniform(0.5, 1.5, size=p.shape)
    theirs = TorchResNetGN(**config, num_groups=4).double()
    their_fpn = TorchFPN(ours.stage_channels, 8).double()
    copy_weights(ours, theirs)
    copy_weights(fpn, their_fpn)

    x = image((2, 3, height, width))
    our_features = ours(mm.tensor(x))
    our_pyramid = fpn(our_features)
    with torch.no_grad():
        their_features = theirs(torch.tensor(x))
        their_pyramid = their_fpn(their_features)
    for name in LEVELS:
        assert_close(our_features[name], their_features[name], name)
    for name in PYRAMID:
        assert_close(our_pyramid[name], their_pyramid[name], name)


# ------------------------------------------------------------------ gradients
@contextlib.contextmanager
def substituted(model, names, tensors):
    """Within the block, the parameters ``names`` of ``model`` are the plain tensors
    ``tensors`` (test-only: gradcheck builds fresh leaf tensors and differentiates with
    respect to them, so they are put straight into the owners' parameter registries;
    the originals are put back afterwards)."""
    modules = dict(model.named_modules())
    saved = []
    for name, tensor in zip(names, tensors):
        owner, attribute = name.rsplit(".", 1)
        registry = modules[owner]._parameters
        saved.append((registry, attribute, registry[attribute]))
        registry[attribute] = tensor
    try:
        yield
    finally:
        for registry, attribute, original in saved:
            registry[attribute] = original


def test_gradcheck_backbone_and_fpn():
    """float64 gradcheck (defaults: atol 1e-5, rtol 1e-3, random projections) of
    (c2..c5, p2..p6) w.r.t. the input, the stem conv, a conv of each stage, a
    shortcut conv and an FPN lateral and output conv; stage_channels (4, 4, 4, 4), one
    block a stage, 1 GN group, 16 x 16 input. GN weights and biases and the FPN biases are
    randomised (U(-1, 1)) so that the ReLUs see both signs."""
    mm.manual_seed(0)
    backbone = ResNetGN(stage_channels=(4, 4, 4, 4), num_groups=1).double()
    fpn = FPN(backbone.stage_channels, 4).double()
    rng = np.random.default_rng(2)
    for name, p in list(backbone.named_parameters()) + list(fpn.named_parameters()):
        if "gn" in name or "downsample.1" in name or name.endswith("bias"):
            p.data[...] = rng.uniform(-1.0, 1.0, size=p.shape)

    backbone_names = [
        "conv1.weight",
        "layer1.0.conv1.weight",
        "layer2.0.conv1.weight",
        "layer3.0.conv2.weight",
        "layer4.0.conv1.weight",
        "layer2.0.downsample.0.weight",
    ]
    fpn_names = ["lateral_convs.1.weight", "output_convs.0.weight"]
    params = {**dict(backbone.named_parameters()), **dict(fpn.named_parameters())}
    leaves = [mm.tensor(params[n].numpy().copy(), requires_grad=True) for n in backbone_names]
    leaves += [mm.tensor(params[n].numpy().copy(), requires_grad=True) for n in fpn_names]
    x = mm.tensor(image((1, 3, 16, 16), seed=3), requires_grad=True)

    def fn(x, *weights):
        split = len(backbone_names)
        with substituted(backbone, backbone_names, weights[:split]):
            features = backbone(x)
        with substituted(fpn, fpn_names, weights[split:]):
            pyramid = fpn(features)
        return tuple(features.values()) + tuple(pyramid.values())

    assert mm.gradcheck(fn, (x, *leaves))
    # A check of the check: every checked gradient is far from zero. (With 2 groups of 2
    # channels, c5's 1 x 1 maps would normalise to +-1 whatever layer4's weights are, and
    # their gradient would vanish; one group of 4 channels keeps it.)
    leaves = [mm.tensor(leaf.numpy(), requires_grad=True) for leaf in (x, *leaves)]
    sum(out.sum() for out in fn(*leaves)).backward()
    for name, leaf in zip(["input", *backbone_names, *fpn_names], leaves):
        assert np.abs(leaf.grad.numpy()).max() > 1e-2, name


def test_block_identity_shortcut_keeps_shape():
    """A stride-1 block with equal channels has no downsample and keeps the shape (exact)."""
    block = BasicBlock(8, 8, stride=1, num_groups=4)
    assert block.downsample is None
    out = block(mm.tensor(image((1, 8, 5, 7), dtype=np.float32)))
    assert out.shape == (1, 8, 5, 7)
    assert float(out.numpy().min()) >= 0  # ends with a ReLU
