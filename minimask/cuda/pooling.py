"""2-D max pooling on the GPU: the twin of ``minimask/cpu/pooling.py`` (read its docstring
for the formulas, the argmax convention and the tie and NaN rules, which are the same).

    y[n, c, oh, ow] = max of x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]   over taps inside x
    argmax[n, c, oh, ow] = h*W + w of the chosen element (-1 for a window with none)
    dx[n, c].flat[argmax[n, c, oh, ow]] += dy[n, c, oh, ow]

Forward, ``_window_max``: one thread per OUTPUT element (the CPU's work item is an output
row), each scanning its window in the same row-major order, so the same element wins a tie.

Backward, two kernels, chosen by ``deterministic`` (``minimask.determinism``; the MaxPool2d
Function passes ``are_deterministic_algorithms_enabled()``, True by default). Overlapping
windows (stride < kernel) can choose the same input element, so one element may receive
several output gradients:

- ``_scatter_to_argmax_atomic`` (deterministic=False): one thread per OUTPUT element adds
  its gradient at its argmax with ``cuda.atomic.add``. The atomic add loses no term, but
  the order in which the terms of one element land depends on the scheduler, so the last
  bits of such a sum can change from run to run.
- ``_scatter_to_argmax`` (deterministic=True, the default): the gather form, one thread
  per INPUT element, which visits the windows that can contain it (the taps (i, j) that
  land on it, the inverse of the window formula) in increasing (oh, ow) order and adds
  the gradient of each window whose argmax it is. One owner per element, no atomics, and
  the terms arrive in row-major (oh, ow) order, the order of the CPU kernel (whose work
  item walks a whole (n, c) plane's outputs row by row): the CPU's sums, bit for bit, on
  every device (the terms are whole gradients, no products for a compiler to fuse). It
  runs N*C*H*W threads, each checking at most kh*kw windows.

The sums are in the gradient's dtype, as on the CPU.
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


def max_pool2d_backward(
    grad_out, argmax, input_hw, kernel_hw, stride, padding, dilation, deterministic=True
):
    """dx (N, C, H, W): each output gradient added at its window's argmax.

    deterministic=True runs `_scatter_to_argmax` (one thread per input element, the CPU's
    order: the same bits every run); False runs `_scatter_to_argmax_atomic` (one thread
    per output element, atomic adds). The window geometry tells the deterministic kernel
    which windows can contain an element. See the module docstring.
    """
    grad_out = grad_out.contiguous()
    batch, channels = grad_out.shape[:2]
    height, width = input_hw
    grad_in = zeros((batch, channels, height, width), grad_out.dtype)
    if grad_out.size and grad_in.size:
        argmax = argmax.contiguous().device_ndarray()
        if deterministic:
            _scatter_to_argmax[grid(grad_in.size)](
                grad_out.device_ndarray(), argmax, kernel_hw, stride, padding, dilation,
                grad_in.device_ndarray(),
            )  # fmt: skip
        else:
            _scatter_to_argmax_atomic[grid(grad_out.size)](
                grad_out.device_ndarray(), argmax,
                grad_in.reshape(batch, channels, height * width).device_ndarray(),
            )  # fmt: skip
    return grad_in


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
def _scatter_to_argmax(grad_out, argmax, kernel_hw, stride, padding, dilation, grad_in):
    """grad_in (N, C, H, W), zeroed by the caller, += each dy[n, c, oh, ow] at
    argmax[n, c, oh, ow]; argmax -1 (a window with no input element) adds nothing.
    The DETERMINISTIC kernel.

    Loop nest: one thread per input element, item = ((n*C + c)*H + h)*W + w, which owns
    grad_in[n, c, h, w] and sums the gradients of the windows that chose it:

        for i = kh-1 down to 0             window rows whose tap i lands on row h:
            oh = (h + ph - i*dh) / sh      if a whole number in [0, OH)
            for j = kw-1 down to 0
                ow = (w + pw - j*dw) / sw  if a whole number in [0, OW)
                if argmax[n, c, oh, ow] == h*W + w:   acc += dy[n, c, oh, ow]

    Taps in decreasing order give windows in increasing order (oh, then ow): the
    row-major order in which the CPU kernel adds them, so the sum is the CPU's.
    """
    channels, height, width = grad_in.shape[1], grad_in.shape[2], grad_in.shape[3]
    kernel_h, kernel_w = kernel_hw
    stride_h, stride_w = stride
    pad_h, pad_w = padding
    dilation_h, dilation_w = dilation
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    for item in range(cuda.grid(1), grad_in.size, cuda.gridsize(1)):
        w = item % width
        h = item // width % height
        c = item // (width * height) % channels
        n = item // (width * height * channels)
        index = h * width + w
        acc = grad_in[n, c, h, w]  # the caller's zero, in the gradient's dtype
        for i in range(kernel_h - 1, -1, -1):
            oh_scaled = h + pad_h - i * dilation_h  # = oh * stride_h
            if oh_scaled < 0 or oh_scaled % stride_h != 0 or oh_scaled // stride_h >= out_h:
                continue
            oh = oh_scaled // stride_h
            for j in range(kernel_w - 1, -1, -1):
                ow_scaled = w + pad_w - j * dilation_w
                if ow_scaled < 0 or ow_scaled % stride_w != 0 or ow_scaled // stride_w >= out_w:
                    continue
                ow = ow_scaled // stride_w
                if argmax[n, c, oh, ow] == index:
                    acc += grad_out[n, c, oh, ow]
        grad_in[n, c, h, w] = acc


@cuda.jit
def _scatter_to_argmax_atomic(grad_out, argmax, grad_in):
    """grad_in (N, C, H*W), zeroed by the caller, += each dy[n, c, oh, ow] at
    argmax[n, c, oh, ow], with ATOMIC adds.

    Loop nest: one thread per output element, item = ((n*C + c)*OH + oh)*OW + ow. Windows
    that chose the same element add into it at once; the atomic add keeps every term, in
    an order that can change from run to run (module docstring). argmax -1 adds nothing.
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
