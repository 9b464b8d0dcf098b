"""Checkers of lesson 03 (convolution and deconvolution as matrix products). References:
minimask's kernels and geometry (``minimask.cpu.conv``, ``minimask.geometry.conv``), the
definitions written out as loops and counts here, the adjoint identity
<im2col(x), c> = <x, col2im(c)>, and the GEMM + col2im input gradient (which does not use
the flipped kernel). Sizes and copies are compared exactly; sums in float64 to 1e-12 (a few
dozen roundings of numbers of order 10 err by ~1e-14)."""

import itertools

import numpy as np

import minimask
import minimask.nn.functional as F
from exercises import Wrong, exercise
from minimask.cpu import conv as cpu_conv
from minimask.geometry.conv import conv2d_output_size, conv_transpose2d_output_size

# (x shape, kh, kw, stride, padding, dilation): strides 1-3, padding 0-2 (also more than the
# kernel reaches, so whole windows of padding), dilation 1-2, square and non-square kernels
IM2COL_CASES = [
    ((1, 1, 4, 4), 3, 3, 1, 1, 1),
    ((2, 3, 5, 6), 3, 2, 2, 1, 1),
    ((1, 2, 7, 7), 3, 3, 1, 2, 2),
    ((2, 2, 6, 5), 2, 3, 3, 0, 1),
    ((1, 2, 4, 4), 3, 3, 2, 2, 1),
    ((1, 1, 5, 5), 1, 1, 1, 0, 1),
]


def _describe(x_shape, kh, kw, stride, padding, dilation):
    return f"x {x_shape}, kernel {kh}x{kw}, stride {stride}, padding {padding}, dilation {dilation}"


def _output_hw(x_shape, kh, kw, stride, padding, dilation):
    return conv2d_output_size(x_shape[2:], (kh, kw), (stride,) * 2, (padding,) * 2, (dilation,) * 2)


def _loop_im2col(x, kh, kw, stride, padding, dilation):
    """The definition, entry by entry: cols[c*kh*kw + i*kw + j, n*OH*OW + oh*OW + ow] =
    x[n, c, oh*s - p + i*d, ow*s - p + j*d], 0 in the padding."""
    N, C, H, W = x.shape
    OH, OW = _output_hw(x.shape, kh, kw, stride, padding, dilation)
    cols = np.zeros((C * kh * kw, N * OH * OW))
    for c, i, j, n, oh, ow in itertools.product(
        range(C), range(kh), range(kw), range(N), range(OH), range(OW)
    ):
        h, w = oh * stride - padding + i * dilation, ow * stride - padding + j * dilation
        if 0 <= h < H and 0 <= w < W:
            cols[(c * kh + i) * kw + j, (n * OH + oh) * OW + ow] = x[n, c, h, w]
    return cols


def _minimask_im2col(x, kh, kw, stride, padding, dilation):
    """minimask.cpu.conv.im2col, reshaped to (C*kh*kw, N*OH*OW)."""
    N, C = x.shape[:2]
    cols = np.empty((C * kh * kw, N, *_output_hw(x.shape, kh, kw, stride, padding, dilation)))
    cpu_conv.im2col(x, (kh, kw), (stride,) * 2, (padding,) * 2, (dilation,) * 2, cols)
    return cols.reshape(C * kh * kw, -1)


def _minimask_col2im(cols, x_shape, kh, kw, stride, padding, dilation):
    """minimask.cpu.conv.col2im of a (C*kh*kw, N*OH*OW) matrix onto zeros of x_shape."""
    OH, OW = _output_hw(x_shape, kh, kw, stride, padding, dilation)
    x = np.zeros(x_shape)
    grid = np.ascontiguousarray(cols).reshape(cols.shape[0], x_shape[0], OH, OW)
    cpu_conv.col2im(grid, (kh, kw), (stride,) * 2, (padding,) * 2, (dilation,) * 2, x)
    return x


def _as_array(value):
    """A NumPy array of a result that may be a minimask Tensor."""
    return np.asarray(value.numpy() if hasattr(value, "numpy") else value)


@exercise("03.1", "the output size of a convolution, with dilation", "conv_output_size")
def check_conv_output_size(conv_output_size):
    """For every size 1..12, kernel 1..4, stride 1..3, padding 0..2 and dilation 1..3 that
    has an output: against counting the window positions o*s for which the dilated kernel's
    span d*(k-1) + 1 fits into the padded input, and against
    minimask.geometry.conv.conv2d_output_size (exact integers)."""
    for size, k, s, p, d in itertools.product(
        range(1, 13), range(1, 5), range(1, 4), range(3), range(1, 4)
    ):
        span, padded = d * (k - 1) + 1, size + 2 * p
        if span > padded:
            continue
        counted = sum(1 for o in range(padded) if o * s + span <= padded)
        assert counted == conv2d_output_size((size,), (k,), (s,), (p,), (d,))[0]
        got = conv_output_size(size, k, s, p, d)
        if not isinstance(got, (int, np.integer)):
            raise Wrong(f"conv_output_size returned {got!r}: an int is wanted (use //)")
        if got != counted:
            raise Wrong(
                f"size {size}, kernel {k}, stride {s}, padding {p}, dilation {d}: got {got}, "
                f"want {counted} (the kernel spans d*(k-1) + 1 = {span} of the {padded} "
                f"padded inputs)"
            )


