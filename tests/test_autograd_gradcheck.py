"""gradcheck: every differentiable op against central finite differences (float64), and
gradcheck itself: both of its modes, and that it fails (naming the input and the entry) on
a Function whose backward is wrong.

Reference: central differences (f(x + eps v) - f(x - eps v)) / (2 eps) with gradcheck's
defaults eps = 1e-6, atol = 1e-5, rtol = 1e-3. For the smooth functions here (inputs of
size <= 5, second derivatives <= ~100) the truncation error is ~eps^2 * f''' ~ 1e-10 and the
rounding error ~1e-16 * |f| / eps ~ 1e-9, both far below atol; a wrong gradient is off by
O(1). Inputs stay at least 0.1 away from kinks (0 for abs/relu, the clamp bounds) and ties
(max, sort, topk, maximum get values at least 0.1 apart), far beyond eps.
"""

import importlib
import zlib

import numpy as np
import pytest

import minimask as mm
from minimask.autograd import Function
from minimask.autograd.gradcheck import GradcheckError

# the module (minimask.autograd.gradcheck names the function: the package re-exports it)
gradcheck_module = importlib.import_module("minimask.autograd.gradcheck")


def leaf(name, shape, low=-2.0, high=2.0, away_from=None, distinct=False):
    """A float64 leaf with requires_grad, its values seeded by ``name`` (reproducible).

    away_from: a kink; values within 0.1 of it are moved 0.2 further away.
    distinct:  values at least 0.1 apart (a shuffled grid), so there are no ties.
    """
    rng = np.random.default_rng(zlib.crc32(f"{name}{shape}".encode()))
    n = int(np.prod(shape))
    if distinct:
        values = (rng.permutation(n) - n / 2 + 0.3) * 0.2
    else:
        values = rng.uniform(low, high, n)
    if away_from is not None:
        close = np.abs(values - away_from) < 0.1
        values[close] += 0.2 * np.sign(values[close] - away_from + 1e-12)
    return mm.tensor(values.reshape(shape), dtype=mm.float64, requires_grad=True)


def index(values):
    return mm.tensor(np.array(values, dtype=np.int64))


