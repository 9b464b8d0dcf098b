"""minimask.nn.functional against torch.nn.functional (CPU), finite differences and the
documented conventions.

Every function is run on the same numbers in minimask and in PyTorch; the outputs are
compared, and so are the gradients of the *leaves* for one random upstream gradient.
Inputs come in three layouts: contiguous, permuted (the operand is ``leaf.permute(p)`` of
a leaf stored in another order) and sliced (``leaf[..., ::2]``, a strided view), so the
functions are also checked on non-contiguous arrays and the gradient also flows back
through the permute or slice.

Tolerances. minimask and PyTorch compute the same formulas in a different order
(vectorised vs. pairwise sums, libm vs. SLEEF exp/log), so results differ by a few
roundings of the largest intermediate values. With unit roundoff 1.1e-16 (float64) and
6e-8 (float32), reductions of at most a few hundred elements and intermediates bounded by
the largest compared value, the difference stays far below

    |minimask - torch| <= rtol * |torch| + atol * max(1, max |torch|)

with (rtol, atol) = (1e-10, 1e-12) in float64 and (1e-5, 1e-5) in float32 (about a
hundred roundings). A wrong formula (a missing factor, a gradient sent to the wrong
element, a wrong index rule) is off by O(1), far beyond both. Index rules (which input
element an output reads) are compared exactly through the values they produce.

gradcheck (float64 central differences, ``minimask.gradcheck`` defaults: atol 1e-5,
rtol 1e-3) checks each backward independently of PyTorch, on inputs kept away from kinks
and ties.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import minimask as mm
from minimask.nn import functional as F

DTYPES = [np.float64, np.float32]
TOLERANCE = {np.dtype(np.float64): (1e-10, 1e-12), np.dtype(np.float32): (1e-5, 1e-5)}
LAYOUTS = ["contiguous", "permuted", "sliced"]


# ------------------------------------------------------------------ helpers
@pytest.fixture(autouse=True, scope="module")
def single_threaded_torch():
    """Run the PyTorch references on one thread. Their inputs are tiny, and on a 2-core
    machine torch's idle OpenMP workers keep spinning after each call and starve the
    threads of minimask's parallel Numba kernels (a 100x slowdown of gradcheck)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Operand:
    """The same values as a minimask operand and a torch operand (in some layout), and the
    leaves they were made from, whose .grad the tests compare."""

    def __init__(self, values, dtype, layout="contiguous", requires_grad=True):
        values = np.asarray(values).astype(dtype)
        if layout == "contiguous":
            stored, self._view = values, lambda t: t
        elif layout == "permuted":
            order = tuple(reversed(range(values.ndim)))  # its own inverse
            stored = np.ascontiguousarray(values.transpose(order))
            self._view = lambda t: t.permute(*order)
        elif layout == "sliced":
            stored = np.zeros(values.shape[:-1] + (2 * values.shape[-1],), dtype)
            stored[..., ::2] = values
            self._view = lambda t: t[..., ::2]
        else:
            raise ValueError(layout)
        self.mm_leaf = mm.tensor(stored, requires_grad=requires_grad)
        self.torch_leaf = torch.tensor(stored, requires_grad=requires_grad)
        self.mm = self._view(self.mm_leaf)
        self.torch = self._view(self.torch_leaf)