@exercise("03.2", "im2col one kernel tap at a time", "im2col")
def check_im2col(im2col):
    """On 6 shapes (strides 1-3, padding 0-2, dilation 1-2, non-square kernels), float64:
    against the definition written out as loops and against minimask.cpu.conv.im2col,
    exactly (im2col only copies)."""
    rng = np.random.default_rng(30)
    for x_shape, kh, kw, s, p, d in IM2COL_CASES:
        x = rng.standard_normal(x_shape)
        want = _loop_im2col(x, kh, kw, s, p, d)
        assert np.array_equal(want, _minimask_im2col(x, kh, kw, s, p, d))
        got = _as_array(im2col(x.copy(), kh, kw, s, p, d))
        where = _describe(x_shape, kh, kw, s, p, d)
        if got.shape != want.shape:
            raise Wrong(
                f"{where}: cols has shape {got.shape}, want (C*kh*kw, N*OH*OW) = {want.shape}"
            )
        if not np.array_equal(got, want):
            row, column = np.argwhere(got != want)[0]
            raise Wrong(
                f"{where}: cols[{row}, {column}] = {got[row, column]:.4f}, "
                f"want {want[row, column]:.4f}"
            )


@exercise("03.3", "col2im, the adjoint of im2col", "col2im")
def check_col2im(col2im):
    """On the 6 shapes of 03.2, float64, random cols: against minimask.cpu.conv.col2im
    (1e-12: the same sums, perhaps in another order), and the adjoint identity
    <im2col(x), c> = <x, col2im(c)> with minimask's im2col and a random x (1e-12 relative)."""
    rng = np.random.default_rng(31)
    for x_shape, kh, kw, s, p, d in IM2COL_CASES:
        OH, OW = _output_hw(x_shape, kh, kw, s, p, d)
        cols = rng.standard_normal((x_shape[1] * kh * kw, x_shape[0] * OH * OW))
        want = _minimask_col2im(cols, x_shape, kh, kw, s, p, d)
        got = _as_array(col2im(cols.copy(), x_shape, kh, kw, s, p, d))
        where = _describe(x_shape, kh, kw, s, p, d)
        if got.shape != tuple(x_shape):
            raise Wrong(f"{where}: col2im gave shape {got.shape}, want {x_shape}")
        x = rng.standard_normal(x_shape)
        lhs = np.vdot(_minimask_im2col(x, kh, kw, s, p, d), cols)
        assert abs(lhs - np.vdot(x, want)) <= 1e-12 * (1 + abs(lhs))
        rhs = np.vdot(x, got)
        if abs(lhs - rhs) > 1e-12 * (1 + abs(lhs)):
            raise Wrong(
                f"{where}: <im2col(x), c> = {lhs:.12g} but <x, col2im(c)> = {rhs:.12g}: "
                f"every entry of cols must be added onto the input position it was copied from"
            )
        if not np.allclose(got, want, rtol=0, atol=1e-12):
            index = np.unravel_index(np.argmax(np.abs(got - want)), want.shape)
            raise Wrong(f"{where}: x{list(index)} = {got[index]:.6f}, want {want[index]:.6f}")


