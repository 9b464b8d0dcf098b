"""2-D max pooling on the GPU: the twin of ``minimask/cpu/pooling.py`` (read its docstring
for the formulas, the argmax convention and the tie and NaN rules, which are the same).

    y[n, c, oh, ow] = max of x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]   over taps inside x
    argmax[n, c, oh, ow] = h*W + w of the chosen element (-1 for a window with none)
    dx[n, c].flat[argmax[n, c, oh, ow]] += dy[n, c, oh, ow]

The loop nests differ. Forward: one thread per OUTPUT element (the CPU's work item is an
output row), each scanning its window in the same row-major order, so the same element
wins a tie. Backward: one thread per output element adds its gradient at its argmax with
an ATOMIC add. The CPU gives each work item a whole (n, c) plane instead, so that
overlapping windows (stride < kernel), which send several gradients to one input element,
never write at the same time; here they may, and the atomic add makes each addition
complete before the next (in an order that can change from run to run, so the last bits
of such a sum may too).
"""

import math

import numpy as np
from numba import cuda

from minimask.cuda.array.creation import zeros
from minimask.cuda.array.cuda_array import empty
from minimask.cuda.array.launch import grid


def max_pool2d_forward(x, kernel_hw, stride, padding, dilation, output_hw):
    """(y, argmax), both (N, C, OH, OW): max pooling of x (N, C, H, W)."""
    x = x.contiguous()
    shape = (*x.shape[:2], *output_hw)
    y, argmax = empty(shape, x.dtype), empty(shape, np.int64)
    if y.size:
        _window_max[grid(y.size)](
            x.device_ndarray(),
            kernel_hw,
            stride,
            padding,
            dilation,
            y.device_ndarray(),
            argmax.device_ndarray(),
        )
    return y, argmax


def max_pool2d_backward(grad_out, argmax, input_hw):
    """dx (N, C, H, W): each output gradient added at its window's argmax."""
    grad_out = grad_out.contiguous()
    batch, channels = grad_out.shape[:2]
    height, width = input_hw
    grad_in = zeros((batch, channels, height * width), grad_out.dtype)
    if grad_out.size:
        _scatter_to_argmax[grid(grad_out.size)](
            grad_out.device_ndarray(), argmax.contiguous().device_ndarray(),
            grad_in.device_ndarray(),
        )  # fmt: skip
    return grad_in.reshape(batch, channels, height, width)


@cuda.jit
def _window_max(x, kernel_hw, stride, padding, dilation, y, argmax):
    """y, argmax = max pooling of x (N, C, H, W) contiguous; both (N, C, OH, OW).

    Loop nest: one thread per output element, item = ((n*C + c)*OH + oh)*OW + ow; it scans
    the window's rows h = oh*sh - ph + i*dh and columns w = ow*sw - pw + j*dw that lie
    inside x, keeping the first strict maximum (a NaN always replaces it).
    """
    batch, channels, height, width = x.shape
    kernel_h, kernel_w = kernel_hw
    stride_h, stride_w = stride
    pad_h, pad_w = padding
    dilation_h, dilation_w = dilation
    out_h, out_w = y.shape[2], y.shape[3]
    for item in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        ow = item % out_w
        oh = item // out_w % out_h
        c = item // (out_w * out_h) % channels
        n = item // (out_w * out_h * channels)
        best = -math.inf
        best_index = -1
        for i in range(kernel_h):
            h = oh * stride_h - pad_h + i * dilation_h
            if h < 0 or h >= height:
                continue
            for j in range(kernel_w):
                w = ow * stride_w - pad_w + j * dilation_w
                if w < 0 or w >= width:
                    continue
                value = x[n, c, h, w]
                if best_index < 0 or value > best or value != value:  # value != value: NaN
                    best = value
                    best_index = h * width + w
        y[n, c, oh, ow] = best
        argmax[n, c, oh, ow] = best_index


@cuda.jit
def _scatter_to_argmax(grad_out, argmax, grad_in):
    """grad_in (N, C, H*W) += each dy[n, c, oh, ow] at argmax[n, c, oh, ow].

    Loop nest: one thread per output element, item = ((n*C + c)*OH + oh)*OW + ow; atomic
    adds, because overlapping windows can choose the same input element (module docstring).
    argmax -1 (a window with no input element) adds nothing.
    """
    channels, out_h, out_w = grad_out.shape[1], grad_out.shape[2], grad_out.shape[3]
    for item in range(cuda.grid(1), grad_out.size, cuda.gridsize(1)):
        ow = item % out_w
        oh = item // out_w % out_h
        c = item // (out_w * out_h) % channels
        n = item // (out_w * out_h * channels)
        index = argmax[n, c, oh, ow]
        if index >= 0:
            cuda.atomic.add(grad_in, (n, c, index), grad_out[n, c, oh, ow])
