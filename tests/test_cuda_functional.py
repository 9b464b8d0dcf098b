"""The public API on "cuda" against the same calls on "cpu": outputs and gradients.

Each case runs a function of Tensors on both devices from the same inputs, then backward
from the same random output weights, and compares the outputs and the input gradients.
This exercises every Function's forward and backward through the CUDA backend (elementwise
kernels with broadcasting and views, reductions, matmul, indexing, conv, pooling,
interpolate, losses, group norm), while the CPU side is already checked against PyTorch.
The last section checks the deterministic CUDA backward of max_pool2d and interpolate bit
for bit against the CPU's order of additions, and which kernel ran (its comment).

Tolerances. float64: rtol 1e-10, atol 1e-12 (both backends round each operation once;
they only sum in different orders). float32: rtol 2e-5 and atol 2e-6 times the largest
|value| of the compared array (sums of a few dozen float32 terms in another order, and the
simulator's float32 exp/log against NumPy's: a few roundings of 6e-8). Integer results
(indices, comparisons) must be equal.

No GPU: the kernels run in numba's simulator (tests/conftest.py sets NUMBA_ENABLE_CUDASIM),
one Python thread per GPU thread, so every shape here is tiny.
"""

import numpy as np
import pytest
import torch
from kernel_launches import record_backward_launches
from numba import config

import minimask as mm
from minimask.cpu.interpolate import linear_source_weights, nearest_source_index
from minimask.nn import functional as F

cuda = pytest.importorskip("minimask.cuda")
pytestmark = pytest.mark.skipif(not cuda.is_available(), reason="no CUDA GPU or simulator")

DTYPES = [np.float64, np.float32]
TOLERANCE = {np.float64: (1e-10, 1e-12), np.float32: (2e-5, 2e-6)}


def assert_close(ours, reference, dtype, what):
    if reference.dtype.kind != "f":
        np.testing.assert_array_equal(ours, reference, err_msg=what)
        return
    rtol, atol = TOLERANCE[dtype]
    scale = max(float(np.max(np.abs(reference), initial=0.0)), 1.0)
    np.testing.assert_allclose(ours, reference, rtol=rtol, atol=atol * scale, err_msg=what)


def run(fn, inputs, device, seed=0):
    """(outputs, input grads) of fn on ``device``; inputs are (array, requires_grad)."""
    tensors = [
        mm.tensor(a, device=device, requires_grad=grad and a.dtype.kind == "f")
        for a, grad in inputs
    ]
    outputs = fn(*tensors)
    outputs = tuple(outputs) if isinstance(outputs, tuple) else (outputs,)
    rng = np.random.default_rng(seed)
    total = None
    for out in outputs:
        if out.requires_grad:
            weight = mm.tensor(rng.standard_normal(out.shape), dtype=out.dtype, device=device)
            term = (out * weight).sum()
            total = term if total is None else total + term
    if total is not None:
        total.backward()
    for out in outputs:
        assert out.device == device
    return [o.numpy() for o in outputs], [
        t.grad.numpy() if t.grad is not None else None for t in tensors
    ]


def check(fn, inputs, dtype):
    """fn on cuda equals fn on cpu, outputs and gradients."""
    inputs = [(a.astype(dtype) if a.dtype.kind == "f" else a, grad) for a, grad in inputs]
    cpu_out, cpu_grads = run(fn, inputs, "cpu")
    cuda_out, cuda_grads = run(fn, inputs, "cuda")
    for position, (ours, reference) in enumerate(zip(cuda_out, cpu_out)):
        assert ours.dtype == reference.dtype and ours.shape == reference.shape
        assert_close(ours, reference, dtype, f"output {position}")
    for position, (ours, reference) in enumerate(zip(cuda_grads, cpu_grads)):
        assert (ours is None) == (reference is None), f"gradient {position}"
        if reference is not None:
            assert ours.dtype == reference.dtype
            assert_close(ours, reference, dtype, f"gradient of input {position}")


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def grad(array):
    return (array, True)


def const(array):
    return (array, False)


