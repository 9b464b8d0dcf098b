"""``Conv2d`` and ``ConvTranspose2d``: learned 2-d (transposed) convolutions of NCHW inputs.

Weights, in PyTorch's layout:

    Conv2d           weight (out_channels, in_channels, kh, kw)
    ConvTranspose2d  weight (in_channels, out_channels, kh, kw)   (the adjoint of a conv
                     from out_channels to in_channels, hence the swapped order)

Default initialisation, as PyTorch's (``_ConvNd.reset_parameters``):

    weight ~ kaiming_uniform_(a=sqrt(5))  =  U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    bias   ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))

with ``fan_in = weight.shape[1] * kh * kw`` (``init.fan_in_and_fan_out``): in_channels*kh*kw
for Conv2d, but out_channels*kh*kw for ConvTranspose2d, because PyTorch reads dim 1 of
the weight whatever the layer. We copy that so that the two libraries start alike.
"""

import math

from minimask.autograd.factories import zeros
from minimask.nn import functional as F
from minimask.nn import init
from minimask.nn.module import Module
from minimask.nn.parameter import Parameter


def _pair(value, name):
    pair = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return pair


class _ConvNd(Module):
    """What Conv2d and ConvTranspose2d share: arguments, parameters, init and repr."""

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride,
        padding,
        dilation,
        output_padding,
        bias,
        weight_shape,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        self.dilation = _pair(dilation, "dilation")
        self.output_padding = _pair(output_padding, "output_padding")
        self.weight = Parameter(zeros(*weight_shape, *self.kernel_size))
        self.bias = Parameter(zeros(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init.fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def extra_repr(self):
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.output_padding != (0, 0):
            text += f", output_padding={self.output_padding}"
        if self.bias is None:
            text += ", bias=False"
        return text


class Conv2d(_ConvNd):
    def __init__(
        self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True
    ):
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            0,
            bias,
            weight_shape=(out_channels, in_channels),
        )

    def forward(self, input):
        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation)


class ConvTranspose2d(_ConvNd):
    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        output_padding=0,
        bias=True,
        dilation=1,
    ):
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            output_padding,
            bias,
            weight_shape=(in_channels, out_channels),
        )

    def forward(self, input):
        return F.conv_transpose2d(
            input,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            self.output_padding,
            dilation=self.dilation,
        )
