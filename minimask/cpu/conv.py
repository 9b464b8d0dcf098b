"""2-D convolution and transposed convolution on the CPU: im2col / col2im + GEMM.

A convolution is a matrix product in disguise. `im2col` copies every receptive field of
the input into one column of a matrix `cols`, after which the whole convolution is one
GEMM (general matrix multiply), which BLAS runs far faster than any loop we could write:

    cols[c*kh*kw + i*kw + j, n*OH*OW + oh*OW + ow] = x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]
    y[n, :, oh, ow] = W2d @ cols[:, n*OH*OW + oh*OW + ow]          W2d = weight.reshape(Cout, -1)

(0 where the input index falls into the padding). Its adjoint, `col2im`, adds every column
back onto the input positions it was copied from. The three products of a convolution are

    forward       y    = W2d @ cols               (im2col, then GEMM)
    weight grad   dW2d = dYmat @ cols.T           (im2col, then GEMM)
    input grad    dx   = col2im(W2d.T @ dYmat)    (GEMM, then col2im)

with dYmat the output gradient as a (Cout, N*OH*OW) matrix. A transposed convolution is the
input gradient of a convolution with the same weight, so the roles swap: its forward is
"GEMM, then col2im" (`_conv2d_input_grad`), its input gradient is a plain convolution of dY
("im2col, then GEMM", `_conv2d_gemm`), and its weight gradient reuses that im2col(dY):
dW2d = Xmat @ im2col(dY).T (`_conv2d_weight_grad`). Both layers are built from these three.

A third identity closes the circle: with stride 1, conv2d(x, W, p) equals
conv_transpose2d(x, W', d*(k-1) - p) with W' the kernel with its channels swapped and its
taps reversed (`_flip_kernel`). The code uses it in both directions where the CPU gains:

- conv2d backward, stride 1: it is the transposed convolution's backward, which gets dx and
  dW from one im2col of dY (two GEMMs of the forward's size, no col2im, no second im2col);
- conv_transpose2d forward, stride 1: it is a convolution (im2col, then GEMM).

Layout. `cols` is (Cin*kh*kw, N*OH*OW), row-major: one row per (channel, kernel tap), the
whole batch side by side along the columns (the kernels see it as (Cin*kh*kw, N, OH, OW)).

- `im2col` writes, and `col2im` reads, runs of OW values that are contiguous in both cols
  and x (for stride 1), so both kernels stream memory;
- the weight gradient is one GEMM whose reduction runs over the whole batch (N*OH*OW), not
  N small products to be summed;
- the forward GEMM writes straight into the NCHW output through a per-image view of `cols`
  (`cols.reshape(K, N, L).transpose(1, 0, 2)`, no copy); for small images (under 1024
  output pixels) one batch-wide GEMM plus a transposing copy into y is faster.
- a 1x1 kernel with stride 1 and no padding needs no im2col: cols is x with the batch side
  by side (a transposing copy).

Memory. cols holds Cin*kh*kw * N*OH*OW values for the N*Cin*H*W of x: kh*kw*OH*OW/(H*W)
times as many, whatever Cin (9x for a 3x3 kernel with stride 1 and size-preserving padding,
about 9/4x with stride 2). It is not kept from the forward to the backward: the backward
rebuilds what it needs from x and the weight, which costs one memory-bound copy but keeps a
training step's memory at the size of its activations. The im2col matrices and other large
temporaries live in per-thread buffers that are reused from call to call (`_Workspace`):
touching freshly allocated memory costs a page fault per 4 KiB, which can cost more than the
im2col copy itself.

The numba kernels are written as "one flat work index, decomposed into coordinates", with
the innermost (contiguous) coordinate as a loop so that it vectorises; a CUDA twin makes
that innermost coordinate part of the thread index and keeps the same formulas.
"""

import math
import threading

import numba
import numpy as np

from minimask.geometry.conv import (
    conv2d_output_size,
    conv_transpose2d_output_size,
    valid_output_range,
)
from minimask.threading_layer import one_thread_at_a_time

# error_model="numpy": integer division never raises, so the compiler drops the zero checks.
_PARALLEL_KERNEL = numba.njit(parallel=True, cache=True, error_model="numpy")

# Index type of the innermost copy loops. Numba wraps negative indices (x[-1] is the last
# element) with a check on every access; for a signed index it cannot prove >= 0, that check
# makes the address non-affine and LLVM stops vectorising the loop, which then runs several
# times slower. Unsigned indices skip the check. Only the innermost run index needs it.
_INDEX = np.uintp