def assert_close(actual, expected, dtype, what):
    rtol, atol = TOLERANCE[np.dtype(dtype)]
    scale = max(1.0, float(np.nanmax(np.abs(expected), initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale, err_msg=what)


def check_against_torch(mm_fn, torch_fn, operands, dtype, seed=0):
    """Forward values and leaf gradients of mm_fn and torch_fn on the same operands."""
    out = mm_fn(*(o.mm for o in operands))
    ref = torch_fn(*(o.torch for o in operands))
    assert out.dtype == np.dtype(dtype)
    assert out.shape == tuple(ref.shape)
    assert_close(out.numpy(), ref.detach().numpy(), dtype, "forward")
    upstream = np.random.default_rng(seed).standard_normal(tuple(ref.shape)).astype(dtype)
    out.backward(mm.tensor(upstream))
    ref.backward(torch.tensor(upstream))
    for position, o in enumerate(operands):
        if o.torch_leaf.requires_grad:
            assert_close(
                o.mm_leaf.grad.numpy(), o.torch_leaf.grad.numpy(), dtype, f"grad {position}"
            )


def leaf(values):
    """A float64 leaf that requires grad (for gradcheck)."""
    return mm.tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


def distinct(shape, seed=0, gap=0.1):
    """Values at least ``gap`` apart, none equal: no ties for max pooling to break."""
    n = int(np.prod(shape))
    order = np.random.default_rng(seed).permutation(n)
    return ((order - n / 2 + 0.5) * gap).reshape(shape)


def normal(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ------------------------------------------------------------------ activations
ACTIVATIONS = {
    "relu": (F.relu, TF.relu),
    "sigmoid": (F.sigmoid, torch.sigmoid),
    "softmax0": (lambda x: F.softmax(x, 0), lambda x: TF.softmax(x, 0)),
    "softmax-1": (lambda x: F.softmax(x, -1), lambda x: TF.softmax(x, -1)),
    "log_softmax1": (lambda x: F.log_softmax(x, 1), lambda x: TF.log_softmax(x, 1)),
}


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_matches_torch(name, layout, dtype):
    """relu, sigmoid, softmax, log_softmax vs. torch.nn.functional: forward and input
    gradient, (rtol, atol) from TOLERANCE. Values from a normal with 3 x scale, so softmax
    sees large logits; relu inputs are never exactly 0 (its kink)."""
    mm_fn, torch_fn = ACTIVATIONS[name]
    x = Operand(3 * normal((3, 4, 5)), dtype, layout)
    check_against_torch(mm_fn, torch_fn, [x], dtype)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_gradcheck(name):
    """Activation gradients vs. float64 central differences (gradcheck defaults)."""
    mm_fn, _ = ACTIVATIONS[name]
    assert mm.gradcheck(mm_fn, leaf(normal((3, 4, 5), seed=1)))


# ------------------------------------------------------------------ linear
@pytest.mark.parametrize("input_shape", [(5, 4), (2, 3, 4), (4,)])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_matches_torch(input_shape, with_bias, layout, dtype):
    """linear vs. torch.nn.functional.linear: output and gradients of input, weight and
    bias, (rtol, atol) from TOLERANCE."""
    operands = [
        Operand(normal(input_shape), dtype, layout),
        Operand(normal((3, 4), seed=1), dtype, layout),
    ]
    if with_bias:
        operands.append(Operand(normal((3,), seed=2), dtype))
    check_against_torch(F.linear, TF.linear, operands, dtype)


def test_linear_gradcheck():
    """linear's input, weight and bias gradients vs. float64 central differences."""
    inputs = (leaf(normal((2, 3, 4))), leaf(normal((5, 4), 1)), leaf(normal((5,), 2)))
    assert mm.gradcheck(F.linear, inputs)


# ------------------------------------------------------------------ max_pool2d
POOL_ARGUMENTS = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0)),
    dict(kernel_size=3, stride=1, padding=1, dilation=2),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=2, stride=3, ceil_mode=True),
    dict(kernel_size=1, stride=2),
]


@pytest.mark.parametrize("arguments", POOL_ARGUMENTS, ids=str)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool2d_matches_torch(arguments, layout, dtype):
    """max_pool2d vs. torch.nn.functional.max_pool2d on distinct values (the tie rule has
    its own test): output and input gradient, (rtol, atol) from TOLERANCE; the gradient
    lands on exactly the same elements, so it matches to rounding of the sums."""
    x = Operand(distinct((2, 3, 7, 8)), dtype, layout)
    check_against_torch(
        lambda x: F.max_pool2d(x, **arguments), lambda x: TF.max_pool2d(x, **arguments), [x], dtype
    )


