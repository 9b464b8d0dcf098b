"""2-D resizing on the GPU (``interpolate``, "nearest" and "bilinear"), forward and backward:
the twin of ``minimask/cpu/interpolate.py``, whose docstring has PyTorch's index rules.

The rules are computed per axis as small tables by the CPU file's own functions
(``nearest_source_index``, ``linear_source_weights``: host NumPy, a few hundred numbers),
so both backends follow exactly the same rules; the tables are copied to the GPU and the
kernels only gather through them (forward) or scatter (backward):

    forward   y[n, c, oh, ow] = sum over a, b in {0, 1} of
                                wh_a[oh] * ww_b[ow] * x[n, c, ih_a[oh], iw_b[ow]]
    backward  dx[n, c, ih_a[oh], iw_b[ow]] += wh_a[oh] * ww_b[ow] * dy[n, c, oh, ow]

("nearest" is the same with one tap of weight 1.) Forward: one thread per output element
(the CPU's work item is an output row). Backward: one thread per output element too,
adding into dx with ATOMIC adds, because several outputs read the same input element and
their threads may add to it at the same time; the CPU instead gives each work item a whole
(n, c) plane, which makes its sums deterministic, while here the order of the additions
(and so the last bits of a sum) can change from run to run.
"""

from numba import cuda

from minimask.cpu.interpolate import linear_source_weights, nearest_source_index
from minimask.cuda.array.creation import asarray, zeros
from minimask.cuda.array.cuda_array import empty
from minimask.cuda.array.launch import grid


@cuda.jit
def _nearest_gather(x, src_h, src_w, y):
    """y[n, c, oh, ow] = x[n, c, src_h[oh], src_w[ow]].

    Loop nest: one thread per output element, item = ((n*C + c)*OH + oh)*OW + ow.
    """
    channels, out_h, out_w = y.shape[1], y.shape[2], y.shape[3]
    for item in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        ow = item % out_w
        oh = item // out_w % out_h
        c = item // (out_w * out_h) % channels
        n = item // (out_w * out_h * channels)
        y[n, c, oh, ow] = x[n, c, src_h[oh], src_w[ow]]


@cuda.jit
def _nearest_scatter(grad_out, src_h, src_w, grad_in):
    """grad_in[n, c, src_h[oh], src_w[ow]] += dy[n, c, oh, ow] (the adjoint of _nearest_gather).

    Loop nest: one thread per element of dy, atomic adds (module docstring).
    """
    channels, out_h, out_w = grad_out.shape[1], grad_out.shape[2], grad_out.shape[3]
    for item in range(cuda.grid(1), grad_out.size, cuda.gridsize(1)):
        ow = item % out_w
        oh = item // out_w % out_h
        c = item // (out_w * out_h) % channels
        n = item // (out_w * out_h * channels)
        cuda.atomic.add(grad_in, (n, c, src_h[oh], src_w[ow]), grad_out[n, c, oh, ow])


@cuda.jit
def _bilinear_gather(x, rows, row_weights, cols, col_weights, y):
    """y[n, c, oh, ow] = sum_ab row_weights[a, oh] * col_weights[b, ow]
                                * x[n, c, rows[a, oh], cols[b, ow]]      (a, b in {0, 1})

    Loop nest: one thread per output element, item = ((n*C + c)*OH + oh)*OW + ow.
    """
    channels, out_h, out_w = y.shape[1], y.shape[2], y.shape[3]
    for item in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        ow = item % out_w
        oh = item // out_w % out_h
        c = item // (out_w * out_h) % channels
        n = item // (out_w * out_h * channels)
        h0, h1 = rows[0, oh], rows[1, oh]
        wh0, wh1 = row_weights[0, oh], row_weights[1, oh]
        w0, w1 = cols[0, ow], cols[1, ow]
        ww0, ww1 = col_weights[0, ow], col_weights[1, ow]
        top = ww0 * x[n, c, h0, w0] + ww1 * x[n, c, h0, w1]
        bottom = ww0 * x[n, c, h1, w0] + ww1 * x[n, c, h1, w1]
        y[n, c, oh, ow] = wh0 * top + wh1 * bottom


