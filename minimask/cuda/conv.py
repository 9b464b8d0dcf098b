"""2-D convolution and transposed convolution on the GPU: im2col / col2im + GEMM.

The twin of ``minimask/cpu/conv.py``; read that file's docstring first. The lowering is
the same, with the same names and the same ``cols`` layout:

    cols[c*kh*kw + i*kw + j, n, oh, ow] = x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]

    forward       y      = W2d   @ cols           (im2col, then GEMM)
    weight grad   dW2d   = dYmat @ cols.T         (cols recomputed in the backward)
    input grad    dx     = col2im(W2d.T @ dYmat)  (GEMM, then col2im)

and a transposed convolution is assembled from the same three building blocks,
``_conv2d_gemm``, ``_conv2d_input_grad`` and ``_conv2d_weight_grad``. The GEMMs are the
tiled kernel of ``minimask/cuda/array/matmul.py``, which reads ``cols.T`` and the per-image
views through their strides (no transposing copies).

What changes on the GPU is the loop nest of the two kernels. The CPU kernels give one
work item a whole run of elements (a row of ``cols``, a plane of ``x``) and loop over it;
here every ELEMENT is a thread, with the same flat-index decomposition:

- ``im2col``: one thread per element of cols, item = ((tap*N + n)*OH + oh)*OW + ow, so
  neighbouring threads write neighbouring elements (coalesced writes) and read x[n, c, h, :]
  along a row; a tap in the padding writes 0.
- ``col2im``: one thread per element of x, which GATHERS the terms that land on it: for
  each tap (i, j), oh = (h + ph - i*dh) / sh and ow = (w + pw - j*dw) / sw when those
  divisions are exact and in range (that is the adjoint of im2col's index map). Each
  thread owns its output element, so there are no write conflicts, no atomics, and every
  element sums its terms in the same (i, j) order: deterministic, like the CPU version.

Not carried over from the CPU: the 1x1 fast path, the stride-1 "flipped kernel" input
gradient, the per-image GEMMs into y and the workspace of reused buffers, which are CPU
speed devices (the GPU runs the general path, into new arrays).
"""

from numba import cuda

from minimask.cuda.array.creation import zeros
from minimask.cuda.array.cuda_array import empty
from minimask.cuda.array.launch import grid
from minimask.cuda.array.matmul import matmul
from minimask.geometry.conv import conv2d_output_size, conv_transpose2d_output_size


@cuda.jit
def im2col(x, kernel_hw, stride, padding, dilation, cols):
    """Copy every receptive field of x (N, C, H, W) into a column of `cols` (C*kh*kw, N, OH, OW).

    cols[c*kh*kw + i*kw + j, n, oh, ow] = x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]
    and 0 where that input index is outside x (zero padding).

    Loop nest: one thread per element of cols, flat index
    item = ((tap*N + n)*OH + oh)*OW + ow with tap = (c*kh + i)*kw + j.

    A copy in x's dtype: no arithmetic on the values, nothing to accumulate.
    """
    batch, channels, height, width = x.shape
    kernel_h, kernel_w = kernel_hw
    stride_h, stride_w = stride
    pad_h, pad_w = padding
    dilation_h, dilation_w = dilation
    out_h, out_w = cols.shape[2], cols.shape[3]
    for item in range(cuda.grid(1), cols.size, cuda.gridsize(1)):
        ow = item % out_w
        oh = item // out_w % out_h
        n = item // (out_w * out_h) % batch
        tap = item // (out_w * out_h * batch)
        j = tap % kernel_w
        i = tap // kernel_w % kernel_h
        c = tap // (kernel_w * kernel_h)
        h = oh * stride_h - pad_h + i * dilation_h
        w = ow * stride_w - pad_w + j * dilation_w
        if 0 <= h < height and 0 <= w < width:
            cols[tap, n, oh, ow] = x[n, c, h, w]
        else:
            cols[tap, n, oh, ow] = 0


