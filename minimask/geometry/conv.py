"""A convolution's geometry: output sizes, and which outputs read inside the input.

Per axis, with input size ``in``, kernel ``k``, stride ``s``, padding ``p``, dilation ``d``
(PyTorch's definitions):

    conv2d             out = floor((in + 2p - d*(k-1) - 1) / s) + 1
    conv_transpose2d   out = (in - 1)*s - 2p + d*(k-1) + output_padding + 1

Output o of kernel tap i reads input index o*s - p + i*d; `valid_output_range` gives the
outputs for which that index lies in the map (the rest read the zero padding). The
callers: ``minimask/nn/functional/conv.py`` (shape checks), ``minimask/cpu/conv.py`` and
``minimask/cuda/conv.py`` (the kernels).
"""

from numba.extending import register_jitable


def conv2d_output_size(input_hw, kernel_hw, stride, padding, dilation):
    """Output (OH, OW) of a convolution: floor((in + 2p - d*(k-1) - 1) / s) + 1 per axis."""
    return tuple(
        (size + 2 * pad - dil * (k - 1) - 1) // s + 1
        for size, k, s, pad, dil in zip(input_hw, kernel_hw, stride, padding, dilation)
    )


def conv_transpose2d_output_size(input_hw, kernel_hw, stride, padding, output_padding, dilation):
    """Output (OH, OW) of a transposed convolution: (in - 1)*s - 2p + d*(k-1) + op + 1."""
    return tuple(
        (size - 1) * s - 2 * pad + dil * (k - 1) + out_pad + 1
        for size, k, s, pad, out_pad, dil in zip(
            input_hw, kernel_hw, stride, padding, output_padding, dilation
        )
    )


@register_jitable(error_model="numpy")
def valid_output_range(offset, stride, input_size, output_size):
    """The outputs o in [lo, hi) whose input index o*stride + offset lies in [0, input_size).

    Outside that range the input index is in the zero padding. lo = ceil(-offset / stride),
    hi = ceil((input_size - offset) / stride), both clipped to [0, output_size].
    """
    lo = min(max((stride - 1 - offset) // stride, 0), output_size)
    hi = min(max((input_size - offset + stride - 1) // stride, lo), output_size)
    return lo, hi
