"""2-D resizing on the GPU (``interpolate``, "nearest" and "bilinear"), forward and backward:
the twin of ``minimask/cpu/interpolate.py``, whose docstring has PyTorch's index rules.

The rules are computed per axis as small tables by the CPU file's own functions
(``nearest_source_index``, ``linear_source_weights``: host NumPy, a few hundred numbers),
so both backends follow exactly the same rules; the tables are copied to the GPU and the
kernels gather through them:

    forward   y[n, c, oh, ow] = sum over a, b in {0, 1} of
                                wh_a[oh] * ww_b[ow] * x[n, c, ih_a[oh], iw_b[ow]]
    backward  dx[n, c, ih_a[oh], iw_b[ow]] += wh_a[oh] * ww_b[ow] * dy[n, c, oh, ow]

("nearest" is the same with one tap of weight 1.) Forward: one thread per output element
(the CPU's work item is an output row).

Backward, two kernels per mode, chosen by ``deterministic`` (``minimask.determinism``; the
Functions pass ``are_deterministic_algorithms_enabled()``, True by default). Several
outputs read one input element, so its gradient is a sum of several terms:

- ``_nearest_scatter_atomic``, ``_bilinear_scatter_atomic`` (deterministic=False): one
  thread per OUTPUT element sends its terms into dx with ``cuda.atomic.add``; no term is
  lost, but the order in which the terms of one element land (and so the last bits of
  its sum) can change from run to run.
- ``_nearest_scatter``, ``_bilinear_scatter`` (deterministic=True, the default): the
  gather form, one thread per INPUT element (h, w), which owns dx[n, c, h, w]. A host
  table per axis (`_reader_spans`) gives the outputs that read each input index: the
  output rows that read row h form one span [first, end), because the source tables grow
  with the output index; the kernel still checks each tap, so a span only has to contain
  the readers. The thread walks the row span, then the column span, in increasing order,
  and adds the terms of each (oh, ow) in tap order (a, b) = (0, 0), (0, 1), (1, 0),
  (1, 1): the order in which the CPU kernel, which walks a whole (n, c) plane's outputs
  row by row, adds them. "nearest" adds whole gradients: the CPU's bits on every device.
  "bilinear" adds the same products in the same order: the CPU's bits in numba's
  simulator; on a GPU the compiler may fuse a product with its addition (one rounding
  instead of two), so the bits may differ from the CPU's in the last place, but not
  from run to run.

The sums are in the gradient's dtype, as on the CPU.
"""

import numpy as np
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
def _nearest_scatter(grad_out, src_h, src_w, row_readers, col_readers, grad_in):
    """grad_in[n, c, src_h[oh], src_w[ow]] += dy[n, c, oh, ow] (the adjoint of _nearest_gather).
    grad_in (N, C, H, W) is zeroed by the caller. The DETERMINISTIC kernel.

    row_readers (2, H): output rows [row_readers[0, h], row_readers[1, h]) include every
    oh with src_h[oh] == h (`_reader_spans`); col_readers (2, W) the same for columns.
    Loop nest: one thread per input element, item = ((n*C + c)*H + h)*W + w:

        for oh in row span of h, if src_h[oh] == h
            for ow in column span of w, if src_w[ow] == w
                acc += dy[n, c, oh, ow]

    Increasing oh, then ow: the CPU kernel's order (module docstring).
    """
    channels, height, width = grad_in.shape[1], grad_in.shape[2], grad_in.shape[3]
    for item in range(cuda.grid(1), grad_in.size, cuda.gridsize(1)):
        w = item % width
        h = item // width % height
        c = item // (width * height) % channels
        n = item // (width * height * channels)
        acc = grad_in[n, c, h, w]  # the caller's zero, in the gradient's dtype
        for oh in range(row_readers[0, h], row_readers[1, h]):
            if src_h[oh] != h:
                continue
            for ow in range(col_readers[0, w], col_readers[1, w]):
                if src_w[ow] == w:
                    acc += grad_out[n, c, oh, ow]
        grad_in[n, c, h, w] = acc


@cuda.jit
def _nearest_scatter_atomic(grad_out, src_h, src_w, grad_in):
    """grad_in[n, c, src_h[oh], src_w[ow]] += dy[n, c, oh, ow], with ATOMIC adds.

    Loop nest: one thread per element of dy, item = ((n*C + c)*OH + oh)*OW + ow; the order
    of the adds into one element can change from run to run (module docstring).
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
def _bilinear_scatter(
    grad_out, rows, row_weights, cols, col_weights, row_readers, col_readers, grad_in
):
    """The adjoint of _bilinear_gather: for a, b in {0, 1}

        grad_in[n, c, rows[a, oh], cols[b, ow]] += row_weights[a, oh] * col_weights[b, ow]
                                                   * dy[n, c, oh, ow]

    grad_in (N, C, H, W) is zeroed by the caller. The DETERMINISTIC kernel. row_readers
    (2, H) and col_readers (2, W) are the spans of the outputs that read each input index
    (`_reader_spans`). Loop nest: one thread per input element, item = ((n*C + c)*H + h)*W + w:

        for oh in row span of h
            for ow in column span of w
                g = dy[n, c, oh, ow]
                for a in 0, 1 with rows[a, oh] == h
                    for b in 0, 1 with cols[b, ow] == w
                        acc += row_weights[a, oh] * col_weights[b, ow] * g

    (oh, ow, a, b) in increasing order: the CPU kernel's order (module docstring). At the
    border both taps of an output can be one input index (i0 == i1): both terms are added,
    tap 0 first, as on the CPU.
    """
    channels, height, width = grad_in.shape[1], grad_in.shape[2], grad_in.shape[3]
    for item in range(cuda.grid(1), grad_in.size, cuda.gridsize(1)):
        w = item % width
        h = item // width % height
        c = item // (width * height) % channels
        n = item // (width * height * channels)
        acc = grad_in[n, c, h, w]  # the caller's zero, in the gradient's dtype
        for oh in range(row_readers[0, h], row_readers[1, h]):
            for ow in range(col_readers[0, w], col_readers[1, w]):
                g = grad_out[n, c, oh, ow]
                for a in range(2):
                    if rows[a, oh] != h:
                        continue
                    for b in range(2):
                        if cols[b, ow] == w:
                            acc += row_weights[a, oh] * col_weights[b, ow] * g
        grad_in[n, c, h, w] = acc


@cuda.jit
def _bilinear_scatter_atomic(grad_out, rows, row_weights, cols, col_weights, grad_in):
    """The same sums as _bilinear_scatter, with ATOMIC adds.

    Loop nest: one thread per element of dy, item = ((n*C + c)*OH + oh)*OW + ow, adding its
    4 terms; the order of the adds into one element can change from run to run.
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


