"""Tests of the CPU convolution kernels (minimask/cpu/conv.py) against PyTorch CPU.

The reference is torch.nn.functional.conv2d / conv_transpose2d (groups=1) for the forward
and torch.autograd for the gradients, always computed in float64 from the same inputs (a
float32 input is exactly representable in float64), so the reference error is negligible.

Tolerances, as |actual - expected| <= atol + rtol * |expected| with atol scaled by the
largest |expected| entry:
- float64: rtol = atol = 1e-10. Both sides are exact up to a few ulps of the dot products.
- float32: rtol = atol = 1e-4. Every output entry is a dot product of up to a few hundred
  terms (a thousand for the weight gradient); float32 keeps ~7 digits and BLAS sums in its
  own blocked order, so the error is ~sqrt(terms) * 6e-8 of the terms' magnitude, about
  1e-6 of the largest entry. An entry near zero (cancellation) can have a large relative
  error, hence the atol relative to the largest entry rather than a pure rtol.
"""

import numpy as np
import pytest
import torch

from minimask.cpu import conv

TOLERANCE = {np.float64: 1e-10, np.float32: 1e-4}

# N, Cin, H, W, Cout, (kh, kw), stride, padding, dilation
CONV2D_CASES = [
    pytest.param(2, 3, 9, 11, 4, (3, 3), (1, 1), (1, 1), (1, 1), id="3x3-same"),
    pytest.param(2, 3, 10, 9, 5, (3, 3), (2, 2), (1, 1), (1, 1), id="3x3-stride2"),
    pytest.param(1, 4, 12, 13, 3, (3, 3), (1, 1), (2, 2), (2, 2), id="3x3-dilation2"),
    pytest.param(2, 3, 9, 11, 4, (3, 2), (2, 1), (1, 0), (1, 2), id="nonsquare-mixed"),
    pytest.param(1, 2, 8, 8, 3, (5, 5), (3, 2), (2, 1), (1, 1), id="5x5-stride3x2"),
    pytest.param(2, 5, 7, 6, 4, (1, 1), (1, 1), (0, 0), (1, 1), id="1x1-pointwise"),
    pytest.param(2, 5, 7, 6, 4, (1, 1), (2, 2), (0, 0), (1, 1), id="1x1-stride2"),
    pytest.param(1, 3, 5, 6, 2, (1, 1), (1, 1), (1, 1), (1, 1), id="1x1-padded"),
    pytest.param(1, 2, 6, 7, 3, (3, 3), (1, 1), (3, 2), (1, 1), id="padding-beyond-kernel"),
    pytest.param(3, 2, 4, 4, 2, (4, 4), (4, 4), (0, 0), (1, 1), id="kernel-equals-stride"),
]

# N, Cin, H, W, Cout, (kh, kw), stride, padding, output_padding, dilation
CONV_TRANSPOSE2D_CASES = [
    pytest.param(3, 4, 5, 6, 3, (2, 2), (2, 2), (0, 0), (0, 0), (1, 1), id="2x2-stride2"),
    pytest.param(2, 3, 5, 6, 4, (3, 3), (2, 2), (1, 1), (1, 1), (1, 1), id="3x3-stride2-outpad"),
    pytest.param(2, 3, 5, 6, 4, (3, 3), (1, 1), (1, 1), (0, 0), (1, 1), id="3x3-stride1"),
    pytest.param(2, 3, 5, 6, 4, (3, 2), (1, 1), (1, 0), (0, 0), (2, 1), id="dilation-nonsquare"),
    pytest.param(2, 3, 5, 6, 4, (3, 3), (1, 1), (0, 0), (1, 0), (2, 1), id="outpad-from-dilation"),
    pytest.param(2, 3, 5, 6, 4, (4, 3), (3, 2), (2, 1), (2, 1), (1, 2), id="4x3-stride3x2"),
    pytest.param(2, 5, 4, 3, 3, (1, 1), (1, 1), (0, 0), (0, 0), (1, 1), id="1x1-pointwise"),
    pytest.param(1, 2, 3, 3, 3, (3, 3), (2, 2), (0, 0), (0, 0), (1, 1), id="3x3-stride2"),
]

