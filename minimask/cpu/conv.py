"""2-D convolution and transposed convolution on the CPU: im2col / col2im + GEMM.

A convolution is a matrix product in disguise. `im2col` copies every receptive field of
the input into one column of a matrix `cols`, after which the whole convolution is one
GEMM (general matrix multiply) that BLAS runs near the machine's peak:

    cols[c*kh*kw + i*kw + j, n*OH*OW + oh*OW + ow] = x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]
    y[n, :, oh, ow] = W2d @ cols[:, n*OH*OW + oh*OW + ow]          W2d = weight.reshape(Cout, -1)

(0 where the input index falls into the padding). Its adjoint, `col2im`, adds every column
back onto the input positions it was copied from. The three products of a convolution layer
are then

    forward       y      = W2d   @ cols           (im2col, then GEMM)
    weight grad   dW2d   = dYmat @ cols.T         (reuses the forward's cols)
    input grad    dx     = col2im(W2d.T @ dYmat)  (GEMM, then col2im)

with dYmat the output gradient as a (Cout, N*OH*OW) matrix. A transposed convolution is the
input gradient of a convolution: its forward is "GEMM, then col2im", and its input gradient
is a plain convolution ("im2col, then GEMM"). The code below therefore has exactly three
building blocks, `_conv2d_gemm`, `_conv2d_input_grad` and `_conv2d_weight_grad`, and both
layers are assembled from them.

Layout. `cols` is (Cin*kh*kw, N*OH*OW), row-major: one row per (channel, kernel tap), the
whole batch side by side along the columns. Then

- `im2col` writes, and `col2im` reads, contiguous runs of OW values that are also contiguous
  in x (for stride 1), so both kernels stream memory;
- the weight gradient is one GEMM whose reduction runs over the whole batch (N*OH*OW), the
  shape BLAS handles best, instead of N small products that must then be summed;
- the forward GEMM writes straight into the NCHW output through a per-image view of `cols`
  (`cols.reshape(K, N, L).transpose(1, 0, 2)`, no copy), so no output transpose is needed.

Fast paths, each an exact rewrite of the general one (the tests cover both):

- 1x1 kernel, stride 1, no padding: `cols` would be x itself, so im2col is skipped.
- input gradient with stride 1: `col2im(W2d.T @ dYmat)` equals a convolution of dY with the
  spatially flipped, channel-swapped kernel and padding d*(k-1) - p. That replaces the
  (Cin*kh*kw)-row GEMM output and the col2im pass by an im2col pass and the same-size GEMM
  as the forward, which is faster on the CPU.

The numba kernels are written as "one flat work index, decomposed into coordinates", with
the innermost (contiguous) coordinate as a loop so that it vectorises; a CUDA twin makes
that innermost coordinate part of the thread index and keeps the same formulas.
"""

import numba
import numpy as np

# error_model="numpy": integer division never raises, so the compiler drops the zero checks.
_PARALLEL_KERNEL = numba.njit(parallel=True, cache=True, error_model="numpy")

# Index type of the innermost copy loops. Numba wraps negative indices (x[-1] is the last
# element) with a check on every access; for a signed index it cannot prove >= 0, that check
# makes the address non-affine and LLVM stops vectorising the loop (3-4x slower here).
# Unsigned indices skip the check. Only the innermost run index needs it.
_INDEX = np.uintp


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


