"""``FPN``: the Feature Pyramid Network (Lin et al., "Feature Pyramid Networks for Object
Detection", 2017), which turns the backbone's c2..c5 into p2..p6 of equal channels.

Data flow, for the backbone's {"c2", "c3", "c4", "c5"} (strides 4, 8, 16, 32):

    inner5 = lateral3(c5)                                  1x1 conv to out_channels
    inner4 = lateral2(c4) + upsample(inner5 to c4's size)   top-down pathway
    inner3 = lateral1(c3) + upsample(inner4 to c3's size)
    inner2 = lateral0(c2) + upsample(inner3 to c2's size)
    pK     = output_K(innerK)                              3x3 conv, K = 2..5
    p6     = max_pool2d(p5, kernel_size=1, stride=2)       every other pixel of p5

"upsample" is nearest-neighbour, to the lateral's own size rather than by a factor of 2:
with an odd side the coarser map is one pixel more than half (e.g. 18 vs 35, see
backbone.py), and doubling it would not give the finer map's size back.

The 3x3 output convs smooth the aliasing of the nearest upsampling (the paper's reason).
p6 is torchvision's LastLevelMaxPool: a subsampled p5, used only by the RPN for the
largest anchors (RoI heads pool from p2..p5).

Initialisation: conv weights ~ kaiming_uniform_(a=1), biases 0, as torchvision's FPN
(Detectron's "c2_xavier_fill"). The convs have biases: there is no norm after them.

Parameter names: ``lateral_convs.i.weight`` and ``output_convs.i.weight``, i = 0 for the
finest level (c2).
"""

from minimask import nn
from minimask.nn import functional as F


class FPN(nn.Module):
    """in_channels_list: channels of the input maps, finest first (c2, c3, c4, c5);
    out_channels: channels of every output map.

    ``forward(features)`` takes a dict of the maps, finest first (the backbone's
    {"c2", .., "c5"}; only the order of the values is used), and returns
    {"p2", .., "p5", "p6"}: one "p" per input, then the max-pooled extra level.
    """

    def __init__(self, in_channels_list, out_channels):
        super().__init__()
        self.out_channels = out_channels
        levels = len(in_channels_list)
        # the names of forward's outputs, finest first: p2 .. p(levels+1), then the extra one
        self.level_names = tuple(f"p{level + 2}" for level in range(levels + 1))
        self.lateral_convs = nn.ModuleList(
            [nn.Conv2d(channels, out_channels, 1) for channels in in_channels_list]
        )
        self.output_convs = nn.ModuleList(
            [nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in in_channels_list]
        )
        self.reset_parameters()

    def reset_parameters(self):
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_uniform_(module.weight, a=1)
                nn.init.zeros_(module.bias)

    def forward(self, features):
        maps = list(features.values())
        if len(maps) != len(self.lateral_convs):
            raise ValueError(f"FPN expects {len(self.lateral_convs)} maps, got {len(maps)}")
        # Top-down: start at the coarsest map and walk to the finest.
        inner = self.lateral_convs[-1](maps[-1])
        outputs = [self.output_convs[-1](inner)]
        for level in range(len(maps) - 2, -1, -1):
            lateral = self.lateral_convs[level](maps[level])
            top_down = F.interpolate(inner, size=lateral.shape[-2:], mode="nearest")
            inner = lateral + top_down
            outputs.insert(0, self.output_convs[level](inner))
        outputs.append(F.max_pool2d(outputs[-1], kernel_size=1, stride=2))
        return dict(zip(self.level_names, outputs))