@cuda.jit
def col2im(cols, kernel_hw, stride, padding, dilation, x):
    """Adjoint of im2col: add every entry of `cols` onto the input position it came from.

    x[n, c, h, w] += sum of cols[c*kh*kw + i*kw + j, n, oh, ow]
                     over all (i, j, oh, ow) with oh*sh - ph + i*dh == h, ow*sw - pw + j*dw == w.
    cols is (C*kh*kw, N, OH, OW); x (N, C, H, W) is updated in place, so the caller chooses
    its start: zeros for an input gradient, the bias for a transposed convolution's output.

    Loop nest: one thread per element of x, flat index item = ((n*C + c)*H + h)*W + w,
    looping over the taps (i, j); the matching (oh, ow), if any, solve the equations above.

    Accumulates in x's dtype (float32 for float32) because an element gets at most kh*kw
    terms, added in a fixed order: a short sum, as on the CPU.
    """
    batch, channels, height, width = x.shape
    kernel_h, kernel_w = kernel_hw
    stride_h, stride_w = stride
    pad_h, pad_w = padding
    dilation_h, dilation_w = dilation
    out_h, out_w = cols.shape[2], cols.shape[3]
    for item in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        w = item % width
        h = item // width % height
        c = item // (width * height) % channels
        n = item // (width * height * channels)
        for i in range(kernel_h):
            oh_scaled = h + pad_h - i * dilation_h  # = oh * stride_h
            if oh_scaled < 0 or oh_scaled % stride_h != 0 or oh_scaled // stride_h >= out_h:
                continue
            oh = oh_scaled // stride_h
            for j in range(kernel_w):
                ow_scaled = w + pad_w - j * dilation_w
                if ow_scaled < 0 or ow_scaled % stride_w != 0 or ow_scaled // stride_w >= out_w:
                    continue
                tap = (c * kernel_h + i) * kernel_w + j
                x[n, c, h, w] += cols[tap, n, oh, ow_scaled // stride_w]


def _per_image(matrix, batch):
    """View a (rows, N*L) matrix as N per-image (rows, L) matrices, without copying."""
    rows = matrix.shape[0]
    return matrix.reshape(rows, batch, -1).transpose(1, 0, 2)


def _batch_matrix(images, role):
    """(N, C, H, W) -> contiguous (C, N*H*W): the batch side by side along the columns.

    ``role`` names the CPU's workspace buffer for the matrix and is ignored here: the CUDA
    backend has no workspace (a first touch of device memory costs no page fault, the
    CPU's reason for one), so each call returns a new array.
    """
    batch, channels = images.shape[:2]
    return images.reshape(batch, channels, -1).transpose(1, 0, 2).copy().reshape(channels, -1)


def _im2col_matrix(x, kernel_hw, stride, padding, dilation, output_hw):
    """`im2col` into a new (C*kh*kw, N*OH*OW) matrix."""
    batch, channels = x.shape[:2]
    cols = empty((channels * kernel_hw[0] * kernel_hw[1], batch, *output_hw), x.dtype)
    if cols.size:
        im2col[grid(cols.size)](
            x.device_ndarray(), kernel_hw, stride, padding, dilation, cols.device_ndarray()
        )
    return cols.reshape(cols.shape[0], -1)


def _conv2d_gemm(x, weight, bias, output_hw, stride, padding, dilation):
    """Convolution: im2col, then y = W2d @ cols (+ bias).

    x (N, Cin, H, W) and weight (Cout, Cin, kh, kw) contiguous, same dtype; bias or None.
    Returns (y (N, Cout, *output_hw), cols). The GEMM gives (Cout, N*OH*OW); one
    elementwise kernel then writes it into NCHW order, adding the bias on the way.
    """
    batch = x.shape[0]
    out_channels = weight.shape[0]
    weight_matrix = weight.reshape(out_channels, -1)
    cols = _im2col_matrix(x, tuple(weight.shape[2:]), stride, padding, dilation, output_hw)
    y_images = _per_image(matmul(weight_matrix, cols), batch)  # (N, Cout, OH*OW) view
    y = y_images.copy() if bias is None else y_images + bias.reshape(-1, 1)
    return y.reshape(batch, out_channels, *output_hw), cols


def _conv2d_weight_grad(grad_out, cols, weight_shape):
    """dW2d = dYmat @ cols.T: one GEMM whose reduction runs over the whole batch (N*OH*OW).

    grad_out (N, Cout, OH, OW) contiguous; cols (Cin*kh*kw, N*OH*OW) from `_im2col_matrix`.
    The tiled matmul reads cols.T through its strides (no transposing copy).
    """
    grad_out_matrix = _batch_matrix(grad_out, "matrix")
    return matmul(grad_out_matrix, cols.T).reshape(weight_shape)


def _conv2d_input_grad(grad_y, weight, bias, input_hw, stride, padding, dilation):
    """Input gradient of a convolution: dx = col2im(W2d.T @ dYmat) (+ bias).

    grad_y (N, Cout, OH, OW) and weight (Cout, Cin, kh, kw) contiguous, same dtype; bias
    (Cin,) or None, for the transposed convolution, whose output this is.
    Returns dx (N, Cin, *input_hw).
    """
    batch = grad_y.shape[0]
    grad_cols = matmul(weight.reshape(weight.shape[0], -1).T, _batch_matrix(grad_y, "matrix"))
    grad_x_shape = (batch, weight.shape[1], *input_hw)
    if bias is None:
        grad_x = zeros(grad_x_shape, grad_y.dtype)
    else:
        grad_x = empty(grad_x_shape, grad_y.dtype)
        grad_x[...] = bias.reshape(-1, 1, 1)
    if grad_x.size:
        col2im[grid(grad_x.size)](
            grad_cols.reshape(-1, batch, *grad_y.shape[2:]).device_ndarray(),
            tuple(weight.shape[2:]),
            stride,
            padding,
            dilation,
            grad_x.device_ndarray(),
        )
    return grad_x


def _bias_grad(grad_y):
    """db[c] = sum of dY[n, c, :, :] over n, oh, ow."""
    return grad_y.sum(axis=(0, 2, 3))


def _contiguous(array, dtype):
    return None if array is None else array.astype(dtype, copy=False).contiguous()


def conv2d_forward(x, weight, bias, stride, padding, dilation):
    """y = conv2d(x, weight, bias) as torch.nn.functional.conv2d (groups=1).

    x (N, Cin, H, W), weight (Cout, Cin, kh, kw), bias (Cout,) or None. Returns y; the
    backward recomputes the im2col matrix rather than keeping it alive between forward and
    backward, as the CPU version does.
    """
    x = x.contiguous()
    weight = _contiguous(weight, x.dtype)
    bias = _contiguous(bias, x.dtype)
    output_hw = conv2d_output_size(x.shape[2:], weight.shape[2:], stride, padding, dilation)
    y, _ = _conv2d_gemm(x, weight, bias, output_hw, stride, padding, dilation)
    return y


def conv2d_backward(grad_y, x, weight, stride, padding, dilation, needs_input_grad):
    """Gradients of `conv2d_forward` with respect to (x, weight, bias), None where not needed.

    dx = col2im(W2d.T @ dYmat), dW = dYmat @ im2col(x).T, db = dY summed over (N, OH, OW).
    needs_input_grad: (x, weight, bias) flags; bias False when the layer has none.
    """
    x = x.contiguous()
    grad_y = _contiguous(grad_y, x.dtype)
    weight = _contiguous(weight, x.dtype)
    need_x, need_weight, need_bias = needs_input_grad
    grad_x = grad_weight = grad_bias = None
    if need_weight:
        cols = _im2col_matrix(x, weight.shape[2:], stride, padding, dilation, grad_y.shape[2:])
        grad_weight = _conv2d_weight_grad(grad_y, cols, weight.shape)
    if need_x:
        grad_x = _conv2d_input_grad(grad_y, weight, None, x.shape[2:], stride, padding, dilation)
    if need_bias:
        grad_bias = _bias_grad(grad_y)
    return grad_x, grad_weight, grad_bias


def conv_transpose2d_forward(x, weight, bias, stride, padding, output_padding, dilation):
    """y = conv_transpose2d(x, weight, bias) as torch.nn.functional.conv_transpose2d (groups=1).

    x (N, Cin, H, W), weight (Cin, Cout, kh, kw), bias (Cout,) or None: the input gradient
    of a convolution with the same weight, GEMM then col2im. Returns y.
    """
    x = x.contiguous()
    weight = _contiguous(weight, x.dtype)
    bias = _contiguous(bias, x.dtype)
    output_hw = conv_transpose2d_output_size(
        x.shape[2:], weight.shape[2:], stride, padding, output_padding, dilation
    )
    return _conv2d_input_grad(x, weight, bias, output_hw, stride, padding, dilation)


def conv_transpose2d_backward(
    grad_y, x, weight, stride, padding, output_padding, dilation, needs_input_grad
):
    """Gradients of `conv_transpose2d_forward` with respect to (x, weight, bias).

    The input gradient is a plain convolution of dY with the same weight (im2col(dY), then
    GEMM), and the weight gradient reuses that im2col matrix: dW2d = Xmat @ im2col(dY).T.
    needs_input_grad: (x, weight, bias) flags, as for `conv2d_backward`; output_padding is
    unused (the shapes of x and grad_y fix everything).
    """
    x = x.contiguous()
    grad_y = _contiguous(grad_y, x.dtype)
    weight = _contiguous(weight, x.dtype)
    need_x, need_weight, need_bias = needs_input_grad
    grad_x = grad_weight = grad_bias = None
    input_hw = x.shape[2:]
    if need_x:
        grad_x, grad_cols = _conv2d_gemm(grad_y, weight, None, input_hw, stride, padding, dilation)
    elif need_weight:
        grad_cols = _im2col_matrix(
            grad_y, tuple(weight.shape[2:]), stride, padding, dilation, input_hw
        )
    if need_weight:
        grad_weight = _conv2d_weight_grad(x, grad_cols, weight.shape)
    if need_bias:
        grad_bias = _bias_grad(grad_y)
    return grad_x, grad_weight, grad_bias
