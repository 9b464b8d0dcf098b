"""2-D max pooling on the CPU: a forward kernel that records where each maximum came from,
and a backward kernel that sends each output gradient back to that one input element.

    y[n, c, oh, ow] = max of x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]
                      over the taps (i, j) of the kernel that fall inside x

Taps in the padding are skipped, which is the same as padding with -inf. The forward also
returns `argmax[n, c, oh, ow]`, the position h*W + w of the chosen element inside its
(n, c) plane (PyTorch's `return_indices` convention), so the backward needs no search:

    dx[n, c].flat[argmax[n, c, oh, ow]] += dy[n, c, oh, ow]

Tie rule (the same as PyTorch's CPU kernel): taps are visited row by row and a tap replaces
the current maximum only if it is strictly larger, so at a tie the gradient goes to the
first maximal element of the window in row-major order. A NaN always replaces the current
maximum (so NaN propagates, as in PyTorch) and the last NaN of a window is the one chosen.
A window that lies entirely in the padding (possible only with dilation) gives -inf, as
in PyTorch, and argmax -1, so it sends no gradient anywhere.
"""

import numba
import numpy as np

from minimask.threading_layer import one_thread_at_a_time


@one_thread_at_a_time
def max_pool2d_forward(x, kernel_hw, stride, padding, dilation, output_hw):
    """(y, argmax), both (N, C, OH, OW): max pooling of x (N, C, H, W)."""
    return _window_max(np.ascontiguousarray(x), kernel_hw, stride, padding, dilation, output_hw)


@one_thread_at_a_time
def max_pool2d_backward(
    grad_out, argmax, input_hw, kernel_hw, stride, padding, dilation, deterministic=True
):
    """dx (N, C, H, W): each output gradient added at its window's argmax.

    The window geometry and ``deterministic`` are ignored here: the CPU kernel needs only
    argmax and is deterministic either way (one owner per plane, a fixed order). They
    exist so that both backends have one signature; ``minimask/cuda/pooling.py`` picks its
    deterministic kernel (which needs the geometry) or its atomic-add kernel with them."""
    return _scatter_to_argmax(np.ascontiguousarray(grad_out), argmax, tuple(input_hw))


@numba.njit(cache=True, parallel=True)
def _window_max(x, kernel_hw, stride, padding, dilation, output_hw):
    """y, argmax = max pooling of x (N, C, H, W) contiguous; both (N, C, OH, OW).

    Loop nest: the work item `line` = (n*C + c)*OH + oh is one output row; for each ow it
    scans the window's rows h = oh*sh - ph + i*dh and columns w = ow*sw - pw + j*dw that
    lie inside x, keeping the first strict maximum (see the module docstring).
    """
    batch, channels, height, width = x.shape
    kernel_h, kernel_w = kernel_hw
    stride_h, stride_w = stride
    pad_h, pad_w = padding
    dilation_h, dilation_w = dilation
    out_h, out_w = output_hw
    y = np.empty((batch, channels, out_h, out_w), dtype=x.dtype)
    argmax = np.empty((batch, channels, out_h, out_w), dtype=np.int64)
    for line in numba.prange(batch * channels * out_h):
        oh = line % out_h
        c = line // out_h % channels
        n = line // (out_h * channels)
        for ow in range(out_w):
            best = -np.inf
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
                    if best_index < 0 or value > best or np.isnan(value):
                        best = value
                        best_index = h * width + w
            y[n, c, oh, ow] = best
            argmax[n, c, oh, ow] = best_index
    return y, argmax


@numba.njit(cache=True, parallel=True)
def _scatter_to_argmax(grad_out, argmax, input_hw):
    """dx (N, C, H, W): each dy[n, c, oh, ow] added to dx[n, c].flat[argmax[n, c, oh, ow]].

    Loop nest: the work item `plane` = n*C + c owns the whole plane dx[n, c], because
    overlapping windows (stride < kernel) send several output gradients to one element;
    within a plane the outputs are added in row-major order, so the sums are deterministic.
    argmax -1 (a window with no input element) adds nothing.
    The CUDA twin gives a thread one input element, which adds the gradients of the
    windows that chose it in the same row-major order (its atomic-add variant gives a
    thread one output element instead).
    """
    batch, channels, out_h, out_w = grad_out.shape
    height, width = input_hw
    grad_in = np.zeros((batch, channels, height * width), dtype=grad_out.dtype)
    for plane in numba.prange(batch * channels):
        c = plane % channels
        n = plane // channels
        for oh in range(out_h):
            for ow in range(out_w):
                index = argmax[n, c, oh, ow]
                if index >= 0:
                    grad_in[n, c, index] += grad_out[n, c, oh, ow]
    return grad_in.reshape((batch, channels, height, width))
