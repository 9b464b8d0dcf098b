"""``ResNetGN``: a small ResNet with GroupNorm, the backbone of minimask's Mask R-CNN.

No pretrained weights are available, so the backbone trains from scratch, with GroupNorm
after every convolution (Wu & He, "Group Normalization", 2018; He et al., "Rethinking
ImageNet Pre-training", 2019). GroupNorm does not depend on the batch, which matters here:
a batch holds one or two images.

Data flow for an (N, 3, H, W) input (channels of the default ``stage_channels``):

    x       (N,   3, H,    W)
    stem    conv3x3 stride 2 -> GN -> ReLU            (N,  32, H/2,  W/2)
    layer1  BasicBlocks, the first with stride 2  ->  c2  (N,  32, H/4,  W/4)
    layer2  BasicBlocks, the first with stride 2  ->  c3  (N,  64, H/8,  W/8)
    layer3  BasicBlocks, the first with stride 2  ->  c4  (N, 128, H/16, W/16)
    layer4  BasicBlocks, the first with stride 2  ->  c5  (N, 256, H/32, W/32)

Each "/s" is a ceiling: a 3x3 convolution with stride 2 and padding 1 maps a side of n
to ceil(n / 2), so an odd side such as 70 gives 35, 18, 9, 5, 3.

The stem. The original ResNet stem is a 7x7 stride-2 conv followed by a 3x3 stride-2 max
pool. For the small inputs minimask trains on (64 to 256 pixels a side) we use a single
3x3 stride-2 conv and let layer1's first block do the second halving with a strided
conv instead of the max pool: 9 taps instead of 49 (the stem is the most expensive layer,
because it runs at full resolution), no max pool that throws away 3/4 of the stem's
activations before any residual block has seen them, and still stride 4 at c2, as the FPN
expects.

A BasicBlock (He et al., "Deep Residual Learning", 2016, Fig. 2 left), with GN for BN:

    out = relu(gn1(conv1(x)))            conv1: 3x3, stride s (1 or 2)
    out = gn2(conv2(out))                conv2: 3x3, stride 1
    out = relu(out + shortcut(x))        shortcut: x itself when the shape is unchanged,
                                         else downsample = 1x1 conv stride s -> GN

The convolutions have no bias: the GN after each of them adds its own per-channel shift.

Initialisation: conv weights ~ kaiming_normal_(mode="fan_out", nonlinearity="relu") (as
torchvision's ResNet); GN weight 1, bias 0. With ``zero_init_residual=True`` each block's
last GN weight starts at 0 (Goyal et al., "Accurate, Large Minibatch SGD", 2017), so that
every block starts as the identity; the default is False, as in torchvision, so that a
freshly built network passes a non-trivial signal through every conv (and its gradient
check tests every weight).

Parameter names follow torchvision's ResNet (``conv1``, ``gn1`` for ``bn1``, ``layer1`` to
``layer4``, ``layer1.0.downsample.0``), so ``state_dict`` keys read the same, e.g.
``layer2.0.conv1.weight`` or ``layer3.0.downsample.1.bias``.
"""

from minimask import nn
from minimask.nn import functional as F
from minimask.nn.normalization import group_count


class BasicBlock(nn.Module):
    """conv3x3(stride) -> GN -> ReLU -> conv3x3 -> GN, plus the shortcut, then ReLU."""

    def __init__(self, in_channels, out_channels, stride=1, num_groups=8):
        super().__init__()
        groups = group_count(num_groups, out_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.gn1 = nn.GroupNorm(groups, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.gn2 = nn.GroupNorm(groups, out_channels)
        if stride != 1 or in_channels != out_channels:
            # The shapes differ: project x to the output's channels and resolution.
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.GroupNorm(groups, out_channels),
            )
        else:
            self.downsample = None

    def forward(self, x):
        out = F.relu(self.gn1(self.conv1(x)))
        out = self.gn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class ResNetGN(nn.Module):
    """A ResNet of BasicBlocks with GroupNorm; ``forward(x)`` returns the dict
    {"c2", "c3", "c4", "c5"} of feature maps at strides 4, 8, 16 and 32.

    in_channels:       channels of the input image (3 for RGB)
    stage_channels:    output channels of layer1..layer4 (c2..c5); the stem has the first
    blocks_per_stage:  BasicBlocks in each stage; the first of each has stride 2
    num_groups:        GroupNorm groups, lowered where needed to divide the channels
    zero_init_residual: start each block's last GN weight at 0 (see the module docstring)
    """

    def __init__(
        self,
        in_channels=3,
        stage_channels=(32, 64, 128, 256),
        blocks_per_stage=(1, 1, 1, 1),
        num_groups=8,
        zero_init_residual=False,
    ):
        super().__init__()
        if len(stage_channels) != 4 or len(blocks_per_stage) != 4:
            raise ValueError("stage_channels and blocks_per_stage need 4 entries (c2..c5)")
        if min(blocks_per_stage) < 1:
            raise ValueError(f"every stage needs at least one block, got {blocks_per_stage}")
        self.stage_channels = tuple(stage_channels)
        stem_channels = stage_channels[0]
        self.conv1 = nn.Conv2d(in_channels, stem_channels, 3, stride=2, padding=1, bias=False)
        self.gn1 = nn.GroupNorm(group_count(num_groups, stem_channels), stem_channels)
        channels = stem_channels
        for index, (out_channels, blocks) in enumerate(zip(stage_channels, blocks_per_stage)):
            stage = nn.Sequential(BasicBlock(channels, out_channels, 2, num_groups))
            for _ in range(blocks - 1):
                stage.append(BasicBlock(out_channels, out_channels, 1, num_groups))
            setattr(self, f"layer{index + 1}", stage)
            channels = out_channels
        self.reset_parameters(zero_init_residual)

    def reset_parameters(self, zero_init_residual=False):
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.GroupNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, BasicBlock):
                    nn.init.zeros_(module.gn2.weight)

    def forward(self, x):
        x = F.relu(self.gn1(self.conv1(x)))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return {"c2": c2, "c3": c3, "c4": c4, "c5": c5}