@_PARALLEL_KERNEL
def im2col(x, kernel_hw, stride, padding, dilation, cols):
    """Copy every receptive field of x (N, C, H, W) into a column of `cols` (C*kh*kw, N, OH, OW).

    cols[c*kh*kw + i*kw + j, n, oh, ow] = x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]
    and 0 where that input index is outside x (zero padding). Overwrites `cols`, whose shape
    gives OH and OW; cols.reshape(C*kh*kw, N*OH*OW) is the GEMM operand.

    Why: with `cols` the convolution is one GEMM, W2d @ cols, which BLAS runs far faster
    than any hand-written loop over the kernel taps.

    Loop nest: the work item `item` = tap*N + n, tap = (c*kh + i)*kw + j, fills the
    contiguous block cols[tap, n] row by row (oh), and each row is a run of zeros (left
    padding), a strided copy of x[n, c, h, :] and a run of zeros (right padding); rows whose
    h falls into the padding are all zeros. The valid ranges come from `valid_output_range`,
    so the copy loop has no branch and vectorises.
    """
    batch, channels, height, width = x.shape
    kernel_h, kernel_w = kernel_hw
    stride_h, stride_w = stride
    pad_h, pad_w = padding
    dilation_h, dilation_w = dilation
    out_h, out_w = cols.shape[2:]
    for item in numba.prange(cols.shape[0] * batch):
        n = item % batch
        tap = item // batch
        j = tap % kernel_w
        i = tap // kernel_w % kernel_h
        c = tap // (kernel_w * kernel_h)
        offset_h = i * dilation_h - pad_h
        offset_w = j * dilation_w - pad_w
        oh_lo, oh_hi = valid_output_range(offset_h, stride_h, height, out_h)
        ow_lo, ow_hi = valid_output_range(offset_w, stride_w, width, out_w)
        for oh in range(out_h):
            lo, hi = (ow_lo, ow_hi) if oh_lo <= oh < oh_hi else (0, 0)
            h = oh * stride_h + offset_h
            for ow in range(lo):
                cols[tap, n, oh, ow] = 0
            first_w = _INDEX(lo * stride_w + offset_w)
            for k in range(_INDEX(hi - lo)):
                cols[tap, n, oh, _INDEX(lo) + k] = x[n, c, h, first_w + k * _INDEX(stride_w)]
            for ow in range(hi, out_w):
                cols[tap, n, oh, ow] = 0


@_PARALLEL_KERNEL
def col2im(cols, kernel_hw, stride, padding, dilation, x):
    """Adjoint of im2col: add every entry of `cols` onto the input position it came from.

    x[n, c, h, w] += sum of cols[c*kh*kw + i*kw + j, n, oh, ow]
                     over all (i, j, oh, ow) with oh*sh - ph + i*dh == h, ow*sw - pw + j*dw == w.
    cols is (C*kh*kw, N, OH, OW); x (N, C, H, W) is updated in place, so the caller chooses
    its start: zeros for an input gradient, the bias for a transposed convolution's output.

    Why: it turns the GEMM result W2d.T @ dYmat into the input gradient of a convolution
    (and so into the output of a transposed convolution).

    Loop nest: the work item `item` = n*C + c owns the plane x[n, c], so there are no write
    conflicts and every element sums its terms in the same (i, j) order (deterministic).
    For each tap (i, j) and each valid row oh it adds the contiguous run
    cols[tap, n, oh, ow_lo:ow_hi] onto x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw].
    A CUDA twin with one thread per x element gathers the same terms instead: for each
    (i, j), oh = (h + ph - i*dh) / sh and ow = (w + pw - j*dw) / sw when exact and in range.
    """
    batch, channels, height, width = x.shape
    kernel_h, kernel_w = kernel_hw
    stride_h, stride_w = stride
    pad_h, pad_w = padding
    dilation_h, dilation_w = dilation
    out_h, out_w = cols.shape[2:]
    for item in numba.prange(batch * channels):
        c = item % channels
        n = item // channels
        for i in range(kernel_h):
            offset_h = i * dilation_h - pad_h
            oh_lo, oh_hi = valid_output_range(offset_h, stride_h, height, out_h)
            for j in range(kernel_w):
                tap = (c * kernel_h + i) * kernel_w + j
                offset_w = j * dilation_w - pad_w
                ow_lo, ow_hi = valid_output_range(offset_w, stride_w, width, out_w)
                first_w = _INDEX(ow_lo * stride_w + offset_w)
                for oh in range(oh_lo, oh_hi):
                    h = oh * stride_h + offset_h
                    for k in range(_INDEX(ow_hi - ow_lo)):
                        x[n, c, h, first_w + k * _INDEX(stride_w)] += cols[
                            tap, n, oh, _INDEX(ow_lo) + k
                        ]


