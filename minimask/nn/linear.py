"""``Linear``: y = x W^T + b, and ``Identity``.

``weight`` has shape (out_features, in_features) and ``bias`` (out_features,), PyTorch's
layout, so weights copy between the two libraries as they are. The input may have any
number of leading dims: (*, in_features) -> (*, out_features).

Default initialisation, as PyTorch's (``Linear.reset_parameters``):

    weight ~ kaiming_uniform_(a=sqrt(5))  =  U(-1/sqrt(in_features), 1/sqrt(in_features))
    bias   ~ U(-1/sqrt(in_features), 1/sqrt(in_features))
"""

import math

from minimask.autograd.factories import zeros
from minimask.nn import functional as F
from minimask.nn import init
from minimask.nn.module import Module
from minimask.nn.parameter import Parameter


class Linear(Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(zeros(out_features, in_features))
        self.bias = Parameter(zeros(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init.fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        if input.ndim == 0 or input.shape[-1] != self.in_features:
            raise ValueError(
                f"Linear({self.in_features}, {self.out_features}): the input's last dim must "
                f"be in_features={self.in_features}, got input of shape {input.shape} "
                f"(weight has shape {self.weight.shape})"
            )
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self):
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class Identity(Module):
    """Returns its input: a placeholder where a layer is optional."""

    def forward(self, input):
        return input