# (function, input specs): each spec is (shape, leaf keyword arguments)
OPS = {
    # arithmetic with broadcasting
    "add": (lambda a, b: a + b, [((3, 1), {}), ((4,), {})]),
    "sub": (lambda a, b: a - b, [((2, 3), {}), ((1, 3), {})]),
    "mul": (lambda a, b: a * b, [((2, 1, 3), {}), ((4, 1), {})]),
    "div": (lambda a, b: a / b, [((2, 3), {}), ((3,), {"low": 0.5, "high": 2.0})]),
    "pow": (lambda a, b: a**b, [((2, 3), {"low": 0.5, "high": 2.0}), ((2, 1), {})]),
    "neg and numbers": (lambda x: 2.0 - (-x) * 3 / 1.5 + 1 / (x + 3) + 2**x + x**2, [((5,), {})]),
    # matmul: batched with broadcasting, and 1-d operands
    "matmul batched": (lambda a, b: a @ b, [((2, 1, 3, 4), {}), ((3, 4, 2), {})]),
    "matmul vector-matrix": (lambda a, b: mm.matmul(a, b), [((4,), {}), ((2, 4, 3), {})]),
    "matmul matrix-vector": (lambda a, b: a @ b, [((3, 4), {}), ((4,), {})]),
    "matmul vector-vector": (lambda a, b: a @ b, [((5,), {}), ((5,), {})]),
    # elementwise
    "exp": (lambda x: x.exp(), [((2, 3), {})]),
    "log": (lambda x: mm.log(x), [((2, 3), {"low": 0.2, "high": 3.0})]),
    "sqrt": (lambda x: x.sqrt(), [((2, 3), {"low": 0.2, "high": 3.0})]),
    "abs": (lambda x: mm.abs(x), [((2, 3), {"away_from": 0.0})]),
    "relu": (lambda x: x.relu(), [((2, 3), {"away_from": 0.0})]),
    "sigmoid": (lambda x: mm.sigmoid(x * 3), [((2, 3), {})]),
    "tanh": (lambda x: x.tanh(), [((2, 3), {})]),
    "clamp both": (lambda x: x.clamp(-0.5, 1.0), [((2, 4), {"away_from": 1.0})]),
    "clamp min": (lambda x: mm.clamp(x, min=0.5), [((2, 4), {"away_from": 0.5})]),
    "maximum": (lambda a, b: mm.maximum(a, b), [((2, 3), {"distinct": True}), ((3,), {})]),
    "minimum": (lambda a, b: a.minimum(b), [((2, 3), {"distinct": True}), ((2, 1), {})]),
    "where": (
        lambda a, b: mm.where(mm.tensor([[True, False, True]]), a, b),
        [((2, 3), {}), ((2, 1), {})],
    ),
    # reductions
    "sum": (lambda x: x.sum(dim=(0, 2), keepdim=True) + x.sum(), [((2, 3, 2), {})]),
    "mean": (lambda x: x.mean(-1) * mm.mean(x), [((2, 3, 2), {})]),
    "amax": (lambda x: x.amax(dim=1), [((3, 4), {"distinct": True})]),
    "amin": (lambda x: mm.amin(x, dim=(0, 1), keepdim=True), [((3, 4), {"distinct": True})]),
    "max all": (lambda x: x.max() * x.min(), [((3, 4), {"distinct": True})]),
    "max dim": (lambda x: mm.max(x, 1).values, [((3, 4), {"distinct": True})]),
    "min dim keepdim": (lambda x: x.min(0, keepdim=True)[0], [((3, 4), {"distinct": True})]),
    # shape
    "reshape view": (lambda x: x.reshape(3, -1).view(2, 6) * 2, [((4, 3), {})]),
    "permute transpose T": (lambda x: x.permute(2, 0, 1).transpose(0, 2).T, [((2, 3, 4), {})]),
    "flatten squeeze unsqueeze": (
        lambda x: x.unsqueeze(0).flatten(1, 2).squeeze(0).squeeze(-1),
        [((2, 3, 1), {})],
    ),
    "expand": (lambda x: x.expand(4, 2, 3) * mm.arange(3).double(), [((2, 1), {})]),
    # indexing
    "getitem basic": (lambda x: x[1:, None, ..., ::2], [((3, 2, 5), {})]),
    "getitem int": (lambda x: x[-1, 2], [((3, 4), {})]),
    "getitem repeated indices": (lambda x: x[index([0, 2, 0, 0])], [((3, 2), {})]),
    "getitem two arrays": (lambda x: x[index([1, 1, 0]), index([2, 2, 3])], [((3, 4), {})]),
    "getitem slice then array": (lambda x: x[:, [3, 3, 0]], [((2, 4), {})]),
    "getitem bool mask": (
        lambda x: x[mm.tensor([[True, False, True], [False, False, True]])],
        [((2, 3), {})],
    ),
    "gather repeated": (
        lambda x: x.gather(1, index([[0, 0, 2], [1, 1, 1]])),
        [((3, 3), {})],
    ),
    # joining
    "cat": (lambda a, b, c: mm.cat([a, b, c], dim=1), [((2, 1), {}), ((2, 3), {}), ((2, 2), {})]),
    "stack": (lambda a, b: mm.stack([a, b], dim=-1), [((2, 3), {}), ((2, 3), {})]),
    # softmax, sorting
    "softmax": (lambda x: x.softmax(dim=0), [((3, 4), {})]),
    "log_softmax": (lambda x: mm.log_softmax(x * 3, dim=-1), [((3, 4), {})]),
    "sort": (lambda x: x.sort(dim=0, descending=True).values, [((3, 4), {"distinct": True})]),
    "topk": (lambda x: mm.topk(x, 2, dim=1, largest=False).values, [((3, 4), {"distinct": True})]),
    # non-contiguous operands
    "permuted operand": (lambda x: (x.permute(1, 0) * 2).exp() @ x, [((3, 3), {})]),
    "sliced operand": (lambda x: x[::2, 1:].log_softmax(0), [((5, 3), {})]),
    # a small network: linear, relu, softmax cross-entropy
    "composite": (
        lambda x, w: -(mm.log_softmax((x @ w).tanh(), dim=1) * mm.tensor([[1.0, 0, 0]])).sum(),
        [((4, 2), {}), ((2, 3), {})],
    ),
}


@pytest.mark.parametrize("name", OPS)
def test_op_gradients_match_finite_differences(name):
    """Each differentiable op's backward equals central differences in float64 (full
    Jacobian; tolerance: module docstring)."""
    fn, specs = OPS[name]
    inputs = tuple(leaf(name, shape, **kwargs) for shape, kwargs in specs)
    assert mm.gradcheck(fn, inputs)