DTYPES = [pytest.param(np.float64, id="float64"), pytest.param(np.float32, id="float32")]


def assert_close(actual, expected, dtype):
    """Compare with the dtype's tolerance (module docstring); dtype must be preserved."""
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else expected
    assert actual.dtype == dtype
    assert actual.shape == expected.shape
    tolerance = TOLERANCE[dtype]
    scale = max(float(np.abs(expected).max()), 1.0)
    np.testing.assert_allclose(actual, expected, rtol=tolerance, atol=tolerance * scale)


def random_arrays(dtype, *shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for shape in shapes]


def torch_reference(function, x, weight, bias, grad_y_shape, dtype, **options):
    """float64 forward and (x, weight, bias) gradients of `function`, and the grad_y used."""
    tensors = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, weight, bias)]
    y = function(*tensors, **options)
    assert tuple(y.shape) == grad_y_shape
    (grad_y,) = random_arrays(dtype, grad_y_shape, seed=1)
    grads = torch.autograd.grad(y, tensors, torch.tensor(grad_y, dtype=torch.float64))
    return y, grads, grad_y


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "batch, in_ch, height, width, out_ch, kernel, stride, padding, dilation", CONV2D_CASES
)
def test_conv2d_matches_torch(
    batch, in_ch, height, width, out_ch, kernel, stride, padding, dilation, dtype
):
    """conv2d forward and all three gradients vs torch conv2d + autograd (float64 reference);
    tolerance 1e-10 (float64) / 1e-4 (float32), atol scaled by the largest entry."""
    x, weight, bias = random_arrays(
        dtype, (batch, in_ch, height, width), (out_ch, in_ch, *kernel), (out_ch,)
    )
    y = conv.conv2d_forward(x, weight, bias, stride, padding, dilation)
    expected_y, expected_grads, grad_y = torch_reference(
        torch.nn.functional.conv2d, x, weight, bias, y.shape, dtype,
        stride=stride, padding=padding, dilation=dilation,
    )  # fmt: skip
    assert_close(y, expected_y, dtype)
    assert y.shape[2:] == conv.conv2d_output_size(x.shape[2:], kernel, stride, padding, dilation)
    grads = conv.conv2d_backward(grad_y, x, weight, stride, padding, dilation, (True, True, True))
    for actual, expected in zip(grads, expected_grads):
        assert_close(actual, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "batch, in_ch, height, width, out_ch, kernel, stride, padding, output_padding, dilation",
    CONV_TRANSPOSE2D_CASES,
)
def test_conv_transpose2d_matches_torch(
    batch, in_ch, height, width, out_ch, kernel, stride, padding, output_padding, dilation, dtype
):
    """conv_transpose2d forward and all three gradients vs torch conv_transpose2d + autograd
    (float64 reference); tolerance 1e-10 (float64) / 1e-4 (float32), atol scaled."""
    x, weight, bias = random_arrays(
        dtype, (batch, in_ch, height, width), (in_ch, out_ch, *kernel), (out_ch,)
    )
    y = conv.conv_transpose2d_forward(x, weight, bias, stride, padding, output_padding, dilation)
    expected_y, expected_grads, grad_y = torch_reference(
        torch.nn.functional.conv_transpose2d, x, weight, bias, y.shape, dtype,
        stride=stride, padding=padding, output_padding=output_padding, dilation=dilation,
    )  # fmt: skip
    assert_close(y, expected_y, dtype)
    grads = conv.conv_transpose2d_backward(
        grad_y, x, weight, stride, padding, output_padding, dilation, (True, True, True)
    )
    for actual, expected in zip(grads, expected_grads):
        assert_close(actual, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_non_contiguous_inputs(dtype):
    """Permuted/sliced views of x, weight and grad_y give the same result as torch conv2d +
    autograd on the contiguous copies (float64 reference; 1e-10 / 1e-4 tolerance)."""
    x_storage, weight_storage, bias, grad_y_storage = random_arrays(
        dtype, (3, 9, 2, 13), (3, 4, 5, 4), (4,), (2, 4, 6, 6)
    )
    x = x_storage.transpose(2, 1, 0, 3)[:, ::2, :, 1:]  # (2, 5, 3, 12), strided
    weight = weight_storage.transpose(3, 2, 1, 0)[:, :, 1:, :]  # (4, 5, 3, 3)
    grad_y = grad_y_storage.transpose(0, 1, 3, 2)[:, :, ::2, :]  # (2, 4, 3, 6)
    stride, padding, dilation = (1, 2), (1, 1), (1, 1)
    y = conv.conv2d_forward(x, weight, bias, stride, padding, dilation)
    expected_y = torch.nn.functional.conv2d(
        *(torch.tensor(np.ascontiguousarray(a), dtype=torch.float64) for a in (x, weight, bias)),
        stride=stride, padding=padding, dilation=dilation,
    )  # fmt: skip
    assert_close(y, expected_y, dtype)
    assert y.shape == grad_y.shape
    tensors = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, weight, bias)]
    expected_grads = torch.autograd.grad(
        torch.nn.functional.conv2d(*tensors, stride=stride, padding=padding),
        tensors,
        torch.tensor(np.ascontiguousarray(grad_y), dtype=torch.float64),
    )
    grads = conv.conv2d_backward(grad_y, x, weight, stride, padding, dilation, (True, True, True))
    for actual, expected in zip(grads, expected_grads):
        assert_close(actual, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_transpose2d_non_contiguous_inputs(dtype):
    """Permuted views of x, weight and grad_y vs torch conv_transpose2d + autograd on the
    contiguous copies (float64 reference; 1e-10 / 1e-4 tolerance)."""
    x_storage, weight_storage, bias = random_arrays(dtype, (7, 6, 4, 2), (2, 2, 3, 4), (3,))
    x = x_storage.transpose(3, 2, 1, 0)  # (2, 4, 6, 7)
    weight = weight_storage.transpose(3, 2, 1, 0)  # (4, 3, 2, 2)
    stride, padding, output_padding, dilation = (2, 2), (0, 0), (0, 0), (1, 1)
    y = conv.conv_transpose2d_forward(x, weight, bias, stride, padding, output_padding, dilation)
    (grad_y_storage,) = random_arrays(dtype, y.shape[::-1], seed=1)
    grad_y = grad_y_storage.transpose(3, 2, 1, 0)
    tensors = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, weight, bias)]
    expected_y = torch.nn.functional.conv_transpose2d(*tensors, stride=stride)
    expected_grads = torch.autograd.grad(
        expected_y, tensors, torch.tensor(np.ascontiguousarray(grad_y), dtype=torch.float64)
    )
    assert_close(y, expected_y, dtype)
    grads = conv.conv_transpose2d_backward(
        grad_y, x, weight, stride, padding, output_padding, dilation, (True, True, True)
    )
    for actual, expected in zip(grads, expected_grads):
        assert_close(actual, expected, dtype)


