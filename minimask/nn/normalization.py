"""``GroupNorm`` (Wu & He, 2018): normalise each sample over groups of channels.

The C channels of an (N, C, *) input are split into ``num_groups`` groups of C / G
channels; each (sample, group) is shifted and scaled to mean 0 and variance 1 (the biased
variance, plus ``eps``), then each channel gets its own learned scale and shift:

    y = (x - mean) / sqrt(var + eps) * weight[c] + bias[c]

Unlike BatchNorm it does not depend on the batch (no running statistics, the same in
training and evaluation), which is why a from-scratch Mask R-CNN with 1-2 images a batch
uses it. ``weight`` starts at ones and ``bias`` at zeros, as in PyTorch; ``affine=False``
leaves both out, and (PyTorch 2.13's keyword) ``bias=False`` leaves out the shift only.
"""

from minimask.autograd.factories import ones, zeros
from minimask.nn import functional as F
from minimask.nn import init
from minimask.nn.module import Module
from minimask.nn.parameter import Parameter


def group_count(num_groups, num_channels):
    """The largest number of groups <= ``num_groups`` that divides ``num_channels``
    (GroupNorm needs equal groups): group_count(8, 32) == 8, group_count(8, 4) == 4,
    group_count(8, 12) == 6."""
    for groups in range(min(num_groups, num_channels), 0, -1):
        if num_channels % groups == 0:
            return groups
    raise ValueError(
        f"num_groups and num_channels must be positive, got {num_groups}, {num_channels}"
    )


class GroupNorm(Module):
    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, *, bias=True):
        super().__init__()
        if num_groups <= 0 or num_channels % num_groups != 0:
            raise ValueError(
                f"GroupNorm: num_channels ({num_channels}) must be divisible by "
                f"num_groups ({num_groups})"
            )
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        if affine:
            self.weight = Parameter(ones(num_channels))
        else:
            self.register_parameter("weight", None)
        if affine and bias:
            self.bias = Parameter(zeros(num_channels))
        else:
            self.register_parameter("bias", None)

    def reset_parameters(self):
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, input):
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (
            f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
            f"bias={self.bias is not None}"
        )