def _reader_spans(sources, input_size):
    """(2, input_size) int64, for the deterministic backward kernels: column i is the span
    [first, end) of the output indices d that read input index i, i.e. the d with i among
    sources[:, d] (sources (taps, out): one row of source indices per tap). An index no
    output reads gets the empty span [0, 0).

    The source tables of both modes grow with d, so the readers of i are exactly the d of
    its span; the kernels check each d anyway, so a span is only required to contain them.
    """
    outputs = np.broadcast_to(np.arange(sources.shape[1]), sources.shape).ravel()
    first = np.full(input_size, sources.shape[1], dtype=np.int64)
    end = np.zeros(input_size, dtype=np.int64)
    np.minimum.at(first, sources.ravel(), outputs)
    np.maximum.at(end, sources.ravel(), outputs + 1)
    return np.stack([np.minimum(first, end), end])


def _nearest_tables(input_hw, output_hw, scales):
    """(src_h, src_w) on the GPU: see _nearest_gather."""
    return tuple(
        asarray(
            nearest_source_index(input_hw[axis], output_hw[axis], scales[axis])
        ).device_ndarray()
        for axis in range(2)
    )


def _nearest_readers(input_hw, output_hw, scales):
    """(row_readers, col_readers) on the GPU: the `_reader_spans` of the "nearest" tables."""
    return tuple(
        asarray(
            _reader_spans(
                nearest_source_index(input_hw[axis], output_hw[axis], scales[axis])[None],
                input_hw[axis],
            )
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


def _bilinear_readers(input_hw, output_hw, align_corners, scales, dtype):
    """(row_readers, col_readers) on the GPU: the `_reader_spans` of the "bilinear" tables."""
    readers = []
    for axis in range(2):
        i0, i1, _, _ = linear_source_weights(
            input_hw[axis], output_hw[axis], align_corners, scales[axis], dtype
        )
        readers.append(asarray(_reader_spans(np.stack([i0, i1]), input_hw[axis])).device_ndarray())
    return tuple(readers)


def interpolate_nearest2d(x, output_hw, scales):
    """x (N, C, H, W) resized to (N, C, *output_hw) by "nearest"; scales (h, w), each the
    user's scale factor or None."""
    x = x.contiguous()
    src_h, src_w = _nearest_tables(x.shape[2:], output_hw, scales)
    y = empty((*x.shape[:2], *output_hw), x.dtype)
    if y.size:
        _nearest_gather[grid(y.size)](x.device_ndarray(), src_h, src_w, y.device_ndarray())
    return y


def interpolate_nearest2d_backward(grad_out, input_hw, scales, deterministic=True):
    """dx (N, C, *input_hw): the adjoint of `interpolate_nearest2d`. deterministic=True
    runs `_nearest_scatter` (one thread per input element, the CPU's order), False
    `_nearest_scatter_atomic` (atomic adds; module docstring)."""
    grad_out = grad_out.contiguous()
    src_h, src_w = _nearest_tables(input_hw, grad_out.shape[2:], scales)
    grad_in = zeros((*grad_out.shape[:2], *input_hw), grad_out.dtype)
    if grad_out.size and grad_in.size:
        if deterministic:
            readers = _nearest_readers(input_hw, grad_out.shape[2:], scales)
            _nearest_scatter[grid(grad_in.size)](
                grad_out.device_ndarray(), src_h, src_w, *readers, grad_in.device_ndarray()
            )
        else:
            _nearest_scatter_atomic[grid(grad_out.size)](
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


def interpolate_bilinear2d_backward(grad_out, input_hw, align_corners, scales, deterministic=True):
    """dx (N, C, *input_hw): the adjoint of `interpolate_bilinear2d`. deterministic=True
    runs `_bilinear_scatter` (one thread per input element, the CPU's order), False
    `_bilinear_scatter_atomic` (atomic adds; module docstring)."""
    grad_out = grad_out.contiguous()
    output_hw, dtype = grad_out.shape[2:], grad_out.dtype
    tables = _bilinear_tables(input_hw, output_hw, align_corners, scales, dtype)
    grad_in = zeros((*grad_out.shape[:2], *input_hw), dtype)
    if grad_out.size and grad_in.size:
        if deterministic:
            readers = _bilinear_readers(input_hw, output_hw, align_corners, scales, dtype)
            _bilinear_scatter[grid(grad_in.size)](
                grad_out.device_ndarray(), *tables, *readers, grad_in.device_ndarray()
            )
        else:
            _bilinear_scatter_atomic[grid(grad_out.size)](
                grad_out.device_ndarray(), *tables, grad_in.device_ndarray()
            )
    return grad_in
