"""2-D resizing on the CPU (``interpolate``, modes "nearest" and "bilinear"), forward and
backward, with PyTorch's index rules reproduced exactly.

Both modes are separable: output row oh reads from input rows chosen by oh alone, and
output column ow from input columns chosen by ow alone. So the rules are computed once
per axis as small tables (the `*_source_*` functions below, plain NumPy), and the kernels
only gather (forward) or scatter (backward) through those tables.

Per axis, with `in`/`out` the input/output sizes and `scale` the user's scale_factor
(or None when an output size was given):

nearest      src[d] = min(floor(d * step), in - 1),  step = 1/scale if given, else in/out,
             computed in float32 whatever the data's dtype (as PyTorch does), except
             out == in (src = d) and out == 2*in (src = d // 2), which PyTorch special-cases.
bilinear     align_corners=False:  s = max(step * (d + 0.5) - 0.5, 0),  step as above
             align_corners=True:   s = d * (in - 1) / (out - 1)   (0 if out == 1; scale unused)
             i0 = min(floor(s), in - 1),  i1 = min(i0 + 1, in - 1),
             w1 = clamp(s - i0, 0, 1),  w0 = 1 - w1,  in the data's dtype;
             out == in is the identity (i0 = i1 = d, w0 = 1, w1 = 0), as in PyTorch.

    forward   y[n, c, oh, ow] = sum over a in {0, 1}, b in {0, 1} of
                                wh_a[oh] * ww_b[ow] * x[n, c, ih_a[oh], iw_b[ow]]
    backward  dx[n, c, ih_a[oh], iw_b[ow]] += wh_a[oh] * ww_b[ow] * dy[n, c, oh, ow]

(nearest is the same with one tap of weight 1.) The backward is a scatter: several outputs
add into one input element, which is why each of its work items owns a whole (n, c) plane
and adds in a fixed order (deterministic). The CUDA twin gives a thread one input element,
which adds its terms in the same order; its atomic-add variant
(``use_deterministic_algorithms(False)``) gives a thread one output element instead.
"""

import numba
import numpy as np

from minimask.threading_layer import one_thread_at_a_time


def nearest_source_index(input_size, output_size, scale):
    """The input index each output index copies, by PyTorch's "nearest" rule (see above)."""
    dst = np.arange(output_size)
    if output_size == input_size:
        return dst
    if output_size == 2 * input_size:
        return dst // 2
    if scale is not None and scale > 0:
        step = np.float32(1.0 / scale)
    else:
        step = np.float32(input_size) / np.float32(output_size)
    src = np.floor(dst.astype(np.float32) * step).astype(np.int64)
    return np.minimum(src, input_size - 1)


def linear_source_weights(input_size, output_size, align_corners, scale, dtype):
    """(i0, i1, w0, w1): the two input indices each output index reads, and their weights,
    by PyTorch's "bilinear" rule along one axis (see above)."""
    dst = np.arange(output_size)
    if output_size == input_size:
        return dst, dst, np.ones(output_size, dtype), np.zeros(output_size, dtype)
    real = dtype.type
    if align_corners:
        step = real(input_size - 1) / real(output_size - 1) if output_size > 1 else real(0)
        src = step * dst.astype(dtype)
    else:
        if scale is not None and scale > 0:
            step = real(1.0 / scale)
        else:
            step = real(input_size) / real(output_size)
        src = np.maximum(step * (dst.astype(dtype) + real(0.5)) - real(0.5), real(0))
    index0 = np.minimum(np.floor(src).astype(np.int64), input_size - 1)
    index1 = np.minimum(index0 + 1, input_size - 1)
    weight1 = np.clip(src - index0, 0, 1).astype(dtype)
    return index0, index1, (1 - weight1).astype(dtype), weight1


@numba.njit(cache=True, parallel=True)
def _nearest_gather(x, src_h, src_w):
    """y[n, c, oh, ow] = x[n, c, src_h[oh], src_w[ow]].

    Loop nest: the work item `line` = (n*C + c)*OH + oh is one output row.
    """
    batch, channels = x.shape[:2]
    out_h, out_w = src_h.size, src_w.size
    y = np.empty((batch, channels, out_h, out_w), dtype=x.dtype)
    for line in numba.prange(batch * channels * out_h):
        oh = line % out_h
        c = line // out_h % channels
        n = line // (out_h * channels)
        h = src_h[oh]
        for ow in range(out_w):
            y[n, c, oh, ow] = x[n, c, h, src_w[ow]]
    return y


@numba.njit(cache=True, parallel=True)
def _nearest_scatter(grad_out, src_h, src_w, input_hw):
    """dx[n, c, src_h[oh], src_w[ow]] += dy[n, c, oh, ow] (the adjoint of _nearest_gather).

    Loop nest: the work item `plane` = n*C + c owns dx[n, c] (no write conflicts; a fixed,
    row-major order of the additions, so the result is deterministic).
    """
    batch, channels, out_h, out_w = grad_out.shape
    grad_in = np.zeros((batch, channels, input_hw[0], input_hw[1]), dtype=grad_out.dtype)
    for plane in numba.prange(batch * channels):
        c = plane % channels
        n = plane // channels
        for oh in range(out_h):
            h = src_h[oh]
            for ow in range(out_w):
                grad_in[n, c, h, src_w[ow]] += grad_out[n, c, oh, ow]
    return grad_in