@pytest.mark.parametrize("stride", [(1, 1), (2, 2)], ids=["stride1", "stride2"])
@pytest.mark.parametrize("transposed", [False, True], ids=["conv2d", "conv_transpose2d"])
@pytest.mark.parametrize(
    "needs", [(True, False, False), (False, True, False), (False, False, True)]
)
def test_backward_computes_only_what_is_needed(needs, transposed, stride):
    """Gradients not asked for are None, the others equal the full backward's. Reference:
    the full backward (itself checked against torch above); exact, tolerance 0."""
    x, weight = random_arrays(np.float64, (2, 3, 6, 5), (3, 4, 3, 3))
    padding, output_padding, dilation = (1, 1), (0, 0), (1, 1)
    if transposed:
        y = conv.conv_transpose2d_forward(
            x, weight, None, stride, padding, output_padding, dilation
        )

        def backward(grad_y, needs_input_grad):
            return conv.conv_transpose2d_backward(
                grad_y, x, weight, stride, padding, output_padding, dilation, needs_input_grad
            )  # fmt: skip

    else:
        weight = weight.transpose(1, 0, 2, 3)
        y = conv.conv2d_forward(x, weight, None, stride, padding, dilation)

        def backward(grad_y, needs_input_grad):
            return conv.conv2d_backward(
                grad_y, x, weight, stride, padding, dilation, needs_input_grad
            )

    (grad_y,) = random_arrays(np.float64, y.shape, seed=1)
    full = backward(grad_y, (True, True, True))
    for needed, partial, complete in zip(needs, backward(grad_y, needs), full):
        if needed:
            np.testing.assert_array_equal(partial, complete)
        else:
            assert partial is None