@pytest.mark.parametrize("arguments", POOL_ARGUMENTS[:5], ids=str)
def test_max_pool2d_gradcheck(arguments):
    """max_pool2d's input gradient vs. float64 central differences (distinct values 0.1
    apart, so a step of 1e-6 never changes which element is the maximum)."""
    assert mm.gradcheck(lambda x: F.max_pool2d(x, **arguments), leaf(distinct((1, 2, 6, 7))))


def test_max_pool2d_tie_gives_the_gradient_to_the_first_maximum():
    """At an exact tie the gradient goes to the first maximal element of the window in
    row-major order (documented rule), for disjoint and for overlapping windows; reference:
    the hand-written expected gradient and torch's max_pool2d (same rule), exact."""
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 1] = x[0, 0, 1, 2] = x[0, 0, 2, 1] = 1.0  # three tied maxima in the middle
    for arguments, expected_grad in [
        # 2x2 windows: the top-left window's only maximum is (1, 1); the top-right window
        # has (1, 2); the bottom-left (2, 1); the bottom-right window is all zeros, so its
        # first element (2, 2) wins.
        (dict(kernel_size=2), [(1, 1), (1, 2), (2, 1), (2, 2)]),
        # 3x3 windows with stride 1 all contain the tie: each picks (1, 1), the first.
        (dict(kernel_size=3, stride=1), [(1, 1)] * 4),
    ]:
        operand = Operand(x, np.float64)
        y = F.max_pool2d(operand.mm, **arguments)
        y.backward(mm.ones_like(y))
        expected = np.zeros_like(x)
        for h, w in expected_grad:
            expected[0, 0, h, w] += 1
        np.testing.assert_array_equal(operand.mm_leaf.grad.numpy(), expected)
        TF.max_pool2d(operand.torch, **arguments).sum().backward()
        np.testing.assert_array_equal(operand.torch_leaf.grad.numpy(), expected)


def test_max_pool2d_propagates_nan():
    """A NaN in a window propagates: the output is NaN and the gradient goes to the NaN
    element; reference: torch (same rule), exact."""
    values = distinct((1, 1, 4, 4))
    values[0, 0, 2, 3] = np.nan
    x = Operand(values, np.float64)
    y = F.max_pool2d(x.mm, 2)
    y.backward(mm.ones_like(y))
    reference = TF.max_pool2d(x.torch, 2)
    reference.sum().backward()
    np.testing.assert_array_equal(y.numpy(), reference.detach().numpy())
    np.testing.assert_array_equal(x.mm_leaf.grad.numpy(), x.torch_leaf.grad.numpy())


def test_max_pool2d_window_entirely_in_the_padding():
    """With dilation a window can miss the input (taps at -1 and 2 of a size-2 axis): its
    output is -inf (reference: torch's forward, exact) and it sends no gradient (reference:
    zeros; torch's backward is not used here, as it writes such a window's gradient out of
    bounds of the input gradient)."""
    x = Operand(distinct((1, 1, 2, 2)), np.float64)
    arguments = dict(kernel_size=2, stride=1, padding=1, dilation=3)
    y = F.max_pool2d(x.mm, **arguments)
    y.backward(mm.ones_like(y))
    with torch.no_grad():
        reference = TF.max_pool2d(x.torch, **arguments)
    np.testing.assert_array_equal(y.numpy(), reference.numpy())
    np.testing.assert_array_equal(y.numpy(), [[[[-np.inf]]]])
    np.testing.assert_array_equal(x.mm_leaf.grad.numpy(), np.zeros((1, 1, 2, 2)))


