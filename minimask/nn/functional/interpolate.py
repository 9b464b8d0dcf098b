"""interpolate: resize an NCHW tensor by "nearest" or "bilinear" interpolation, with
PyTorch's semantics to the last index (torch.nn.functional.interpolate).

The output size is ``size``, or ``floor(input_size * scale_factor)`` per axis. When a
``scale_factor`` is given, PyTorch maps output index d to input coordinate d / scale_factor,
not d * input_size / output_size (the two differ when input_size * scale_factor is not an
integer); ``recompute_scale_factor=True`` switches to the second. The exact index rules
(including that "nearest" works in float32 and special-cases output sizes equal to and
twice the input size) are written out in ``minimask/cpu/interpolate.py``, where the kernels
are.

Both modes are linear in the input, y = A x, with A made of the weights above. Their
backward is the transpose, dx = A^T dy: each output gradient is scattered back onto the
input elements it was read from, times the weights it was read with. On CUDA
``minimask.use_deterministic_algorithms`` picks the backward kernel (True, the default:
the CPU's order of additions, the same bits every run; False: atomic adds).
"""

import math
import numbers

from minimask.autograd.function import Function
from minimask.determinism import are_deterministic_algorithms_enabled


class InterpolateNearest2d(Function):
    """y[n, c, oh, ow] = x[n, c, src_h[oh], src_w[ow]];
    dx[n, c, src_h[oh], src_w[ow]] += dy[n, c, oh, ow]."""

    @staticmethod
    def forward(ctx, x, output_size, scales):
        ctx.input_size, ctx.scales = x.shape[2:], scales
        return ctx.xp.interpolate_nearest2d(x, output_size, scales)

    @staticmethod
    def backward(ctx, grad_out):
        return ctx.xp.interpolate_nearest2d_backward(
            grad_out,
            ctx.input_size,
            ctx.scales,
            deterministic=are_deterministic_algorithms_enabled(),
        )


class InterpolateBilinear2d(Function):
    """y = sum over the 2 x 2 neighbours of wh * ww * x;  dx[neighbour] += wh * ww * dy."""

    @staticmethod
    def forward(ctx, x, output_size, align_corners, scales):
        ctx.input_size, ctx.align_corners, ctx.scales = x.shape[2:], align_corners, scales
        return ctx.xp.interpolate_bilinear2d(x, output_size, align_corners, scales)

    @staticmethod
    def backward(ctx, grad_out):
        return ctx.xp.interpolate_bilinear2d_backward(
            grad_out,
            ctx.input_size,
            ctx.align_corners,
            ctx.scales,
            deterministic=are_deterministic_algorithms_enabled(),
        )


def _per_axis(value, name):
    """An int/float or an (h, w) pair, as a pair."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2:
        raise ValueError(
            f"interpolate: {name} must be a number or a pair (h, w) for a 4-d input, got {value!r}"
        )
    return pair


def _output_size_and_scales(input, size, scale_factor, recompute_scale_factor):
    """(output (h, w), scales (h, w) or (None, None)) as PyTorch derives them."""
    if size is not None and scale_factor is not None:
        raise ValueError("interpolate: only one of size or scale_factor should be given")
    if size is None and scale_factor is None:
        raise ValueError("interpolate: either size or scale_factor should be given")
    if size is not None:
        if recompute_scale_factor:
            raise ValueError("interpolate: recompute_scale_factor is meaningless with a size")
        output_size = _per_axis(size, "size")
        if not all(isinstance(n, numbers.Integral) for n in output_size):
            raise TypeError(f"interpolate: size must hold ints, got {size!r}")
        output_size = tuple(int(n) for n in output_size)
        scales = (None, None)
    else:
        scales = tuple(float(s) for s in _per_axis(scale_factor, "scale_factor"))
        if min(scales) <= 0:
            raise ValueError(f"interpolate: scale_factor must be positive, got {scale_factor!r}")
        output_size = tuple(math.floor(float(n) * s) for n, s in zip(input.shape[2:], scales))
        if recompute_scale_factor:
            scales = (None, None)
    if min(output_size) < 1:
        raise ValueError(
            f"interpolate: output size {output_size} for input of shape {input.shape} "
            "must be positive"
        )
    return output_size, scales


def interpolate(
    input,
    size=None,
    scale_factor=None,
    mode="nearest",
    align_corners=None,
    recompute_scale_factor=None,
):
    """Resize NCHW ``input`` to ``size`` or by ``scale_factor`` (each a number or an (h, w)
    pair) with ``mode`` "nearest" or "bilinear".

    align_corners (bilinear only, as in PyTorch; None means False): True maps the corner
    pixels' centres onto each other (input coordinate d * (in - 1) / (out - 1)); False
    maps the corners of the image, (d + 0.5) * in / out - 0.5, clamped at 0.
    """
    if input.ndim != 4:
        raise ValueError(f"interpolate: input must be 4-d (N, C, H, W), got shape {input.shape}")
    if input.dtype.kind != "f":
        raise TypeError(f"interpolate: input must be floating point, got {input.dtype}")
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"interpolate: mode must be 'nearest' or 'bilinear', got {mode!r}")
    if mode == "nearest" and align_corners is not None:
        raise ValueError("interpolate: align_corners can only be set with mode='bilinear'")
    output_size, scales = _output_size_and_scales(input, size, scale_factor, recompute_scale_factor)
    if mode == "nearest":
        return InterpolateNearest2d.apply(input, output_size=output_size, scales=scales)
    return InterpolateBilinear2d.apply(
        input, output_size=output_size, align_corners=bool(align_corners), scales=scales
    )