def test_interleaved_layers_do_not_share_state():
    """Forward A, forward B, backward B, backward A (as autograd orders two stacked layers)
    give exactly the results of running each layer alone: the reused workspace buffers never
    leak into a returned array. Reference: each layer run alone; exact (tolerance 0)."""
    x_a, w_a, x_b, w_b = random_arrays(
        np.float32, (2, 3, 9, 8), (5, 3, 3, 3), (4, 2, 6, 5), (2, 3, 2, 2)
    )
    conv_a = ((1, 1), (1, 1), (1, 1))
    transpose_b = ((2, 2), (0, 0), (0, 0), (1, 1))
    no_bias = (True, True, False)

    def layer_a(grad_y=None):
        if grad_y is None:
            return conv.conv2d_forward(x_a, w_a, None, *conv_a)
        return conv.conv2d_backward(grad_y, x_a, w_a, *conv_a, no_bias)

    def layer_b(grad_y=None):
        if grad_y is None:
            return conv.conv_transpose2d_forward(x_b, w_b, None, *transpose_b)
        return conv.conv_transpose2d_backward(grad_y, x_b, w_b, *transpose_b, no_bias)

    alone = []
    for layer in (layer_a, layer_b):
        y = layer()
        grad_y = np.cos(y)
        alone.append((y.copy(), grad_y, [g.copy() for g in layer(grad_y)[:2]]))
    y_a = layer_a()
    y_b = layer_b()
    grads_b = layer_b(alone[1][1])
    grads_a = layer_a(alone[0][1])
    for (expected_y, _, expected_grads), y, grads_now in zip(alone, (y_a, y_b), (grads_a, grads_b)):
        np.testing.assert_array_equal(y, expected_y)
        for actual, expected in zip(grads_now[:2], expected_grads):
            np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize(
    "kernel, stride, padding, dilation",
    [
        ((3, 3), (1, 1), (1, 1), (1, 1)),
        ((3, 2), (2, 3), (2, 0), (2, 1)),
        ((2, 2), (2, 2), (0, 0), (1, 1)),
    ],
)
def test_col2im_is_the_adjoint_of_im2col(kernel, stride, padding, dilation):
    """<im2col(x), cols> == <x, col2im(cols)> for random x and cols: col2im is exactly the
    transpose of the linear map im2col (reference: the identity itself, float64, rtol 1e-12)."""
    input_shape = (2, 3, 9, 8)
    output_hw = conv.conv2d_output_size(input_shape[2:], kernel, stride, padding, dilation)
    cols_shape = (3 * kernel[0] * kernel[1], 2, *output_hw)
    x, cols = random_arrays(np.float64, input_shape, cols_shape)
    forward = np.full(cols_shape, np.nan)
    conv.im2col(x, kernel, stride, padding, dilation, forward)
    adjoint = np.zeros(input_shape)
    conv.col2im(cols, kernel, stride, padding, dilation, adjoint)
    np.testing.assert_allclose(np.vdot(forward, cols), np.vdot(x, adjoint), rtol=1e-12)