# ---------------------------------------------------------------------------- tensor ops
# name -> (fn, inputs); every case runs in float64 and float32
TENSOR_CASES = {
    "add_broadcast": (lambda a, b: a + b, [grad(randn(3, 1, 4)), grad(randn(2, 4, seed=1))]),
    "sub_mul_div_scalars": (
        lambda a, b: (2.5 - a) * b / 3 + a / (b * b + 1) - 1.5 * a,
        [grad(randn(2, 3)), grad(randn(1, 3, seed=1))],
    ),
    "pow": (
        lambda a, b: a**b + a**2 + 2**b,
        [grad(np.abs(randn(2, 3)) + 0.5), grad(randn(2, 3, seed=1))],
    ),
    "neg_of_transposed_view": (
        lambda a, b: -(a.transpose(0, 1) * b),
        [grad(randn(4, 3)), grad(randn(3, 4, seed=1))],
    ),
    "strided_slices": (lambda a: a[:, ::2] * a[:, 1::2] + a[::-1, :2], [grad(randn(3, 4))]),
    "elementwise_functions": (
        lambda a: a.exp() + (a * a + 0.1).log() + (a * a).sqrt() + a.tanh() + a.sigmoid(),
        [grad(randn(2, 5))],
    ),
    "abs_relu_clamp_at_kinks": (
        lambda a: a.abs() + a.relu() + a.clamp(-0.5, 0.5) + a.clamp(min=0.0),
        [grad(np.array([[-1.0, -0.5, 0.0, 0.5, 2.0]]))],
    ),
    "sum_mean_dims": (
        lambda a: (a.sum(), a.sum(1), a.sum((0, 2), keepdim=True), a.mean(-1), a.mean()),
        [grad(randn(2, 3, 4))],
    ),
    "amax_amin_ties": (
        lambda a: (a.amax(1), a.amin(), a.amax((0, 1), keepdim=True)),
        [grad(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, -1.0]]))],
    ),
    "max_min_with_dim": (
        lambda a: (*a.max(1), *a.min(0, keepdim=True), a.max(), a.argmax(), a.argmin(1)),
        [grad(np.array([[1.0, 3.0, 3.0], [4.0, 0.0, 4.0]]))],
    ),
    "softmax_log_softmax": (
        lambda a: (a.softmax(1), a.log_softmax(-1), F.softmax(a, 0)),
        [grad(randn(3, 4) * 3)],
    ),
    "matmul_batched_broadcast": (
        lambda a, b: a @ b,
        [grad(randn(2, 1, 2, 3)), grad(randn(2, 3, 2, seed=1))],
    ),
    "matmul_vectors_and_transposed": (
        lambda a, b, v: (a @ b.T, v @ a.T, a @ v[:4]),
        [grad(randn(3, 4)), grad(randn(5, 4, seed=1)), grad(randn(4, seed=2))],
    ),
    "reshape_permute_flatten_squeeze": (
        lambda a: a.permute(2, 0, 1).reshape(4, 6).T.flatten().unsqueeze(0).squeeze(0) * 2,
        [grad(randn(2, 3, 4))],
    ),
    "expand": (lambda a: a.expand(2, 3, 4) * 1.5, [grad(randn(3, 1))]),
    "getitem_basic": (
        lambda a: a[1] + a[:, 2].unsqueeze(1).sum() + a[None, -1, 1:3].sum(),
        [grad(randn(3, 4))],
    ),
    "getitem_repeated_integer_index": (
        lambda a: a[[0, 2, 0, 0]] * 2 + a[mm.tensor([1, 1, 1, 1], device=a.device)],
        [grad(randn(3, 4))],
    ),
    "getitem_mixed_advanced": (
        lambda a: (a[[0, 1, 1], 1:, [2, 0, 2]], a[:, [1, 1], 0], a[1, :, [0, 0, 3]]),
        [grad(randn(2, 3, 4))],
    ),
    "getitem_bool_mask": (
        lambda a: (a[a > 0], a[mm.tensor([True, False, True], device=a.device)]),
        [grad(randn(3, 4))],
    ),
    "gather_sort_topk": (
        lambda a, i: (a.gather(1, i), *a.sort(1), *a.sort(0, descending=True), *a.topk(2)),
        [
            grad(np.array([[1.0, 0.5, 1.0, -2.0], [3.0, 3.0, 0.0, 3.0]])),
            const(np.array([[3, 0, 3], [1, 1, 2]])),
        ],
    ),
    "cat_stack": (
        lambda a, b: (mm.cat([a, b, a], 1), mm.stack([a, b * 2], 0), mm.cat([a.T, b.T])),
        [grad(randn(2, 3)), grad(randn(2, 3, seed=1))],
    ),
    "where_maximum_minimum_ties": (
        lambda a, b: (mm.where(a > b, a, b * 2), mm.maximum(a, b), mm.minimum(a, 0.0)),
        [
            grad(np.array([[1.0, 2.0, 0.0], [-1.0, 5.0, 0.0]])),
            grad(np.array([[1.0, 3.0, -1.0], [-1.0, 4.0, 0.0]])),
        ],
    ),
    "comparisons_and_logic": (
        lambda a, b: (
            a < b,
            a <= 0.5,
            a == b,
            a != b,
            a > b,
            a >= b,
            (a > 0) & (b > 0),
            (a > 0) | (b > 0),
            ~(a > 0),
        ),
        [
            const(np.array([[1.0, 2.0, 0.0], [-1.0, 5.0, 0.0]])),
            const(np.array([[1.0, 3.0, -1.0], [-1.0, 4.0, 0.0]])),
        ],
    ),
    "casts": (
        lambda a: (a.long(), (a * 3).int(), a.double() * 2, (a > 0).float() + a, a.bool()),
        [grad(np.array([[-1.7, -0.2, 0.0, 0.6, 2.5]]))],
    ),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(TENSOR_CASES))