@cuda.jit
def _bilinear_scatter(grad_out, rows, row_weights, cols, col_weights, grad_in):
    """The adjoint of _bilinear_gather: for a, b in {0, 1}

        grad_in[n, c, rows[a, oh], cols[b, ow]] += row_weights[a, oh] * col_weights[b, ow]
                                                   * dy[n, c, oh, ow]

    Loop nest: one thread per element of dy, atomic adds (module docstring).
    """
    channels, out_h, out_w = grad_out.shape[1], grad_out.shape[2], grad_out.shape[3]
    for item in range(cuda.grid(1), grad_out.size, cuda.gridsize(1)):
        ow = item % out_w
        oh = item // out_w % out_h
        c = item // (out_w * out_h) % channels
        n = item // (out_w * out_h * channels)
        h0, h1 = rows[0, oh], rows[1, oh]
        wh0, wh1 = row_weights[0, oh], row_weights[1, oh]
        w0, w1 = cols[0, ow], cols[1, ow]
        ww0, ww1 = col_weights[0, ow], col_weights[1, ow]
        g = grad_out[n, c, oh, ow]
        cuda.atomic.add(grad_in, (n, c, h0, w0), wh0 * ww0 * g)
        cuda.atomic.add(grad_in, (n, c, h0, w1), wh0 * ww1 * g)
        cuda.atomic.add(grad_in, (n, c, h1, w0), wh1 * ww0 * g)
        cuda.atomic.add(grad_in, (n, c, h1, w1), wh1 * ww1 * g)


def _nearest_tables(input_hw, output_hw, scales):
    return tuple(
        asarray(
            nearest_source_index(input_hw[axis], output_hw[axis], scales[axis])
        ).device_ndarray()
        for axis in range(2)
    )


def _bilinear_tables(input_hw, output_hw, align_corners, scales, dtype):
    """(rows, row_weights, cols, col_weights) on the GPU, each (2, size): see _bilinear_gather."""
    tables = []
    for axis in range(2):
        i0, i1, w0, w1 = linear_source_weights(
            input_hw[axis], output_hw[axis], align_corners, scales[axis], dtype
        )
        tables += [asarray([i0, i1]), asarray([w0, w1], dtype)]
    return tuple(table.device_ndarray() for table in tables)


def interpolate_nearest2d(x, output_hw, scales):
    """x (N, C, H, W) resized to (N, C, *output_hw) by "nearest"; scales (h, w), each the
    user's scale factor or None."""
    x = x.contiguous()
    src_h, src_w = _nearest_tables(x.shape[2:], output_hw, scales)
    y = empty((*x.shape[:2], *output_hw), x.dtype)
    if y.size:
        _nearest_gather[grid(y.size)](x.device_ndarray(), src_h, src_w, y.device_ndarray())
    return y


def interpolate_nearest2d_backward(grad_out, input_hw, scales):
    grad_out = grad_out.contiguous()
    src_h, src_w = _nearest_tables(input_hw, grad_out.shape[2:], scales)
    grad_in = zeros((*grad_out.shape[:2], *input_hw), grad_out.dtype)
    if grad_out.size:
        _nearest_scatter[grid(grad_out.size)](
            grad_out.device_ndarray(), src_h, src_w, grad_in.device_ndarray()
        )
    return grad_in


def interpolate_bilinear2d(x, output_hw, align_corners, scales):
    """x (N, C, H, W) resized to (N, C, *output_hw) by "bilinear"."""
    x = x.contiguous()
    tables = _bilinear_tables(x.shape[2:], output_hw, align_corners, scales, x.dtype)
    y = empty((*x.shape[:2], *output_hw), x.dtype)
    if y.size:
        _bilinear_gather[grid(y.size)](x.device_ndarray(), *tables, y.device_ndarray())
    return y


def interpolate_bilinear2d_backward(grad_out, input_hw, align_corners, scales):
    grad_out = grad_out.contiguous()
    tables = _bilinear_tables(input_hw, grad_out.shape[2:], align_corners, scales, grad_out.dtype)
    grad_in = zeros((*grad_out.shape[:2], *input_hw), grad_out.dtype)
    if grad_out.size:
        _bilinear_scatter[grid(grad_out.size)](
            grad_out.device_ndarray(), *tables, grad_in.device_ndarray()
        )
    return grad_in