def test_gradcheck_projection_mode_on_a_large_input(monkeypatch):
    """Inputs with more than FULL_JACOBIAN_LIMIT elements are checked by random projections
    (not the full Jacobian), and a correct large op passes (reference: central differences
    of u.(J v), tolerance: module docstring)."""
    used = []
    real_projections = gradcheck_module._check_projections
    monkeypatch.setattr(
        gradcheck_module,
        "_check_full_jacobian",
        lambda *args: pytest.fail("the full Jacobian was built for a large input"),
    )
    monkeypatch.setattr(
        gradcheck_module,
        "_check_projections",
        lambda *args: used.append(True) or real_projections(*args),
    )
    x, w = leaf("large x", (20, 17)), leaf("large w", (17, 16))
    assert mm.gradcheck(lambda x, w: (x @ w).tanh().softmax(dim=1), (x, w))
    assert used


class WrongSquare(Function):
    """y = x**2 with a wrong backward: 3x instead of 2x."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_arrays
        return grad_out * 3 * x


class WrongSecondInput(Function):
    """y = a * b with the gradient of b wrong (g * b instead of g * a); a's is right."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad_out):
        a, b = ctx.saved_arrays
        return grad_out * b, grad_out * b


class NanBackward(Function):
    """y = 2x with a backward that returns NaN."""

    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out * np.nan


def test_gradcheck_fails_on_a_wrong_backward_naming_the_worst_entry():
    """A wrong backward (3x for d(x^2)/dx) fails with GradcheckError naming input 0 and the
    entry where |analytic - numerical| = |x| exceeds the tolerance most: the largest |x|
    (hand computation of the error, 3x - 2x)."""
    x = leaf("wrong square", (2, 3))
    worst = list(np.unravel_index(np.argmax(np.abs(x.numpy())), x.shape))
    flat = int(np.ravel_multi_index(worst, x.shape))
    expected = rf"d\(output element {flat}\) / d\(input 0\[{worst[0]}, {worst[1]}\]\)"
    with pytest.raises(GradcheckError, match=expected):
        mm.gradcheck(WrongSquare.apply, x)


def test_gradcheck_names_the_input_with_the_wrong_gradient():
    """With three inputs, the middle one not requiring grad, a wrong gradient for input 2
    is reported as input 2 (positions count every input), in both modes."""
    a, b = leaf("two inputs a", (2, 2)), leaf("two inputs b", (2, 2))
    unused = mm.ones(2, 2, dtype=mm.float64)

    def fn(a, unused, b):
        return WrongSecondInput.apply(a, b) + unused

    with pytest.raises(GradcheckError, match=r"d\(input 2\[\d+, \d+\]\)"):
        mm.gradcheck(fn, (a, unused, b))
    a, b = leaf("big a", (20, 20)), leaf("big b", (20, 20))
    unused = mm.ones(20, 20, dtype=mm.float64)
    with pytest.raises(GradcheckError, match="failed for input 2 on random projection"):
        mm.gradcheck(fn, (a, unused, b))


def test_gradcheck_fails_on_a_wrong_backward_in_projection_mode():
    """Random projections catch the 3x-instead-of-2x backward on a 30 x 30 input (the
    projected error is u.(x * v), nonzero for random u, v)."""
    with pytest.raises(GradcheckError, match="input 0 on random projection 0"):
        mm.gradcheck(WrongSquare.apply, leaf("big square", (30, 30)))


@pytest.mark.parametrize("shape", [(2, 3), (30, 30)], ids=["full Jacobian", "projections"])
def test_gradcheck_fails_on_a_nan_gradient(shape):
    """A backward that returns NaN fails (a NaN compares false with any tolerance, so the
    check must be written to reject it) in both modes."""
    with pytest.raises(GradcheckError, match="analytic nan"):
        mm.gradcheck(NanBackward.apply, leaf("nan", shape))


def test_gradcheck_refuses_float32_and_inputs_without_grad():
    """gradcheck needs float64 inputs (central differences in float32 are too coarse) and at
    least one input with requires_grad."""
    with pytest.raises(TypeError, match="input 0 is float32"):
        mm.gradcheck(lambda x: x * 2, mm.ones(2, requires_grad=True))
    with pytest.raises(ValueError, match="no input has requires_grad=True"):
        mm.gradcheck(lambda x: x * 2, mm.ones(2, dtype=mm.float64))