class _Workspace(threading.local):
    """Reusable per-thread buffers for the large temporaries: im2col matrices, GEMM results
    on their way to col2im or to y, and batch matrices of x or dY.

    Why: a freshly allocated array costs a page fault per 4 KiB page on first touch (the OS
    hands out zeroed pages lazily), which can make a large im2col matrix cost more to
    allocate than to fill, and conv2d forward + backward allocates several of them
    (benchmarks/bench_conv.py measures the difference). One grow-only buffer per role and
    thread pays that once. Arrays handed back to the caller are always fresh.
    """

    def __init__(self):
        self.buffers = {}

    def array(self, role, shape, dtype):
        """An uninitialised array of `shape` in the `role` buffer; valid until the next call
        with the same role on this thread."""
        size = math.prod(shape)
        key = (role, np.dtype(dtype).str)
        buffer = self.buffers.get(key)
        if buffer is None or buffer.size < size:
            buffer = self.buffers[key] = np.empty(size, dtype=dtype)
        return buffer[:size].reshape(shape)


_workspace = _Workspace()


def _per_image(matrix, batch):
    """View a (rows, N*L) matrix as N per-image (rows, L) matrices, without copying."""
    rows = matrix.shape[0]
    return matrix.reshape(rows, batch, -1).transpose(1, 0, 2)


def _batch_matrix(images, role):
    """(N, C, H, W) -> (C, N*H*W) with the batch side by side along the columns, in the
    workspace buffer `role`."""
    batch, channels = images.shape[:2]
    matrix = _workspace.array(role, (channels, images[:, 0].size), images.dtype)
    _per_image(matrix, batch)[...] = images.reshape(batch, channels, -1)
    return matrix


def _is_pointwise(kernel_hw, stride, padding):
    return kernel_hw == (1, 1) and stride == (1, 1) and padding == (0, 0)


def _im2col_matrix(x, kernel_hw, stride, padding, dilation, output_hw):
    """im2col into the workspace, as the (Cin*kh*kw, N*OH*OW) GEMM operand. For a 1x1 kernel
    with stride 1 and no padding, cols is x itself with the batch side by side: a plain
    transposing copy."""
    if _is_pointwise(kernel_hw, stride, padding):
        return _batch_matrix(x, "cols")
    batch, channels = x.shape[:2]
    rows = channels * kernel_hw[0] * kernel_hw[1]
    cols = _workspace.array("cols", (rows, batch, *output_hw), x.dtype)
    im2col(x, kernel_hw, stride, padding, dilation, cols)
    return cols.reshape(rows, -1)


# Output pixels per image from which N per-image GEMMs writing straight into y beat one GEMM
# over the whole batch followed by a transposing copy into y: the per-image GEMMs save the
# copy, but small GEMMs run slower. Tuned with benchmarks/bench_conv.py, whose two workloads
# fall on either side of it (their convolution GEMMs write 64 x 64 and 14 x 14 px/image).
_PER_IMAGE_GEMM_MIN_PIXELS = 1024


def _conv2d_gemm(x, weight, bias, output_hw, stride, padding, dilation):
    """Convolution: im2col, then y = W2d @ cols (+ bias).

    x (N, Cin, H, W) and weight (Cout, Cin, kh, kw) contiguous, same dtype; bias or None.
    Returns (y (N, Cout, *output_hw), cols); cols lives in the workspace.
    """
    batch = x.shape[0]
    out_channels = weight.shape[0]
    weight_matrix = weight.reshape(out_channels, -1)
    cols = _im2col_matrix(x, weight.shape[2:], stride, padding, dilation, output_hw)
    y = np.empty((batch, out_channels, *output_hw), dtype=x.dtype)
    y_images = y.reshape(batch, out_channels, -1)
    if y_images.shape[2] >= _PER_IMAGE_GEMM_MIN_PIXELS:
        np.matmul(weight_matrix, _per_image(cols, batch), out=y_images)
        _add_bias(y, bias)
    else:
        y_matrix = _workspace.array("gemm", (out_channels, cols.shape[1]), x.dtype)
        np.matmul(weight_matrix, cols, out=y_matrix)
        if bias is None:
            y_images[...] = _per_image(y_matrix, batch)
        else:
            np.add(_per_image(y_matrix, batch), bias.reshape(-1, 1), out=y_images)
    return y, cols


