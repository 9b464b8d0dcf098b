"""Reference solutions of lesson 03's exercises (lessons/exercises/lesson03.py checks them)."""

import numpy as np

import minimask
import minimask.nn.functional as F


def conv_output_size(size, kernel, stride, padding, dilation):
    """The dilated kernel spans d*(k-1) + 1 inputs; it fits at positions 0, s, 2s, ... of
    the padded input as long as it does not run past its end."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _taps(tap, dilation, stride, out_size):
    """The padded-input indices tap ``tap`` reads along one axis: tap*d, tap*d + s, ...,
    one per output position."""
    start = tap * dilation
    return slice(start, start + stride * (out_size - 1) + 1, stride)


def im2col(x, kh, kw, stride, padding, dilation):
    """Pad x once; tap (i, j) of every patch is then the strided slice of the padded input
    that starts at (i*d, j*d), so each of the kh*kw taps fills C rows of cols at once."""
    N, C, H, W = x.shape
    OH = conv_output_size(H, kh, stride, padding, dilation)
    OW = conv_output_size(W, kw, stride, padding, dilation)
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    cols = np.empty((C, kh, kw, N, OH, OW), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            tap = padded[:, :, _taps(i, dilation, stride, OH), _taps(j, dilation, stride, OW)]
            cols[:, i, j] = tap.transpose(1, 0, 2, 3)  # (N, C, OH, OW) -> (C, N, OH, OW)
    return cols.reshape(C * kh * kw, N * OH * OW)


def col2im(cols, x_shape, kh, kw, stride, padding, dilation):
    """The adjoint of im2col above: each tap's slice of the padded input gets its rows of
    cols added (+=: patches overlap), then the padding is cut off."""
    N, C, H, W = x_shape
    OH = conv_output_size(H, kh, stride, padding, dilation)
    OW = conv_output_size(W, kw, stride, padding, dilation)
    padded = np.zeros((N, C, H + 2 * padding, W + 2 * padding), dtype=cols.dtype)
    grid = cols.reshape(C, kh, kw, N, OH, OW)
    for i in range(kh):
        for j in range(kw):
            tap = (_taps(i, dilation, stride, OH), _taps(j, dilation, stride, OW))
            padded[:, :, tap[0], tap[1]] += grid[:, i, j].transpose(1, 0, 2, 3)
    return padded[:, :, padding : padding + H, padding : padding + W]


def flip_kernel(weight):
    """W'[c, o, i, j] = W[o, c, kh-1-i, kw-1-j]: channels swapped, taps reversed."""
    return np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))


def conv2d_input_grad(dy, weight, padding, dilation):
    """dx of a stride-1 convolution: dy convolved with the flipped kernel, padding
    d*(k-1) - p per axis (the full padding minus the forward's)."""
    kh, kw = weight.shape[2:]
    flipped_padding = (dilation * (kh - 1) - padding, dilation * (kw - 1) - padding)
    dx = F.conv2d(
        minimask.tensor(dy),
        minimask.tensor(flip_kernel(weight)),
        padding=flipped_padding,
        dilation=dilation,
    )
    return dx.numpy()


def conv_transpose_output_size(size, kernel, stride, padding, output_padding, dilation):
    """The inverse of the convolution's size formula, taking its largest preimage's
    remainder as output_padding: (in - 1)*s - 2p + d*(k-1) + output_padding + 1."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def output_padding_for(size, kernel, stride, padding, dilation):
    """The rows the floor of the convolution's size formula dropped: the input size minus
    the transposed convolution's size without output_padding."""
    conv_size = conv_output_size(size, kernel, stride, padding, dilation)
    return size - conv_transpose_output_size(conv_size, kernel, stride, padding, 0, dilation)