# ------------------------------------------------------------------ interpolate
INTERPOLATE_ARGUMENTS = [
    dict(size=(5, 13)),
    dict(size=7),
    dict(scale_factor=2),
    dict(scale_factor=1.7),
    dict(scale_factor=(0.6, 2.3)),  # downsampling rows, upsampling columns
    dict(scale_factor=0.5),
    dict(scale_factor=(1.1, 2.1)),  # out == in (6 * 1.1 -> 6) and out == 2 * in (7 * 2.1 -> 14)
    dict(scale_factor=1.7, recompute_scale_factor=True),
    dict(size=(1, 1)),
]
MODES = [("nearest", None), ("bilinear", False), ("bilinear", True)]


@pytest.mark.parametrize("arguments", INTERPOLATE_ARGUMENTS, ids=str)
@pytest.mark.parametrize("mode, align_corners", MODES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_interpolate_matches_torch(arguments, mode, align_corners, layout, dtype):
    """interpolate vs. torch.nn.functional.interpolate: output and input gradient, (rtol,
    atol) from TOLERANCE. The cases cover PyTorch's index rules: scale_factor given (the
    coordinate is d / scale_factor, not d * in / out) or recomputed, the out == in and
    out == 2 * in special cases, downsampling, and a 1 x 1 output."""

    def call(module, x):
        return module.interpolate(x, mode=mode, align_corners=align_corners, **arguments)

    x = Operand(normal((2, 3, 6, 7)), dtype, layout)
    check_against_torch(lambda x: call(F, x), lambda x: call(TF, x), [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_interpolate_nearest_uses_float32_coordinates(dtype):
    """Mode "nearest" computes floor(d * (1 / scale_factor)) in float32 even on float64
    data, as PyTorch does: at input size 31 and scale 1.3 that picks other rows than float64
    arithmetic would. Reference: torch, exact (nearest copies values)."""
    x = Operand(normal((1, 1, 31, 3)), dtype)
    y = F.interpolate(x.mm, scale_factor=(1.3, 1.0))
    float64_rows = np.floor(np.arange(40) * (1 / 1.3)).astype(int)
    assert not np.array_equal(y.numpy()[0, 0, :, 0], x.mm.numpy()[0, 0, float64_rows, 0])
    reference = TF.interpolate(x.torch, scale_factor=(1.3, 1.0))
    np.testing.assert_array_equal(y.numpy(), reference.detach().numpy())


@pytest.mark.parametrize("mode, align_corners", MODES)
@pytest.mark.parametrize("arguments", [dict(size=(4, 9)), dict(scale_factor=(0.7, 1.6))], ids=str)
def test_interpolate_gradcheck(mode, align_corners, arguments):
    """interpolate's input gradient vs. float64 central differences (it is linear in the
    input, so the differences are exact up to rounding)."""
    assert mm.gradcheck(
        lambda x: F.interpolate(x, mode=mode, align_corners=align_corners, **arguments),
        leaf(normal((1, 2, 5, 6))),
    )


@pytest.mark.parametrize("mode, align_corners", MODES)
def test_pooling_and_interpolate_take_a_broadcast_gradient(mode, align_corners):
    """``.sum().backward()`` hands the kernels a zero-stride (broadcast) gradient array;
    reference: torch, float64 (rtol, atol) from TOLERANCE."""
    for mm_fn, torch_fn in [
        (lambda x: F.max_pool2d(x, 3, 2, 1), lambda x: TF.max_pool2d(x, 3, 2, 1)),
        (
            lambda x: F.interpolate(x, size=(9, 4), mode=mode, align_corners=align_corners),
            lambda x: TF.interpolate(x, size=(9, 4), mode=mode, align_corners=align_corners),
        ),
    ]:
        x = Operand(distinct((2, 2, 5, 6)), np.float64)
        mm_fn(x.mm).sum().backward()
        torch_fn(x.torch).sum().backward()
        assert_close(x.mm_leaf.grad.numpy(), x.torch_leaf.grad.numpy(), np.float64, "grad")


# ------------------------------------------------------------------ group_norm
GROUP_NORM_CASES = [
    ((2, 6, 3, 4), 3),
    ((2, 6, 3, 4), 1),  # one group: layer norm over (C, H, W)
    ((2, 6, 3, 4), 6),  # one channel a group: instance norm
    ((3, 4), 2),  # (N, C): no spatial dims
    ((2, 4, 5), 2),  # (N, C, L)
]


@pytest.mark.parametrize("shape, groups", GROUP_NORM_CASES, ids=str)
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_group_norm_matches_torch(shape, groups, affine, layout, dtype):
    """group_norm vs. torch.nn.functional.group_norm: output and the gradients of input,
    weight and bias, (rtol, atol) from TOLERANCE. The input has a mean of 5 and scale 2,
    so centring matters."""
    operands = [Operand(5 + 2 * normal(shape), dtype, layout)]
    if affine:
        channels = shape[1]
        operands += [
            Operand(normal((channels,), 1), dtype),
            Operand(normal((channels,), 2), dtype),
        ]
    check_against_torch(
        lambda *a: F.group_norm(a[0], groups, *a[1:]),
        lambda *a: TF.group_norm(a[0], groups, *a[1:]),
        operands,
        dtype,
    )


def test_group_norm_gradcheck():
    """group_norm's input, weight and bias gradients vs. float64 central differences."""
    inputs = (leaf(normal((2, 6, 2, 3))), leaf(normal((6,), 1)), leaf(normal((6,), 2)))
    assert mm.gradcheck(lambda x, w, b: F.group_norm(x, 3, w, b, eps=1e-3), inputs)


# ------------------------------------------------------------------ losses
REDUCTIONS = ["none", "mean", "sum"]


def class_targets(shape, classes, seed=0, ignored=()):
    """Random int64 class indices; the flat positions in ``ignored`` set to -100."""
    target = np.random.default_rng(seed).integers(0, classes, shape)
    target.reshape(-1)[list(ignored)] = -100
    return target


@pytest.mark.parametrize("logits_shape", [(6, 5), (3, 4, 2, 3)], ids=str)
@pytest.mark.parametrize("with_weight", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_matches_torch(logits_shape, with_weight, reduction, layout, dtype):
    """cross_entropy vs. torch.nn.functional.cross_entropy, with ignored targets (-100)
    and PyTorch's weighted mean: loss and logit gradient, (rtol, atol) from TOLERANCE."""
    classes = logits_shape[1]
    target = class_targets((logits_shape[0],) + logits_shape[2:], classes, ignored=(1, 4))
    weight = np.linspace(0.5, 2.0, classes).astype(dtype) if with_weight else None

    def call(module, tensor, x):
        return module.cross_entropy(
            x,
            tensor(target),
            weight=None if weight is None else tensor(weight),
            reduction=reduction,
        )

    x = Operand(3 * normal(logits_shape), dtype, layout)
    check_against_torch(
        lambda x: call(F, mm.tensor, x), lambda x: call(TF, torch.tensor, x), [x], dtype
    )


def test_cross_entropy_all_ignored_is_nan():
    """A mean over no (non-ignored) targets is 0 / 0 = nan, as in torch."""
    logits = normal((3, 4))
    target = np.full(3, -100)
    with np.errstate(invalid="ignore"):
        loss = F.cross_entropy(mm.tensor(logits), mm.tensor(target))
    assert np.isnan(loss.item())
    assert np.isnan(TF.cross_entropy(torch.tensor(logits), torch.tensor(target)).item())


def test_cross_entropy_gradcheck():
    """cross_entropy's logit gradient (weighted mean, one ignored target) vs. float64
    central differences."""
    target = mm.tensor(class_targets((5,), 4, ignored=(2,)))
    weight = mm.tensor([0.5, 1.0, 1.5, 2.0], dtype=mm.float64)
    assert mm.gradcheck(lambda x: F.cross_entropy(x, target, weight), leaf(normal((5, 4))))


@pytest.mark.parametrize("weight_shape", [None, (4,), (3, 1)], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_cross_entropy_with_logits_matches_torch(weight_shape, reduction, layout, dtype):
    """binary_cross_entropy_with_logits vs. torch: loss and the gradients of logits and
    targets, with a broadcast weight, (rtol, atol) from TOLERANCE. Logits up to +-40
    check the stable form (exp never overflows, no log(0))."""
    logits = 10 * normal((3, 4))
    logits[0, :2] = (40.0, -40.0)
    probabilities = np.random.default_rng(1).random((3, 4))
    weight = None if weight_shape is None else 0.5 + np.random.default_rng(2).random(weight_shape)

    def call(module, tensor, x, t):
        w = None if weight is None else tensor(weight.astype(dtype))
        return module.binary_cross_entropy_with_logits(x, t, weight=w, reduction=reduction)

    operands = [Operand(logits, dtype, layout), Operand(probabilities, dtype, layout)]
    check_against_torch(
        lambda x, t: call(F, mm.tensor, x, t),
        lambda x, t: call(TF, torch.tensor, x, t),
        operands,
        dtype,
    )


def test_binary_cross_entropy_with_logits_gradient_at_zero():
    """At logit 0 exactly the gradient is sigmoid(0) - t = 0.5 - t (a composition of relu
    and abs would give -t there); reference: the formula and torch, float64 TOLERANCE."""
    target = np.array([0.0, 0.25, 1.0])
    x = Operand(np.zeros(3), np.float64)
    t = Operand(target, np.float64, requires_grad=False)
    F.binary_cross_entropy_with_logits(x.mm, t.mm, reduction="sum").backward()
    TF.binary_cross_entropy_with_logits(x.torch, t.torch, reduction="sum").backward()
    assert_close(x.mm_leaf.grad.numpy(), 0.5 - target, np.float64, "formula")
    assert_close(x.mm_leaf.grad.numpy(), x.torch_leaf.grad.numpy(), np.float64, "torch")


def test_binary_cross_entropy_with_logits_gradcheck():
    """Gradients of logits and targets vs. float64 central differences."""
    assert mm.gradcheck(
        lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction="sum"),
        (leaf(3 * normal((3, 4))), leaf(np.random.default_rng(1).random((3, 4)))),
    )


REGRESSION_LOSSES = {
    "l1": (F.l1_loss, TF.l1_loss),
    "smooth_l1 beta=1": (F.smooth_l1_loss, TF.smooth_l1_loss),
    "smooth_l1 beta=0.5": (
        lambda x, t, **kw: F.smooth_l1_loss(x, t, beta=0.5, **kw),
        lambda x, t, **kw: TF.smooth_l1_loss(x, t, beta=0.5, **kw),
    ),
    "smooth_l1 beta=0": (
        lambda x, t, **kw: F.smooth_l1_loss(x, t, beta=0.0, **kw),
        lambda x, t, **kw: TF.smooth_l1_loss(x, t, beta=0.0, **kw),
    ),
}


def regression_pair(shape=(3, 4)):
    """(input, target) with differences on both sides of beta in {0.5, 1} and, in the first
    row, exactly 0, +-0.5 and 1 (the kinks and branch boundaries). All values are small
    multiples of 1/64, so they and their differences are exact in float32 too."""
    target = np.round(64 * normal(shape, 1)) / 64
    input = target + np.round(96 * normal(shape, 2)) / 64
    input[0, :4] = target[0, :4] + np.array([0.0, 0.5, -0.5, 1.0])
    return input, target


@pytest.mark.parametrize("name", REGRESSION_LOSSES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_regression_loss_matches_torch(name, reduction, layout, dtype):
    """l1_loss and smooth_l1_loss vs. torch, including differences exactly at 0 and at
    +-beta (where the conventions abs'(0) = 0 and the branch choice show): loss and the
    gradients of input and target, (rtol, atol) from TOLERANCE."""
    mm_fn, torch_fn = REGRESSION_LOSSES[name]
    input, target = regression_pair()
    operands = [Operand(input, dtype, layout), Operand(target, dtype, layout)]
    check_against_torch(
        lambda x, t: mm_fn(x, t, reduction=reduction),
        lambda x, t: torch_fn(x, t, reduction=reduction),
        operands,
        dtype,
    )


@pytest.mark.parametrize("name", REGRESSION_LOSSES)
def test_regression_loss_gradcheck(name):
    """Gradients of input and target vs. float64 central differences, away from the kinks
    (|difference| is never within 0.01 of 0, 0.5 or 1)."""
    mm_fn, _ = REGRESSION_LOSSES[name]
    target = normal((3, 4), 1)
    offsets = np.array([0.2, -0.7, 1.3, -2.0, 0.8, -0.3]).repeat(2).reshape(3, 4)
    assert mm.gradcheck(
        lambda x, t: mm_fn(x, t, reduction="sum"), (leaf(target + offsets), leaf(target))
    )


# ------------------------------------------------------------------ bad input
def _t(shape, dtype=np.float32):
    return mm.zeros(shape, dtype=dtype)


BAD_INPUTS = {
    "linear features": (
        lambda: F.linear(_t((2, 3)), _t((4, 5))),
        ValueError,
        r"must end in in_features = 5",
    ),
    "linear weight ndim": (lambda: F.linear(_t((2, 3)), _t((3,))), ValueError, "must be 2-d"),
    "linear bias": (
        lambda: F.linear(_t((2, 3)), _t((4, 3)), _t((3,))),
        ValueError,
        r"bias must have shape \(4,\)",
    ),
    "softmax dim": (lambda: F.softmax(_t((2, 3)), 2), IndexError, "dim 2 is out of range"),
    "max_pool2d ndim": (lambda: F.max_pool2d(_t((3, 4, 4)), 2), ValueError, "must be 4-d"),
    "max_pool2d dtype": (
        lambda: F.max_pool2d(_t((1, 1, 4, 4), np.int64), 2),
        TypeError,
        "must be floating point, got int64",
    ),
    "max_pool2d padding": (
        lambda: F.max_pool2d(_t((1, 1, 4, 4)), 3, padding=2),
        ValueError,
        "padding .* must be between 0 and half the kernel's span",
    ),
    "max_pool2d too small": (
        lambda: F.max_pool2d(_t((1, 1, 2, 2)), 3),
        ValueError,
        "too small for kernel_size",
    ),
    "max_pool2d kernel_size": (
        lambda: F.max_pool2d(_t((1, 1, 4, 4)), (2, 2, 2)),
        ValueError,
        "kernel_size must be an int or a pair",
    ),
    "interpolate ndim": (
        lambda: F.interpolate(_t((1, 4, 4)), size=2),
        ValueError,
        "must be 4-d",
    ),
    "interpolate size and scale": (
        lambda: F.interpolate(_t((1, 1, 4, 4)), size=2, scale_factor=2),
        ValueError,
        "only one of size or scale_factor",
    ),
    "interpolate no size": (
        lambda: F.interpolate(_t((1, 1, 4, 4))),
        ValueError,
        "either size or scale_factor",
    ),
    "interpolate mode": (
        lambda: F.interpolate(_t((1, 1, 4, 4)), size=2, mode="bicubic"),
        ValueError,
        "mode must be 'nearest' or 'bilinear', got 'bicubic'",
    ),
    "interpolate align_corners": (
        lambda: F.interpolate(_t((1, 1, 4, 4)), size=2, align_corners=False),
        ValueError,
        "align_corners can only be set with mode='bilinear'",
    ),
    "interpolate size pair": (
        lambda: F.interpolate(_t((1, 1, 4, 4)), size=(2, 2, 2)),
        ValueError,
        r"size must be a number or a pair \(h, w\)",
    ),
    "interpolate empty output": (
        lambda: F.interpolate(_t((1, 1, 4, 4)), scale_factor=0.2),
        ValueError,
        r"output size \(0, 0\) .* must be positive",
    ),
    "interpolate recompute with size": (
        lambda: F.interpolate(_t((1, 1, 4, 4)), size=2, recompute_scale_factor=True),
        ValueError,
        "recompute_scale_factor is meaningless with a size",
    ),
    "group_norm groups": (
        lambda: F.group_norm(_t((2, 6, 3, 3)), 4),
        ValueError,
        "num_groups must divide the number of channels; got num_groups=4 for 6 channels",
    ),
    "group_norm weight": (
        lambda: F.group_norm(_t((2, 6, 3, 3)), 3, _t((3,))),
        ValueError,
        r"weight must have shape \(6,\)",
    ),
    "group_norm ndim": (lambda: F.group_norm(_t((6,)), 3), ValueError, r"must be \(N, C, \*\)"),
    "cross_entropy reduction": (
        lambda: F.cross_entropy(_t((2, 3)), mm.tensor([0, 1]), reduction="avg"),
        ValueError,
        "reduction must be one of .* got 'avg'",
    ),
    "cross_entropy target range": (
        lambda: F.cross_entropy(_t((2, 3)), mm.tensor([0, 3])),
        IndexError,
        "target 3 is out of bounds for 3 classes",
    ),
    "cross_entropy negative target": (
        lambda: F.cross_entropy(_t((2, 3)), mm.tensor([-1, 0])),
        IndexError,
        "target -1 is out of bounds",
    ),
    "cross_entropy float target": (
        lambda: F.cross_entropy(_t((2, 3)), _t((2, 3))),
        TypeError,
        "target must be an integer tensor of class indices, got float32",
    ),
    "cross_entropy target shape": (
        lambda: F.cross_entropy(_t((2, 3)), mm.tensor([0, 1, 2])),
        ValueError,
        r"expected \(2,\)",
    ),
    "cross_entropy ndim": (
        lambda: F.cross_entropy(_t((3,)), mm.tensor(0)),
        ValueError,
        "must be \\(N, C\\)",
    ),
    "cross_entropy weight": (
        lambda: F.cross_entropy(_t((2, 3)), mm.tensor([0, 1]), weight=_t((2,))),
        ValueError,
        r"weight must have shape \(3,\)",
    ),
    "bce shape": (
        lambda: F.binary_cross_entropy_with_logits(_t((2, 3)), _t((2, 1))),
        ValueError,
        r"target shape \(2, 1\) must equal the input shape \(2, 3\)",
    ),
    "bce reduction": (
        lambda: F.binary_cross_entropy_with_logits(_t((2,)), _t((2,)), reduction="max"),
        ValueError,
        "reduction must be one of",
    ),
    "bce weight": (
        lambda: F.binary_cross_entropy_with_logits(_t((2, 3)), _t((2, 3)), weight=_t((2,))),
        ValueError,
        r"weight of shape \(2,\) must broadcast",
    ),
    "bce integer target": (
        lambda: F.binary_cross_entropy_with_logits(_t((2,)), mm.tensor([0, 1])),
        TypeError,
        "must be floating point",
    ),
    "smooth_l1 beta": (
        lambda: F.smooth_l1_loss(_t((2,)), _t((2,)), beta=-1.0),
        ValueError,
        "beta must be >= 0",
    ),
    "smooth_l1 shape": (
        lambda: F.smooth_l1_loss(_t((2, 3)), _t((3,))),
        ValueError,
        "must equal the input shape",
    ),
    "l1 reduction": (
        lambda: F.l1_loss(_t((2,)), _t((2,)), reduction=None),
        ValueError,
        "reduction must be one of",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_raises_an_error_that_names_the_problem(case):
    """Each bad argument raises the expected exception type, and its message names the
    argument and the offending value or shape (reference: the message itself)."""
    call, error, message = BAD_INPUTS[case]
    with pytest.raises(error, match=message):
        call()