def _conv2d_weight_grad(grad_out, cols, weight_shape):
    """dW2d = dYmat @ cols.T: one GEMM whose reduction runs over the whole batch (N*OH*OW).

    grad_out (N, Cout, OH, OW) contiguous; cols (Cin*kh*kw, N*OH*OW) from `_im2col_matrix`.
    Computed as (cols @ dYmat.T).T, which OpenBLAS runs faster than dYmat @ cols.T on the
    conv2d shape of benchmarks/bench_conv.py; the final transpose copies only dW.
    """
    grad_out_matrix = _batch_matrix(grad_out, "matrix")
    return (cols @ grad_out_matrix.T).T.reshape(weight_shape)


def _conv2d_input_grad(grad_y, weight, bias, input_hw, stride, padding, dilation):
    """Input gradient of a convolution: dx = col2im(W2d.T @ dYmat) (+ bias).

    grad_y (N, Cout, OH, OW) and weight (Cout, Cin, kh, kw) contiguous, same dtype; bias
    (Cin,) or None, for the transposed convolution, whose output this is.
    Returns dx (N, Cin, *input_hw). With stride 1 the same result comes from a convolution of
    dY with the flipped kernel, which the CPU runs faster (see the module docstring).
    """
    kernel_hw = weight.shape[2:]
    if stride == (1, 1):
        flipped_padding = _flip_padding(kernel_hw, padding, dilation)
        grad_x, _ = _conv2d_gemm(
            grad_y, _flip_kernel(weight), bias, input_hw, stride, flipped_padding, dilation
        )
        return grad_x
    batch, out_channels = grad_y.shape[:2]
    weight_matrix = weight.reshape(out_channels, -1)
    grad_cols = _workspace.array("cols", (weight_matrix.shape[1], grad_y[:, 0].size), grad_y.dtype)
    np.matmul(weight_matrix.T, _batch_matrix(grad_y, "matrix"), out=grad_cols)
    grad_x_shape = (batch, weight.shape[1], *input_hw)
    if bias is None:
        grad_x = np.zeros(grad_x_shape, dtype=grad_y.dtype)
    else:
        grad_x = np.empty(grad_x_shape, dtype=grad_y.dtype)
        grad_x[...] = bias.reshape(-1, 1, 1)
    grad_cols = grad_cols.reshape(-1, batch, *grad_y.shape[2:])
    col2im(grad_cols, kernel_hw, stride, padding, dilation, grad_x)
    return grad_x


def _flip_kernel(weight):
    """W'[ci, co, i, j] = W[co, ci, kh-1-i, kw-1-j]: channels swapped, taps reversed.

    A stride-1 convolution is a transposed convolution with the flipped kernel and the
    flipped padding, and vice versa: conv2d(x, W, p) == conv_transpose2d(x, W', p') with
    p' = `_flip_padding(...)`. Flipping twice gives back W.
    """
    return np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))


def _flip_padding(kernel_hw, padding, dilation):
    """p' = d*(k-1) - p per axis (may be negative; im2col handles that as cropping)."""
    return tuple(d * (k - 1) - p for k, p, d in zip(kernel_hw, padding, dilation))


def _bias_grad(grad_y):
    """db[c] = sum of dY[n, c, :, :] over n, as matrix-vector products (BLAS gemv), which
    run several times faster than ndarray.sum over axes (0, 2, 3)."""
    batch, channels = grad_y.shape[:2]
    ones = np.ones(grad_y[0, 0].size, dtype=grad_y.dtype)
    return (grad_y.reshape(batch, channels, -1) @ ones).sum(axis=0)


def _add_bias(y, bias):
    if bias is not None:
        y += bias.reshape(-1, 1, 1)


def _contiguous(array, dtype):
    return None if array is None else np.ascontiguousarray(array, dtype=dtype)


@one_thread_at_a_time
def conv2d_forward(x, weight, bias, stride, padding, dilation):
    """y = conv2d(x, weight, bias) as torch.nn.functional.conv2d (groups=1).

    x (N, Cin, H, W), weight (Cout, Cin, kh, kw), bias (Cout,) or None. Returns y; the
    backward recomputes the im2col matrix rather than keeping it alive between forward and
    backward (see the module docstring).
    """
    x = np.ascontiguousarray(x)
    weight = _contiguous(weight, x.dtype)
    bias = _contiguous(bias, x.dtype)
    output_hw = conv2d_output_size(x.shape[2:], weight.shape[2:], stride, padding, dilation)
    y, _ = _conv2d_gemm(x, weight, bias, output_hw, stride, padding, dilation)
    return y