@numba.njit(cache=True, parallel=True)
def _bilinear_gather(x, rows, row_weights, cols, col_weights):
    """y[n, c, oh, ow] = sum_ab row_weights[a, oh] * col_weights[b, ow]
                                * x[n, c, rows[a, oh], cols[b, ow]]      (a, b in {0, 1})

    rows/cols (2, OH)/(2, OW) hold (i0, i1) per output index, the weights (w0, w1).
    Loop nest: the work item `line` = (n*C + c)*OH + oh is one output row.
    """
    batch, channels = x.shape[:2]
    out_h, out_w = rows.shape[1], cols.shape[1]
    y = np.empty((batch, channels, out_h, out_w), dtype=x.dtype)
    for line in numba.prange(batch * channels * out_h):
        oh = line % out_h
        c = line // out_h % channels
        n = line // (out_h * channels)
        h0, h1 = rows[0, oh], rows[1, oh]
        wh0, wh1 = row_weights[0, oh], row_weights[1, oh]
        for ow in range(out_w):
            w0, w1 = cols[0, ow], cols[1, ow]
            ww0, ww1 = col_weights[0, ow], col_weights[1, ow]
            top = ww0 * x[n, c, h0, w0] + ww1 * x[n, c, h0, w1]
            bottom = ww0 * x[n, c, h1, w0] + ww1 * x[n, c, h1, w1]
            y[n, c, oh, ow] = wh0 * top + wh1 * bottom
    return y


@numba.njit(cache=True, parallel=True)
def _bilinear_scatter(grad_out, rows, row_weights, cols, col_weights, input_hw):
    """The adjoint of _bilinear_gather: for a, b in {0, 1}

        dx[n, c, rows[a, oh], cols[b, ow]] += row_weights[a, oh] * col_weights[b, ow]
                                              * dy[n, c, oh, ow]

    Loop nest: the work item `plane` = n*C + c owns dx[n, c] (no write conflicts, a fixed
    order of the additions, (oh, ow) row by row and the 4 taps in order: deterministic).
    """
    batch, channels, out_h, out_w = grad_out.shape
    grad_in = np.zeros((batch, channels, input_hw[0], input_hw[1]), dtype=grad_out.dtype)
    for plane in numba.prange(batch * channels):
        c = plane % channels
        n = plane // channels
        for oh in range(out_h):
            h0, h1 = rows[0, oh], rows[1, oh]
            wh0, wh1 = row_weights[0, oh], row_weights[1, oh]
            for ow in range(out_w):
                w0, w1 = cols[0, ow], cols[1, ow]
                ww0, ww1 = col_weights[0, ow], col_weights[1, ow]
                g = grad_out[n, c, oh, ow]
                grad_in[n, c, h0, w0] += wh0 * ww0 * g
                grad_in[n, c, h0, w1] += wh0 * ww1 * g
                grad_in[n, c, h1, w0] += wh1 * ww0 * g
                grad_in[n, c, h1, w1] += wh1 * ww1 * g
    return grad_in


def _nearest_tables(input_hw, output_hw, scales):
    return tuple(
        nearest_source_index(input_hw[axis], output_hw[axis], scales[axis]) for axis in range(2)
    )


def _bilinear_tables(input_hw, output_hw, align_corners, scales, dtype):
    """(rows, row_weights, cols, col_weights), each (2, size): see _bilinear_gather."""
    tables = []
    for axis in range(2):
        i0, i1, w0, w1 = linear_source_weights(
            input_hw[axis], output_hw[axis], align_corners, scales[axis], dtype
        )
        tables += [np.stack([i0, i1]), np.stack([w0, w1])]
    return tuple(tables)


@one_thread_at_a_time
def interpolate_nearest2d(x, output_hw, scales):
    """x (N, C, H, W) resized to (N, C, *output_hw) by "nearest"; scales (h, w), each the
    user's scale factor or None."""
    src_h, src_w = _nearest_tables(x.shape[2:], output_hw, scales)
    return _nearest_gather(np.ascontiguousarray(x), src_h, src_w)


@one_thread_at_a_time
def interpolate_nearest2d_backward(grad_out, input_hw, scales, deterministic=True):
    """dx (N, C, *input_hw): the adjoint of `interpolate_nearest2d`. ``deterministic`` is
    ignored: the CPU kernel is deterministic either way (both backends have one signature;
    ``minimask/cuda/interpolate.py`` picks its kernel with it)."""
    src_h, src_w = _nearest_tables(input_hw, grad_out.shape[2:], scales)
    return _nearest_scatter(np.ascontiguousarray(grad_out), src_h, src_w, tuple(input_hw))


@one_thread_at_a_time
def interpolate_bilinear2d(x, output_hw, align_corners, scales):
    """x (N, C, H, W) resized to (N, C, *output_hw) by "bilinear"."""
    tables = _bilinear_tables(x.shape[2:], output_hw, align_corners, scales, x.dtype)
    return _bilinear_gather(np.ascontiguousarray(x), *tables)


@one_thread_at_a_time
def interpolate_bilinear2d_backward(grad_out, input_hw, align_corners, scales, deterministic=True):
    """dx (N, C, *input_hw): the adjoint of `interpolate_bilinear2d`. ``deterministic`` is
    ignored: the CPU kernel is deterministic either way (both backends have one signature;
    ``minimask/cuda/interpolate.py`` picks its kernel with it)."""
    tables = _bilinear_tables(input_hw, grad_out.shape[2:], align_corners, scales, grad_out.dtype)
    return _bilinear_scatter(np.ascontiguousarray(grad_out), *tables, tuple(input_hw))