def test_tensor_op_matches_cpu(name, dtype):
    fn, inputs = TENSOR_CASES[name]
    check(fn, inputs, dtype)


# ---------------------------------------------------------------------------- nn.functional
FUNCTIONAL_CASES = {
    "conv2d_stride_padding_bias": (
        lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
        [grad(randn(2, 2, 5, 5)), grad(randn(3, 2, 3, 3, seed=1)), grad(randn(3, seed=2))],
    ),
    "conv2d_dilation_no_bias": (
        lambda x, w: F.conv2d(x, w, padding=(1, 0), dilation=(2, 1)),
        [grad(randn(1, 2, 5, 4)), grad(randn(2, 2, 2, 3, seed=1))],
    ),
    "conv_transpose2d": (
        lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
        [grad(randn(1, 2, 3, 3)), grad(randn(2, 3, 3, 3, seed=1)), grad(randn(3, seed=2))],
    ),
    "max_pool2d_overlapping_windows": (
        lambda x: (F.max_pool2d(x, 3, stride=1, padding=1), F.max_pool2d(x, 2, ceil_mode=True)),
        [grad(np.round(randn(1, 2, 5, 5) * 2))],  # rounded: many ties
    ),
    "interpolate_nearest": (
        lambda x: (F.interpolate(x, scale_factor=2), F.interpolate(x, size=(5, 3))),
        [grad(randn(1, 2, 3, 4))],
    ),
    "interpolate_bilinear": (
        lambda x: (
            F.interpolate(x, size=(5, 7), mode="bilinear"),
            F.interpolate(x, scale_factor=1.5, mode="bilinear", align_corners=True),
        ),
        [grad(randn(1, 2, 3, 4))],
    ),
    "group_norm": (
        lambda x, g, b: F.group_norm(x, 2, g, b),
        [grad(randn(2, 4, 3, 2)), grad(randn(4, seed=1)), grad(randn(4, seed=2))],
    ),
    "linear": (
        lambda x, w, b: F.linear(x, w, b),
        [grad(randn(2, 3, 4)), grad(randn(5, 4, seed=1)), grad(randn(5, seed=2))],
    ),
    "cross_entropy_weight_ignore_index": (
        lambda x, t, w: (
            F.cross_entropy(x, t),
            F.cross_entropy(x, t, weight=w, ignore_index=2),
            F.cross_entropy(x, t, reduction="none"),
        ),
        [grad(randn(5, 4)), const(np.array([0, 2, 3, 2, 1])), const(np.abs(randn(4, seed=3)))],
    ),
    "cross_entropy_spatial": (
        lambda x, t: F.cross_entropy(x, t, reduction="sum"),
        [grad(randn(2, 3, 2, 2)), const(np.array([[[0, 2], [1, 1]], [[2, 2], [0, 1]]]))],
    ),
    "binary_cross_entropy_with_logits": (
        lambda x, t, w: (
            F.binary_cross_entropy_with_logits(x, t),
            F.binary_cross_entropy_with_logits(x, t, weight=w, reduction="sum"),
        ),
        [
            grad(np.array([[-30.0, -1.0, 0.0], [0.5, 2.0, 40.0]])),
            grad(np.array([[0.0, 1.0, 0.5], [1.0, 0.25, 0.0]])),
            const(np.array([1.0, 2.0, 0.5])),
        ],
    ),
    "l1_and_smooth_l1": (
        lambda x, t: (
            F.l1_loss(x, t),
            F.smooth_l1_loss(x, t, beta=0.5),
            F.smooth_l1_loss(x, t, reduction="none"),
        ),
        [grad(randn(3, 4)), grad(randn(3, 4, seed=1))],
    ),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(FUNCTIONAL_CASES))