@exercise(
    "03.4",
    "the stride-1 input gradient as a convolution with the flipped kernel",
    "flip_kernel",
    "conv2d_input_grad",
)
def check_flipped_kernel(flip_kernel, conv2d_input_grad):
    """flip_kernel against W'[c, o, i, j] = W[o, c, kh-1-i, kw-1-j] written out and against
    minimask.cpu.conv._flip_kernel (exact: it only moves entries). conv2d_input_grad(dy,
    weight, padding, dilation) on 4 stride-1 convolutions (padding 0-2, dilation 1-2,
    non-square kernels), float64: against col2im(W2d.T @ dY) with minimask's col2im (the
    GEMM path, without the flip) and against minimask's autograd, 1e-12."""
    rng = np.random.default_rng(32)
    weight = rng.standard_normal((4, 3, 3, 2))
    want = np.empty((3, 4, 3, 2))
    for o, c, i, j in itertools.product(range(4), range(3), range(3), range(2)):
        want[c, o, i, j] = weight[o, c, 3 - 1 - i, 2 - 1 - j]
    assert np.array_equal(want, cpu_conv._flip_kernel(weight))
    got = _as_array(flip_kernel(weight.copy()))
    if got.shape != want.shape:
        raise Wrong(
            f"flip_kernel of a weight (Cout, Cin, kh, kw) = {weight.shape} has shape "
            f"{got.shape}: want (Cin, Cout, kh, kw) = {want.shape}"
        )
    if not np.array_equal(got, want):
        index = tuple(int(i) for i in np.argwhere(got != want)[0])
        raise Wrong(
            f"flip_kernel: W'{list(index)} = {got[index]:.4f}, want {want[index]:.4f} "
            f"(W'[c, o, i, j] = W[o, c, kh-1-i, kw-1-j])"
        )
    cases = [  # x shape, weight shape, padding, dilation
        ((2, 3, 5, 6), (4, 3, 3, 2), 1, 1),
        ((1, 2, 7, 7), (3, 2, 3, 3), 2, 2),
        ((2, 2, 5, 5), (2, 2, 2, 2), 0, 1),
        ((1, 2, 6, 6), (2, 2, 3, 3), 0, 2),
    ]
    for x_shape, w_shape, p, d in cases:
        x, weight = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
        (cout, _, kh, kw), n = w_shape, x_shape[0]
        dy = rng.standard_normal((n, cout, *_output_hw(x_shape, kh, kw, 1, p, d)))
        grad_cols = weight.reshape(cout, -1).T @ dy.transpose(1, 0, 2, 3).reshape(cout, -1)
        want = _minimask_col2im(grad_cols, x_shape, kh, kw, 1, p, d)
        xt = minimask.tensor(x, requires_grad=True)
        F.conv2d(xt, minimask.tensor(weight), padding=p, dilation=d).backward(dy)
        assert np.allclose(xt.grad.numpy(), want, rtol=0, atol=1e-12)
        got = _as_array(conv2d_input_grad(dy.copy(), weight.copy(), p, d))
        where = f"x {x_shape}, weight {w_shape}, padding {p}, dilation {d}"
        if got.shape != want.shape:
            raise Wrong(f"{where}: dx has shape {got.shape}, want the input's {want.shape}")
        if not np.allclose(got, want, rtol=0, atol=1e-12):
            error = np.abs(got - want).max()
            raise Wrong(
                f"{where}: max |dx - col2im(W2d.T @ dY)| = {error:.3g} (the padding is "
                f"d*(k-1) - p per axis: {d * (kh - 1) - p}, {d * (kw - 1) - p})"
            )


@exercise(
    "03.5",
    "output_padding: the size a transposed convolution gives back",
    "conv_transpose_output_size",
    "output_padding_for",
)
def check_output_padding(conv_transpose_output_size, output_padding_for):
    """For every size 1..9, kernel 1..3, stride 1..3, padding 0..1 and dilation 1..2 whose
    convolution has an output: conv_transpose_output_size for every output_padding below the
    stride against minimask.geometry.conv.conv_transpose2d_output_size; output_padding_for
    against its definition (the transposed convolution of the convolution's output,
    conv2d_output_size, has the input's size again) and 0 <= output_padding < stride; and
    conv_transpose_output_size against the shape minimask.nn.functional.conv_transpose2d
    returns for 4 cases. Exact integers."""
    for size, k, s, p, d in itertools.product(
        range(1, 10), range(1, 4), range(1, 4), range(2), range(1, 3)
    ):
        if d * (k - 1) + 1 > size + 2 * p:
            continue
        where = f"kernel {k}, stride {s}, padding {p}, dilation {d}"
        for op in range(s):
            want = conv_transpose2d_output_size((size,), (k,), (s,), (p,), (op,), (d,))[0]
            got = conv_transpose_output_size(size, k, s, p, op, d)
            if got != want:
                raise Wrong(
                    f"conv_transpose_output_size: input size {size}, {where}, output_padding "
                    f"{op}: got {got}, want {want}"
                )
        conv_size = conv2d_output_size((size,), (k,), (s,), (p,), (d,))[0]
        got = output_padding_for(size, k, s, p, d)
        back = conv_transpose2d_output_size((conv_size,), (k,), (s,), (p,), (got,), (d,))[0]
        if not 0 <= got < s or back != size:
            raise Wrong(
                f"output_padding_for: size {size}, {where}: the convolution gives "
                f"{conv_size}, and with output_padding {got} the transposed convolution gives "
                f"{back}, not {size}" + ("" if 0 <= got < s else f" (and {got} is not in [0, {s}))")
            )
    shapes = [(4, 3, 2, 1, 1, 1), (3, 2, 2, 0, 0, 1), (3, 3, 1, 1, 0, 2), (2, 3, 3, 0, 2, 1)]
    for size, k, s, p, op, d in shapes:  # input size, kernel, stride, padding, op, dilation
        shape = F.conv_transpose2d(
            minimask.tensor(np.zeros((1, 1, size, size))),
            minimask.tensor(np.zeros((1, 1, k, k))),
            stride=s,
            padding=p,
            output_padding=op,
            dilation=d,
        ).shape
        got = conv_transpose_output_size(size, k, s, p, op, d)
        if got != shape[2]:
            raise Wrong(
                f"conv_transpose2d of a {size}x{size} input, kernel {k}, stride {s}, padding "
                f"{p}, output_padding {op}, dilation {d} returns {shape[2]}x{shape[3]}; "
                f"conv_transpose_output_size gave {got}"
            )
