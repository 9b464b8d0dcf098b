"""conv2d and conv_transpose2d as autograd Functions over the backend's conv kernels.

The kernels (``minimask/cpu/conv.py``) lower both to im2col/col2im and a matrix product;
this file checks the arguments, names the shapes when they do not fit, and connects the
forward and backward kernels to the engine. Shapes, as in PyTorch:

    conv2d:            x (N, Cin, H, W), weight (Cout, Cin, kh, kw)  ->  (N, Cout, OH, OW)
                       OH = (H + 2 ph - dh (kh - 1) - 1) // sh + 1
    conv_transpose2d:  x (N, Cin, H, W), weight (Cin, Cout, kh, kw)  ->  (N, Cout, OH, OW)
                       OH = (H - 1) sh - 2 ph + dh (kh - 1) + output_padding + 1

conv_transpose2d is the adjoint (the input-gradient) of conv2d, which is why it is also
called "deconvolution" and why the two share their kernels.
"""

from minimask.autograd.function import Function
from minimask.autograd.ops.operands import common_operands
from minimask.geometry.conv import conv2d_output_size


def _pair(value, name):
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return pair


def _needs_input_grad(ctx):
    """(x, weight, bias): which gradients the backend's backward computes. The Function's
    inputs are (x, weight) or (x, weight, bias); without a bias its flag is False."""
    need_x, need_weight, *need_bias = ctx.needs_input_grad
    return need_x, need_weight, any(need_bias)


class Conv2d(Function):
    @staticmethod
    def forward(ctx, x, weight, *bias, stride, padding, dilation):
        ctx.geometry = (stride, padding, dilation)
        ctx.save_for_backward(x, weight)
        return ctx.xp.conv2d_forward(x, weight, bias[0] if bias else None, *ctx.geometry)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_arrays
        grads = ctx.xp.conv2d_backward(grad_out, x, weight, *ctx.geometry, _needs_input_grad(ctx))
        return grads[: len(ctx.needs_input_grad)]  # no bias gradient without a bias


class ConvTranspose2d(Function):
    @staticmethod
    def forward(ctx, x, weight, *bias, stride, padding, output_padding, dilation):
        ctx.geometry = (stride, padding, output_padding, dilation)
        ctx.save_for_backward(x, weight)
        bias_array = bias[0] if bias else None
        return ctx.xp.conv_transpose2d_forward(x, weight, bias_array, *ctx.geometry)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_arrays
        needs = _needs_input_grad(ctx)
        grads = ctx.xp.conv_transpose2d_backward(grad_out, x, weight, *ctx.geometry, needs)
        return grads[: len(ctx.needs_input_grad)]


def _check_operands(name, input, weight, bias, in_channels_dim, out_channels_dim):
    """Common checks; returns the operands in one floating dtype."""
    if input.ndim != 4:
        raise ValueError(f"{name}: input must be 4-d (N, C, H, W), got shape {input.shape}")
    if weight.ndim != 4:
        raise ValueError(f"{name}: weight must be 4-d, got shape {weight.shape}")
    if input.dtype.kind != "f" or weight.dtype.kind != "f":
        raise TypeError(
            f"{name}: input and weight must be floating point, got {input.dtype} and {weight.dtype}"
        )
    if input.shape[1] != weight.shape[in_channels_dim]:
        raise ValueError(
            f"{name}: input has {input.shape[1]} channels (shape {input.shape}) but weight "
            f"of shape {weight.shape} expects {weight.shape[in_channels_dim]}"
        )
    out_channels = weight.shape[out_channels_dim]
    if bias is not None and bias.shape != (out_channels,):
        raise ValueError(f"{name}: bias must have shape ({out_channels},), got {bias.shape}")
    operands = (input, weight) if bias is None else (input, weight, bias)
    return common_operands(*operands)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1):
    """2-d convolution (cross-correlation, as in PyTorch) of NCHW ``input`` with ``weight``."""
    stride, padding, dilation = (
        _pair(stride, "stride"),
        _pair(padding, "padding"),
        _pair(dilation, "dilation"),
    )
    operands = _check_operands("conv2d", input, weight, bias, 1, 0)
    kernel = weight.shape[2:]
    output_size = conv2d_output_size(input.shape[2:], kernel, stride, padding, dilation)
    if min(output_size) < 1:
        raise ValueError(
            f"conv2d: input of shape {input.shape} is too small for a {kernel} kernel with "
            f"padding {padding} and dilation {dilation} (output would be {output_size})"
        )
    return Conv2d.apply(*operands, stride=stride, padding=padding, dilation=dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, dilation=1):
    """Transposed 2-d convolution ("deconvolution"): the adjoint of ``conv2d``."""
    stride, padding = _pair(stride, "stride"), _pair(padding, "padding")
    output_padding, dilation = _pair(output_padding, "output_padding"), _pair(dilation, "dilation")
    for i in range(2):
        if output_padding[i] >= max(stride[i], dilation[i]):
            raise ValueError(
                f"conv_transpose2d: output_padding {output_padding} must be smaller than "
                f"stride {stride} or dilation {dilation}"
            )
    operands = _check_operands("conv_transpose2d", input, weight, bias, 0, 1)
    return ConvTranspose2d.apply(
        *operands,
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        dilation=dilation,
    )
