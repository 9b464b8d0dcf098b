"""max_pool2d: the largest value of each kernel window of an NCHW tensor.

    y[n, c, oh, ow] = max over the window's taps (i, j) of
                      x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]

with taps outside x ignored (padding with -inf) and, per axis,

    OH = floor((H + 2 ph - dh (kh - 1) - 1 + (sh - 1 if ceil_mode else 0)) / sh) + 1

where in ceil_mode a last window that would start in the right padding is dropped, as in
PyTorch. The backward sends each output's gradient to the one element its maximum came
from, the first maximal element of the window in row-major order at a tie (PyTorch's
rule; a NaN in a window wins). The kernels are in ``minimask/cpu/pooling.py``; on CUDA
``minimask.use_deterministic_algorithms`` picks the backward kernel (True, the default:
the CPU's order of additions, the same bits every run; False: atomic adds).
"""

from minimask.autograd.function import Function
from minimask.determinism import are_deterministic_algorithms_enabled


class MaxPool2d(Function):
    """Forward: y and argmax (the chosen element of each window, h*W + w in its plane).
    Backward: dx[n, c].flat[argmax[n, c, oh, ow]] += dy[n, c, oh, ow]."""

    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding, dilation, output_size):
        y, argmax = ctx.xp.max_pool2d_forward(
            x, kernel_size, stride, padding, dilation, output_size
        )
        ctx.save_for_backward(argmax)
        ctx.input_size = x.shape[2:]
        ctx.window = (kernel_size, stride, padding, dilation)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        (argmax,) = ctx.saved_arrays
        return ctx.xp.max_pool2d_backward(
            grad_out,
            argmax,
            ctx.input_size,
            *ctx.window,
            deterministic=are_deterministic_algorithms_enabled(),
        )


def _pair(value, name):
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise ValueError(f"max_pool2d: {name} must be an int or a pair of ints, got {value!r}")
    return pair


def _output_size(size, kernel, stride, padding, dilation, ceil_mode):
    """Output length along one axis (see the module docstring)."""
    span = dilation * (kernel - 1) + 1
    rounding = stride - 1 if ceil_mode else 0
    length = (size + 2 * padding - span + rounding) // stride + 1
    if ceil_mode and (length - 1) * stride >= size + padding:
        length -= 1
    return length


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """2-D max pooling of an NCHW tensor (torch.nn.functional.max_pool2d, without
    return_indices). ``stride`` defaults to ``kernel_size``; each geometry argument is an
    int or an (h, w) pair."""
    kernel_size = _pair(kernel_size, "kernel_size")
    stride = kernel_size if stride is None else _pair(stride, "stride")
    padding, dilation = _pair(padding, "padding"), _pair(dilation, "dilation")
    if input.ndim != 4:
        raise ValueError(f"max_pool2d: input must be 4-d (N, C, H, W), got shape {input.shape}")
    if input.dtype.kind != "f":
        raise TypeError(f"max_pool2d: input must be floating point, got {input.dtype}")
    for name, values in (("kernel_size", kernel_size), ("stride", stride), ("dilation", dilation)):
        if min(values) < 1:
            raise ValueError(f"max_pool2d: {name} must be positive, got {values}")
    for axis in range(2):
        span = dilation[axis] * (kernel_size[axis] - 1) + 1
        if not 0 <= padding[axis] <= span // 2:
            raise ValueError(
                f"max_pool2d: padding {padding} must be between 0 and half the kernel's span "
                f"(kernel_size {kernel_size}, dilation {dilation})"
            )
    output_size = tuple(
        _output_size(
            input.shape[2 + axis],
            kernel_size[axis],
            stride[axis],
            padding[axis],
            dilation[axis],
            ceil_mode,
        )
        for axis in range(2)
    )
    if min(output_size) < 1:
        raise ValueError(
            f"max_pool2d: input of shape {input.shape} is too small for kernel_size "
            f"{kernel_size} with padding {padding} and dilation {dilation} "
            f"(output would be {output_size})"
        )
    return MaxPool2d.apply(
        input,
        kernel_size=kernel_size,
        stride=stride,
        padding=padding,
        dilation=dilation,
        output_size=output_size,
    )