@one_thread_at_a_time
def conv2d_backward(grad_y, x, weight, stride, padding, dilation, needs_input_grad):
    """Gradients of `conv2d_forward` with respect to (x, weight, bias), None where not needed.

    dx = col2im(W2d.T @ dYmat), dW = dYmat @ im2col(x).T, db = dY summed over (N, OH, OW).
    needs_input_grad: (x, weight, bias) flags; bias False when the layer has none.
    With stride 1 the convolution is a transposed convolution with the flipped kernel, and
    that backward gets both dx and dW from one im2col of dY (module docstring).
    """
    x = np.ascontiguousarray(x)
    grad_y = _contiguous(grad_y, x.dtype)
    weight = _contiguous(weight, x.dtype)
    need_x, need_weight, need_bias = needs_input_grad
    grad_x = grad_weight = grad_bias = None
    if stride == (1, 1):
        flipped_padding = _flip_padding(weight.shape[2:], padding, dilation)
        grad_x, grad_flipped, _ = conv_transpose2d_backward(
            grad_y, x, _flip_kernel(weight), stride, flipped_padding, (0, 0), dilation,
            (need_x, need_weight, False),
        )  # fmt: skip
        if need_weight:
            grad_weight = _flip_kernel(grad_flipped)
    else:
        if need_weight:
            output_hw = grad_y.shape[2:]
            cols = _im2col_matrix(x, weight.shape[2:], stride, padding, dilation, output_hw)
            grad_weight = _conv2d_weight_grad(grad_y, cols, weight.shape)
        if need_x:
            input_hw = x.shape[2:]
            grad_x = _conv2d_input_grad(grad_y, weight, None, input_hw, stride, padding, dilation)
    if need_bias:
        grad_bias = _bias_grad(grad_y)
    return grad_x, grad_weight, grad_bias


@one_thread_at_a_time
def conv_transpose2d_forward(x, weight, bias, stride, padding, output_padding, dilation):
    """y = conv_transpose2d(x, weight, bias) as torch.nn.functional.conv_transpose2d (groups=1).

    x (N, Cin, H, W), weight (Cin, Cout, kh, kw), bias (Cout,) or None. This is the input
    gradient of a convolution with the same weight read as (Cout_conv=Cin, Cin_conv=Cout):
    GEMM, then col2im. output_padding only enlarges the output (extra rows/cols at the
    bottom/right). Returns y; the backward needs nothing beyond x and weight.
    """
    x = np.ascontiguousarray(x)
    weight = _contiguous(weight, x.dtype)
    bias = _contiguous(bias, x.dtype)
    output_hw = conv_transpose2d_output_size(
        x.shape[2:], weight.shape[2:], stride, padding, output_padding, dilation
    )
    return _conv2d_input_grad(x, weight, bias, output_hw, stride, padding, dilation)


@one_thread_at_a_time
def conv_transpose2d_backward(
    grad_y, x, weight, stride, padding, output_padding, dilation, needs_input_grad
):
    """Gradients of `conv_transpose2d_forward` with respect to (x, weight, bias).

    The transposed convolution's input gradient is a plain convolution of dY with the same
    weight (im2col(dY), then GEMM), and its weight gradient reuses that im2col matrix:
    dW2d = Xmat @ im2col(dY).T. needs_input_grad: (x, weight, bias) flags, as for
    `conv2d_backward`; output_padding is unused (the shapes of x and grad_y fix everything).
    """
    x = np.ascontiguousarray(x)
    grad_y = _contiguous(grad_y, x.dtype)
    weight = _contiguous(weight, x.dtype)
    need_x, need_weight, need_bias = needs_input_grad
    grad_x = grad_weight = grad_bias = None
    input_hw = x.shape[2:]
    if need_x:
        grad_x, grad_cols = _conv2d_gemm(grad_y, weight, None, input_hw, stride, padding, dilation)
    elif need_weight:
        grad_cols = _im2col_matrix(grad_y, weight.shape[2:], stride, padding, dilation, input_hw)
    if need_weight:
        grad_weight = _conv2d_weight_grad(x, grad_cols, weight.shape)
    if need_bias:
        grad_bias = _bias_grad(grad_y)
    return grad_x, grad_weight, grad_bias