def test_functional_matches_cpu(name, dtype):
    fn, inputs = FUNCTIONAL_CASES[name]
    check(fn, inputs, dtype)


# ------------------------------------------------------------------ deterministic backward
# The backward of max_pool2d and interpolate under use_deterministic_algorithms(True) (the
# default): one CUDA thread per input element adds its terms in the CPU kernel's order
# (minimask/cuda/pooling.py, interpolate.py). Checked against three references:
#   - the same terms added one by one in that order with NumPy (the terms: each output's
#     gradient sent to torch's argmax, or times the weights of minimask's source tables,
#     whose values the PyTorch comparison checks): the exact bits, on the CPU and on CUDA
#     ("bilinear" on a GPU: float32/float64 tolerance, as the compiler may fuse a product
#     with its addition); the same terms in reverse order give other bits somewhere, so
#     equal bits do say that the order is the CPU's;
#   - PyTorch's backward in float64 (the values): the tolerances of this file;
#   - a second run: the same bytes, with the deterministic kernel recorded as the one that
#     ran (tests/kernel_launches.py); False runs the atomic kernel, within tolerance.

# name -> (function name, keyword arguments shared by minimask and torch, kernel)
BACKWARD_CASES = {
    "max_pool2d_overlapping_padded": (
        "max_pool2d",
        dict(kernel_size=3, stride=1, padding=1),
        "_scatter_to_argmax",
    ),
    "max_pool2d_dilated_strided": (
        "max_pool2d",
        dict(kernel_size=3, stride=(2, 1), padding=1, dilation=(2, 1)),
        "_scatter_to_argmax",
    ),
    "max_pool2d_ceil_mode": (
        "max_pool2d",
        dict(kernel_size=3, stride=2, ceil_mode=True),
        "_scatter_to_argmax",
    ),
    "nearest_scale_2": ("interpolate", dict(scale_factor=2), "_nearest_scatter"),
    "nearest_down_and_up": ("interpolate", dict(size=(3, 20)), "_nearest_scatter"),
    "nearest_scale_factors": (
        "interpolate",
        dict(scale_factor=(1.7, 0.6)),
        "_nearest_scatter",
    ),
    "bilinear_up": ("interpolate", dict(size=(9, 11), mode="bilinear"), "_bilinear_scatter"),
    "bilinear_up_align_corners": (
        "interpolate",
        dict(scale_factor=(2.5, 1.5), mode="bilinear", align_corners=True),
        "_bilinear_scatter",
    ),
    "bilinear_down": (
        "interpolate",
        dict(scale_factor=(0.6, 0.5), mode="bilinear"),
        "_bilinear_scatter",
    ),
    "bilinear_down_align_corners": (
        "interpolate",
        dict(size=(4, 4), mode="bilinear", align_corners=True),
        "_bilinear_scatter",
    ),
}
SIMULATOR = bool(config.ENABLE_CUDASIM)


@pytest.fixture
def deterministic_mode():
    """Set the switch with ``deterministic_mode(flag)``; restored after the test."""
    saved = mm.are_deterministic_algorithms_enabled()
    yield mm.use_deterministic_algorithms
    mm.use_deterministic_algorithms(saved)


@pytest.fixture
def launched(monkeypatch):
    return record_backward_launches(monkeypatch)


def backward_case(name, dtype):
    """(call, kwargs, kernel, x, weight): x is (1, 2, 5, 6) (small integers for max_pool2d:
    ties), weight the output weights of the loss sum(out * weight), of magnitudes 0.01 to
    100 so that the order of a sum shows in its bits."""
    call, kwargs, kernel = BACKWARD_CASES[name]
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 2, 5, 6))
    if call == "max_pool2d":
        x = rng.integers(0, 3, x.shape).astype(np.float64)
    out_shape = getattr(F, call)(mm.tensor(x), **kwargs).shape
    weight = rng.standard_normal(out_shape) * 10.0 ** rng.uniform(-2, 2, out_shape)
    return call, kwargs, kernel, x.astype(dtype), weight.astype(dtype)


def input_gradient(call, kwargs, x, weight, device):
    """d sum(out * weight) / dx of ``F.<call>(x, **kwargs)`` on ``device``."""
    tensor = mm.tensor(x, device=device, requires_grad=True)
    out = getattr(F, call)(tensor, **kwargs)
    (out * mm.tensor(weight, device=device)).sum().backward()
    assert tensor.grad.device == device
    return tensor.grad.numpy()