@numba.njit(cache=True, error_model="numpy")
def _valid_output_range(offset, stride, input_size, output_size):
    """The outputs o in [lo, hi) whose input index o*stride + offset lies in [0, input_size).

    Outside that range the input index is in the zero padding. lo = ceil(-offset / stride),
    hi = ceil((input_size - offset) / stride), both clipped to [0, output_size].
    """
    lo = min(max((stride - 1 - offset) // stride, 0), output_size)
    hi = min(max((input_size - offset + stride - 1) // stride, lo), output_size)
    return lo, hi


@_PARALLEL_KERNEL
def im2col(x, kernel_hw, stride, padding, dilation, output_hw):
    """Copy every receptive field of x (N, C, H, W) into a column of `cols`.

    cols[c*kh*kw + i*kw + j, n*OH*OW + oh*OW + ow] = x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]
    and 0 where that input index is outside x (zero padding). Shape (C*kh*kw, N*OH*OW).

    Why: with `cols` the convolution is one GEMM, W2d @ cols, which BLAS runs far faster
    than any hand-written loop over the kernel taps.

    Loop nest: the work item `item` = tap*N + n, tap = (c*kh + i)*kw + j, fills the
    contiguous block cols[tap, n*OH*OW : (n+1)*OH*OW] row by row (oh), and each row is a run
    of zeros (left padding), a strided copy of x[n, c, h, :] and a run of zeros (right
    padding); rows whose h falls into the padding are all zeros. The valid ranges come from
    `_valid_output_range`, so the copy loop has no branch and vectorises.
    """
    batch, channels, height, width = x.shape
    kernel_h, kernel_w = kernel_hw
    stride_h, stride_w = stride
    pad_h, pad_w = padding
    dilation_h, dilation_w = dilation
    out_h, out_w = output_hw
    cols = np.empty((channels * kernel_h * kernel_w, batch, out_h, out_w), dtype=x.dtype)
    for item in numba.prange(cols.shape[0] * batch):
        n = item % batch
        tap = item // batch
        j = tap % kernel_w
        i = tap // kernel_w % kernel_h
        c = tap // (kernel_w * kernel_h)
        offset_h = i * dilation_h - pad_h
        offset_w = j * dilation_w - pad_w
        oh_lo, oh_hi = _valid_output_range(offset_h, stride_h, height, out_h)
        ow_lo, ow_hi = _valid_output_range(offset_w, stride_w, width, out_w)
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
    return cols.reshape(cols.shape[0], -1)


@_PARALLEL_KERNEL
def col2im(cols, input_shape, kernel_hw, stride, padding, dilation, output_hw):
    """Adjoint of im2col: add every entry of `cols` back onto the input position it came from.

    x[n, c, h, w] = sum of cols[c*kh*kw + i*kw + j, n*OH*OW + oh*OW + ow]
                    over all (i, j, oh, ow) with oh*sh - ph + i*dh == h, ow*sw - pw + j*dw == w.
    Returns x with shape `input_shape` = (N, C, H, W).

    Why: it turns the GEMM result W2d.T @ dYmat into the input gradient of a convolution
    (and so into the output of a transposed convolution).

    Loop nest: the work item `item` = n*C + c owns the plane x[n, c], so there are no write
    conflicts and every element sums its terms in the same (i, j) order (deterministic).
    It zeroes the plane, then for each tap (i, j) and each valid row oh adds the contiguous
    run cols[tap, n, oh, ow_lo:ow_hi] onto x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw].
    A CUDA twin with one thread per x element gathers the same terms instead: for each
    (i, j), oh = (h + ph - i*dh) / sh and ow = (w + pw - j*dw) / sw when exact and in range.
    """
    batch, channels, height, width = input_shape
    kernel_h, kernel_w = kernel_hw
    stride_h, stride_w = stride
    pad_h, pad_w = padding
    dilation_h, dilation_w = dilation
    out_h, out_w = output_hw
    x = np.empty(input_shape, dtype=cols.dtype)
    cols = cols.reshape(channels * kernel_h * kernel_w, batch, out_h, out_w)
    for item in numba.prange(batch * channels):
        c = item % channels
        n = item // channels
        for h in range(height):
            for w in range(width):
                x[n, c, h, w] = 0
        for i in range(kernel_h):
            offset_h = i * dilation_h - pad_h
            oh_lo, oh_hi = _valid_output_range(offset_h, stride_h, height, out_h)
            for j in range(kernel_w):
                tap = (c * kernel_h + i) * kernel_w + j
                offset_w = j * dilation_w - pad_w
                ow_lo, ow_hi = _valid_output_range(offset_w, stride_w, width, out_w)
                first_w = _INDEX(ow_lo * stride_w + offset_w)
                for oh in range(oh_lo, oh_hi):
                    h = oh * stride_h + offset_h
                    for k in range(_INDEX(ow_hi - ow_lo)):
                        x[n, c, h, first_w + k * _INDEX(stride_w)] += cols[
                            tap, n, oh, _INDEX(ow_lo) + k
                        ]
    return x


def _per_image(matrix, batch):
    """View a (rows, N*L) matrix as N per-image (rows, L) matrices, without copying."""
    rows = matrix.shape[0]
    return matrix.reshape(rows, batch, -1).transpose(1, 0, 2)


def _batch_matrix(images):
    """(N, C, H, W) -> contiguous (C, N*H*W): the batch side by side along the columns."""
    batch, channels = images.shape[:2]
    matrix = np.empty((channels, images[:, 0].size), dtype=images.dtype)
    _per_image(matrix, batch)[...] = images.reshape(batch, channels, -1)
    return matrix


def _is_pointwise(kernel_hw, stride, padding):
    return kernel_hw == (1, 1) and stride == (1, 1) and padding == (0, 0)


def _im2col_matrix(x, kernel_hw, stride, padding, dilation, output_hw):
    """`im2col`, except for a 1x1 kernel with stride 1 and no padding, whose cols is x itself
    with the batch side by side: a plain transposing copy."""
    if _is_pointwise(kernel_hw, stride, padding):
        return _batch_matrix(x)
    return im2col(x, kernel_hw, stride, padding, dilation, output_hw)


# Output pixels per image from which N per-image GEMMs writing straight into y beat one GEMM
# over the whole batch followed by a transposing copy into y. Measured on the two benchmark
# shapes: 4096 px/image, 3.8 vs 4.0 ms; 196 px/image, 3.3 vs 2.5 ms (small GEMMs run slower).
_PER_IMAGE_GEMM_MIN_PIXELS = 1024


def _conv2d_gemm(x, weight, bias, output_hw, stride, padding, dilation):
    """Convolution: im2col, then y = W2d @ cols (+ bias).

    x (N, Cin, H, W) and weight (Cout, Cin, kh, kw) contiguous, same dtype; bias or None.
    Returns (y (N, Cout, *output_hw), cols).
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
        y_matrix = weight_matrix @ cols
        if bias is None:
            y_images[...] = _per_image(y_matrix, batch)
        else:
            np.add(_per_image(y_matrix, batch), bias.reshape(-1, 1), out=y_images)
    return y, cols


def _conv2d_weight_grad(grad_out_matrix, cols, weight_shape):
    """dW2d = dYmat @ cols.T: one GEMM whose reduction runs over the whole batch (N*OH*OW)."""
    return (grad_out_matrix @ cols.T).reshape(weight_shape)


def _conv2d_input_grad(grad_y, weight, input_hw, stride, padding, dilation):
    """Input gradient of a convolution: dx = col2im(W2d.T @ dYmat).

    grad_y (N, Cout, OH, OW) and weight (Cout, Cin, kh, kw) contiguous, same dtype.
    Returns dx (N, Cin, *input_hw). With stride 1 the same result comes from a convolution of
    dY with the flipped kernel, which the CPU runs faster (see the module docstring).
    """
    kernel_hw = weight.shape[2:]
    if stride == (1, 1):
        flipped_weight = np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
        full_padding = tuple(d * (k - 1) - p for k, p, d in zip(kernel_hw, padding, dilation))
        grad_x, _ = _conv2d_gemm(
            grad_y, flipped_weight, None, input_hw, stride, full_padding, dilation
        )
        return grad_x
    grad_cols = weight.reshape(weight.shape[0], -1).T @ _batch_matrix(grad_y)
    input_shape = (grad_y.shape[0], weight.shape[1], *input_hw)
    return col2im(grad_cols, input_shape, kernel_hw, stride, padding, dilation, grad_y.shape[2:])


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


def conv2d_forward(x, weight, bias, stride, padding, dilation):
    """y = conv2d(x, weight, bias) as torch.nn.functional.conv2d (groups=1).

    x (N, Cin, H, W), weight (Cout, Cin, kh, kw), bias (Cout,) or None.
    Returns (y, saved) with saved the im2col matrix, reused by `conv2d_backward` for the
    weight gradient.
    """
    x = np.ascontiguousarray(x)
    weight = _contiguous(weight, x.dtype)
    bias = _contiguous(bias, x.dtype)
    output_hw = conv2d_output_size(x.shape[2:], weight.shape[2:], stride, padding, dilation)
    return _conv2d_gemm(x, weight, bias, output_hw, stride, padding, dilation)


def conv2d_backward(grad_y, x, weight, saved, stride, padding, dilation, needs_input_grad):
    """Gradients of `conv2d_forward` with respect to (x, weight, bias), None where not needed.

    dx = col2im(W2d.T @ dYmat), dW = dYmat @ cols.T, db = dY summed over (N, OH, OW).
    `saved` is what the forward returned (cols); None makes the weight gradient recompute it.
    """
    x = np.ascontiguousarray(x)
    grad_y = _contiguous(grad_y, x.dtype)
    weight = _contiguous(weight, x.dtype)
    need_x, need_weight, need_bias = needs_input_grad
    grad_x = grad_weight = grad_bias = None
    if need_weight:
        cols = saved
        if cols is None:
            cols = _im2col_matrix(x, weight.shape[2:], stride, padding, dilation, grad_y.shape[2:])
        grad_weight = _conv2d_weight_grad(_batch_matrix(grad_y), cols, weight.shape)
    if need_x:
        grad_x = _conv2d_input_grad(grad_y, weight, x.shape[2:], stride, padding, dilation)
    if need_bias:
        grad_bias = _bias_grad(grad_y)
    return grad_x, grad_weight, grad_bias


def conv_transpose2d_forward(x, weight, bias, stride, padding, output_padding, dilation):
    """y = conv_transpose2d(x, weight, bias) as torch.nn.functional.conv_transpose2d (groups=1).

    x (N, Cin, H, W), weight (Cin, Cout, kh, kw), bias (Cout,) or None. This is the input
    gradient of a convolution with the same weight read as (Cout_conv=Cin, Cin_conv=Cout):
    GEMM, then col2im. output_padding only enlarges the output (extra rows/cols at the
    bottom/right). Returns (y, None): the backward needs nothing beyond x and weight.
    """
    x = np.ascontiguousarray(x)
    weight = _contiguous(weight, x.dtype)
    output_hw = conv_transpose2d_output_size(
        x.shape[2:], weight.shape[2:], stride, padding, output_padding, dilation
    )
    y = _conv2d_input_grad(x, weight, output_hw, stride, padding, dilation)
    _add_bias(y, _contiguous(bias, x.dtype))
    return y, None


def conv_transpose2d_backward(
    grad_y, x, weight, saved, stride, padding, output_padding, dilation, needs_input_grad
):
    """Gradients of `conv_transpose2d_forward` with respect to (x, weight, bias).

    The transposed convolution's input gradient is a plain convolution of dY with the same
    weight (im2col(dY), then GEMM), and its weight gradient reuses that im2col matrix:
    dW2d = Xmat @ im2col(dY).T. `saved` and output_padding are unused (the shapes of x and
    grad_y already fix everything).
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
        grad_weight = _conv2d_weight_grad(_batch_matrix(x), grad_cols, weight.shape)
    if need_bias:
        grad_bias = _bias_grad(grad_y)
    return grad_x, grad_weight, grad_bias