def torch_input_gradient(call, kwargs, x, weight):
    """PyTorch's d sum(out * weight) / dx in float64."""
    tensor = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    out = getattr(torch.nn.functional, call)(tensor, **kwargs)
    (out * torch.tensor(weight, dtype=torch.float64)).sum().backward()
    return tensor.grad.numpy()


def backward_terms(call, kwargs, x, weight):
    """(targets, values): the terms of the input gradient in the CPU kernel's order, output
    (n, c, oh, ow) row by row (and for bilinear its taps (a, b) in order); targets is the
    tuple of index arrays (n, c, h, w), values the terms in weight's dtype."""
    n, c, oh, ow = np.indices(weight.shape).reshape(4, -1)
    height, width = x.shape[2:]
    if call == "max_pool2d":
        _, argmax = torch.nn.functional.max_pool2d(torch.tensor(x), return_indices=True, **kwargs)
        chosen = argmax.numpy().ravel()
        return (n, c, chosen // width, chosen % width), weight.ravel()
    scale = kwargs.get("scale_factor")
    scales = scale if isinstance(scale, tuple) else (scale, scale)
    out_h, out_w = weight.shape[2:]
    if kwargs.get("mode", "nearest") == "nearest":
        src_h = nearest_source_index(height, out_h, scales[0])
        src_w = nearest_source_index(width, out_w, scales[1])
        return (n, c, src_h[oh], src_w[ow]), weight.ravel()
    align_corners = kwargs.get("align_corners", False)
    h0, h1, wh0, wh1 = linear_source_weights(height, out_h, align_corners, scales[0], x.dtype)
    w0, w1, ww0, ww1 = linear_source_weights(width, out_w, align_corners, scales[1], x.dtype)
    rows, row_weights = np.stack([h0, h1]), np.stack([wh0, wh1])
    cols, col_weights = np.stack([w0, w1]), np.stack([ww0, ww1])
    n, c, oh, ow, a, b = np.indices((*weight.shape, 2, 2)).reshape(6, -1)
    values = row_weights[a, oh] * col_weights[b, ow] * weight[n, c, oh, ow]
    return (n, c, rows[a, oh], cols[b, ow]), values


def add_in_order(shape, targets, values):
    """The terms added one at a time, in the given order, onto zeros of values' dtype."""
    total = np.zeros(shape, values.dtype)
    for position, value in zip(zip(*targets), values):
        total[position] += value
    return total


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(BACKWARD_CASES))
def test_deterministic_backward_adds_in_the_cpu_order(name, dtype, launched, deterministic_mode):
    """The references and tolerances of this section (comment above), for one case."""
    deterministic_mode(True)
    call, kwargs, kernel, x, weight = backward_case(name, dtype)
    cpu_grad = input_gradient(call, kwargs, x, weight, "cpu")
    first = input_gradient(call, kwargs, x, weight, "cuda")
    assert launched == [kernel]
    second = input_gradient(call, kwargs, x, weight, "cuda")
    assert launched == [kernel, kernel]
    assert first.dtype == dtype and first.tobytes() == second.tobytes()

    targets, values = backward_terms(call, kwargs, x, weight)
    in_order = add_in_order(x.shape, targets, values)
    reverse = add_in_order(x.shape, tuple(t[::-1] for t in targets), values[::-1])
    nonzero_terms = np.bincount(np.ravel_multi_index(targets, x.shape)[values != 0])
    if nonzero_terms.max() >= 3:  # (two terms give one sum in either order: a + b == b + a)
        assert np.any(reverse != in_order), "the order of these sums must show in their bits"
    np.testing.assert_array_equal(cpu_grad, in_order)
    if SIMULATOR or kernel != "_bilinear_scatter":
        np.testing.assert_array_equal(first, in_order)
    else:  # a GPU may fuse the product and the addition
        assert_close(first, in_order, dtype, "cuda vs the CPU's order")
    assert_close(first, torch_input_gradient(call, kwargs, x, weight), dtype, "cuda vs torch")


@pytest.mark.parametrize(
    "name", ["max_pool2d_overlapping_padded", "nearest_scale_2", "bilinear_up"]
)
def test_atomic_backward_when_determinism_is_off(name, launched, deterministic_mode):
    """use_deterministic_algorithms(False) runs the atomic-add kernel; its sums are the CPU's
    within the float32 tolerance of this file (another order of the same terms)."""
    deterministic_mode(False)
    call, kwargs, kernel, x, weight = backward_case(name, np.float32)
    grad = input_gradient(call, kwargs, x, weight, "cuda")
    assert launched == [f"{kernel}_atomic"]
    assert_close(grad, input_gradient(call, kwargs, x, weight, "cpu"), np.float32, "atomic")
