"""The backward engine: accumulation, retain_graph, zero_grad, shared tensors, kinks and
ties (compared with torch at exactly those points), no_grad / detach / retain_grad, deep
graphs, and the engine's own shape/dtype check on a deliberately broken Function.

Where values are compared with torch or with a hand computation, they are small exact
binary fractions (0.5, 1.5, 2, ...), so float32 and float64 results are exact and compared
with ``==`` unless a test says otherwise.
"""

import numpy as np
import pytest
import torch

import minimask as mm
from minimask.autograd import Function


def both(values, dtype="float32"):
    """The same leaf (requires_grad) in minimask and torch."""
    array = np.array(values, dtype=dtype)
    return mm.tensor(array, requires_grad=True), torch.tensor(array, requires_grad=True)


def assert_equal_grads(mm_leaf, torch_leaf):
    np.testing.assert_array_equal(mm_leaf.grad.numpy(), torch_leaf.grad.numpy())


# ------------------------------------------------------------------ accumulation
def test_retain_graph_backward_twice_doubles_the_gradient():
    """backward(retain_graph=True) then backward() through y = sum(x * x): the second call
    adds again, grad = 2 * 2x, as torch (exact: small binary fractions)."""
    x, tx = both([0.5, -1.5, 2.0])
    for leaf in (x, tx):
        y = (leaf * leaf).sum()
        y.backward(retain_graph=True)
        y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, -6.0, 8.0])
    assert_equal_grads(x, tx)


def test_second_backward_without_retain_graph_raises_a_clear_error():
    """After backward() without retain_graph, the saved arrays are freed: a second
    backward through a Function that saved arrays raises and says what to do (torch raises
    too)."""
    x = mm.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(
        RuntimeError, match=r"backward through the graph a second time.*retain_graph=True"
    ):
        y.backward()
    tx = torch.tensor([1.0, 2.0], requires_grad=True)
    ty = (tx * tx).sum()
    ty.backward()
    with pytest.raises(RuntimeError, match="second time"):
        ty.backward()


def test_second_backward_through_functions_that_saved_nothing_adds_again_like_torch():
    """A graph of additions and sums saves no arrays: a second backward() without
    retain_graph runs and adds again in torch, and so in minimask (grad 2 per element)."""
    x, tx = both([1.0, 2.0])
    for leaf in (x, tx):
        y = (leaf + 1).sum()
        y.backward()
        y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])
    assert_equal_grads(x, tx)


def test_two_forward_backward_passes_accumulate():
    """Two separate forward + backward passes add into .grad (grad = 3 + 2x from y1 = 3x and
    y2 = x^2), as torch."""
    x, tx = both([1.0, -2.0])
    for leaf in (x, tx):
        (leaf * 3).sum().backward()
        (leaf**2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [5.0, -1.0])
    assert_equal_grads(x, tx)


def test_zero_grad_semantics_grad_none_then_fresh():
    """Before any backward .grad is None; setting it to None (what zero_grad does) makes the
    next backward start afresh instead of adding (hand computation: d(4x)/dx = 4)."""
    x = mm.tensor([1.0, 2.0], requires_grad=True)
    assert x.grad is None
    (x * 3).sum().backward()
    x.grad = None
    (x * 4).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 4.0])
    x.grad.zero_()
    (x * 1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0])


def test_grad_of_a_leaf_is_a_tensor_of_its_shape_and_dtype_without_graph():
    """.grad is a plain Tensor of the leaf's shape and dtype (float64 leaf stays float64),
    requires no grad, and does not share memory with a later backward's gradient."""
    x = mm.tensor(np.ones((2, 3)), requires_grad=True)
    (x * 2).sum().backward()
    first = x.grad
    assert first.shape == (2, 3) and first.dtype == mm.float64
    assert not first.requires_grad and first.grad_fn is None
    (x * 2).sum().backward()
    np.testing.assert_array_equal(first.numpy(), np.full((2, 3), 2.0))
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 3), 4.0))


# ------------------------------------------------------------------ shared tensors
def test_tensor_used_twice_gets_the_summed_gradient():
    """x * x: d/dx = 2x (both factors' gradients are added), as torch."""
    x, tx = both([0.5, 3.0, -2.0])
    for leaf in (x, tx):
        (leaf * leaf).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 6.0, -4.0])
    assert_equal_grads(x, tx)


def test_diamond_graph():
    """x -> a = 2x, b = x^2 -> y = a * b + a: dy/dx = 2b + a * 2x + 2 = 6x^2 + 2 (hand
    computation), equal to torch; also a deeper diamond with a reused intermediate."""
    x, tx = both([0.5, -1.0, 2.0])
    for leaf in (x, tx):
        a = leaf * 2
        b = leaf * leaf
        (a * b + a).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), 6 * np.array([0.5, -1.0, 2.0]) ** 2 + 2)
    assert_equal_grads(x, tx)
    x, tx = both([0.5, -1.0, 2.0])
    for leaf in (x, tx):
        h = leaf * 2
        left, right = h * h, h + 1
        (left * right + h).sum().backward()
    assert_equal_grads(x, tx)


def test_broadcast_operand_gradient_is_summed():
    """b of shape (3,) broadcast over a (2, 3) in a + b: db = column sums of the upstream
    gradient (hand computation), a gets it unchanged."""
    a = mm.zeros(2, 3, requires_grad=True)
    b = mm.zeros(3, requires_grad=True)
    g = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=np.float32)
    (a + b).backward(g)
    np.testing.assert_array_equal(b.grad.numpy(), [5.0, 7.0, 9.0])
    np.testing.assert_array_equal(a.grad.numpy(), g)


# ------------------------------------------------------------------ kinks and ties
def test_relu_and_abs_have_zero_derivative_at_zero():
    """relu'(0) = 0 and abs'(0) = 0, exactly at 0 (and -0.0), as torch; 1 / -1 around it."""
    values = [-1.0, -0.0, 0.0, 2.0]
    for name in ("relu", "abs"):
        x, tx = both(values)
        getattr(mm, name)(x).sum().backward()
        getattr(torch, name)(tx).sum().backward()
        assert_equal_grads(x, tx)
    x = mm.tensor(values, requires_grad=True)
    x.relu().sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 0.0, 1.0])


def test_clamp_at_its_bounds_passes_the_gradient():
    """clamp(-1, 1) at exactly -1 and 1 passes the gradient (the bounds are inside), as
    torch; outside it is 0."""
    x, tx = both([-2.0, -1.0, 0.0, 1.0, 2.0])
    x.clamp(-1.0, 1.0).sum().backward()
    tx.clamp(-1.0, 1.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 1.0, 1.0, 1.0, 0.0])
    assert_equal_grads(x, tx)


TIES = [[1.0, 3.0, 3.0, 0.5], [2.0, 2.0, 2.0, 2.0], [-1.0, 0.0, -1.0, 0.0]]


@pytest.mark.parametrize("name", ["amax", "amin"])
@pytest.mark.parametrize("dim", [None, 1, 0, (0, 1)])
def test_amax_amin_split_the_gradient_evenly_among_ties(name, dim):
    """amax/amin with ties: each tied element gets g / (number of ties), as torch (with
    g = [1, 2, 4] per row, the splits 1/2, 1/4, ... are exact in binary)."""
    x, tx = both(TIES)
    outs = [
        getattr(leaf, name)() if dim is None else getattr(leaf, name)(dim=dim) for leaf in (x, tx)
    ]
    g = np.arange(1, outs[1].numel() + 1, dtype=np.float32).reshape(tuple(outs[1].shape))
    outs[0].backward(mm.tensor(g))
    outs[1].backward(torch.tensor(g))
    assert_equal_grads(x, tx)


@pytest.mark.parametrize("name", ["max", "min"])
def test_full_max_min_split_evenly_among_ties(name):
    """max() / min() over all elements: the gradient is split evenly among the tied
    extremes (0.5 to each of the two 3.0s), as torch."""
    x, tx = both(TIES)
    getattr(x, name)().backward()
    getattr(tx, name)().backward()
    assert_equal_grads(x, tx)
    if name == "max":
        expected = np.zeros((3, 4), dtype=np.float32)
        expected[0, 1:3] = 0.5
        np.testing.assert_array_equal(x.grad.numpy(), expected)


@pytest.mark.parametrize("name", ["max", "min"])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min_along_a_dim_send_the_gradient_to_the_first_index(name, keepdim):
    """max(dim)/min(dim) with ties: the index is the first extreme, and the whole gradient
    goes to it, as torch (indices compared exactly)."""
    x, tx = both(TIES)
    values, indices = getattr(x, name)(1, keepdim=keepdim)
    tvalues, tindices = getattr(tx, name)(1, keepdim=keepdim)
    np.testing.assert_array_equal(indices.numpy(), tindices.numpy())
    values.backward(np.ones(values.shape, dtype=np.float32))
    tvalues.backward(torch.ones(tvalues.shape))
    assert_equal_grads(x, tx)
    first = np.zeros((3, 4), dtype=np.float32)
    first[np.arange(3), indices.numpy().reshape(-1)] = 1
    np.testing.assert_array_equal(x.grad.numpy(), first)
    assert indices.numpy().reshape(-1).tolist() == ([1, 0, 1] if name == "max" else [3, 0, 0])


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum_split_half_and_half_at_a_tie(name):
    """maximum/minimum at a == b give 1/2 of the gradient to each input, as torch; with b
    broadcast, b's halves are summed."""
    a, ta = both([[1.0, 2.0, 3.0], [2.0, 0.0, 2.0]])
    b, tb = both([2.0, 2.0, 2.0])
    getattr(mm, name)(a, b).sum().backward()
    getattr(torch, name)(ta, tb).sum().backward()
    assert_equal_grads(a, ta)
    assert_equal_grads(b, tb)
    expected_a = (
        [[0.0, 0.5, 1.0], [0.5, 0.0, 0.5]]
        if name == "maximum"
        else [[1.0, 0.5, 0.0], [0.5, 1.0, 0.5]]
    )
    np.testing.assert_array_equal(a.grad.numpy(), expected_a)


def test_sort_and_topk_ties_keep_the_original_order():
    """Equal values keep their original order in sort and topk, in both directions
    (the documented rule; torch's stable sort agrees), and the gradient follows the indices."""
    values = [2.0, 1.0, 2.0, 1.0, 3.0]
    x, tx = both(values)
    for descending in (False, True):
        out = x.sort(descending=descending)
        tout = tx.sort(descending=descending, stable=True)
        np.testing.assert_array_equal(out.indices.numpy(), tout.indices.numpy())
    assert x.topk(3).indices.tolist() == [4, 0, 2]
    assert x.topk(3, largest=False).indices.tolist() == [1, 3, 0]
    x.topk(2).values.backward(np.array([10.0, 20.0], dtype=np.float32))
    np.testing.assert_array_equal(x.grad.numpy(), [20.0, 0.0, 0.0, 0.0, 10.0])


def test_pow_derivative_at_zero_base_and_zero_exponent():
    """d/dx x**0 = 0 (also at x = 0, where 0 * 0**-1 would be NaN) and d/db 0**b = 0 for
    b > 0, as torch."""
    x, tx = both([0.0, 2.0])
    (x**0).sum().backward()
    (tx**0).sum().backward()
    assert_equal_grads(x, tx)
    b, tb = both([0.0, 1.5, 2.0])
    base, tbase = mm.zeros(3), torch.zeros(3)
    (base**b).sum().backward()
    (tbase**tb).sum().backward()
    assert_equal_grads(b, tb)


# ------------------------------------------------------------------ graph recording
def test_no_grad_results_do_not_require_grad():
    """Inside no_grad() results have requires_grad False and no grad_fn; recording resumes
    after the block; enable_grad() inside no_grad() records again."""
    x = mm.ones(3, requires_grad=True)
    with mm.no_grad():
        y = x * 2
        assert not mm.is_grad_enabled()
        with mm.enable_grad():
            z = x * 2
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad and z.grad_fn is not None
    assert mm.is_grad_enabled()
    assert (x * 2).requires_grad


def test_no_grad_as_a_decorator_restores_recording_after_recursion():
    """A no_grad-decorated function that calls itself (the same context object entered
    twice) leaves recording on when the outer call returns."""

    @mm.no_grad()
    def depth(n):
        return depth(n - 1) if n else mm.is_grad_enabled()

    assert depth(3) is False
    assert mm.is_grad_enabled()
    context = mm.no_grad()
    with context:
        with context:
            pass
        assert not mm.is_grad_enabled()
    assert mm.is_grad_enabled()


def test_detach_cuts_the_graph_and_shares_memory():
    """detach() gives a tensor without grad that shares data; gradient does not flow
    through it (y = x * x.detach(): dy/dx = x, hand computation)."""
    x = mm.tensor([1.0, 3.0], requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.grad_fn is None
    assert np.shares_memory(d.data, x.data)
    (x * x.detach()).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 3.0])


@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf")
def test_retain_grad_on_a_non_leaf():
    """A non-leaf keeps .grad only after retain_grad() (h = 2x, y = sum(h^2): dy/dh = 2h,
    hand computation), as torch; the leaf's gradient is unaffected."""
    x, tx = both([1.0, -0.5])
    hs = []
    for leaf in (x, tx):
        h = leaf * 2
        h.retain_grad()
        other = leaf * 3
        (h * h + other).sum().backward()
        hs.append((h, other))
    (h, other), (th, tother) = hs
    np.testing.assert_array_equal(h.grad.numpy(), [4.0, -2.0])
    np.testing.assert_array_equal(h.grad.numpy(), th.grad.numpy())
    assert other.grad is None and tother.grad is None
    assert_equal_grads(x, tx)


def test_backward_from_a_leaf_and_non_scalar_with_grad():
    """backward() on a scalar leaf sets its grad to 1; a non-scalar output accepts an
    explicit grad of its shape (as a Tensor, a NumPy array or nested lists)."""
    x = mm.tensor(2.0, requires_grad=True)
    x.backward()
    assert x.grad.item() == 1.0
    y = mm.ones(2, 2, requires_grad=True)
    (y * 3).backward([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(y.grad.numpy(), [[3.0, 6.0], [9.0, 12.0]])


def test_deep_chain_does_not_hit_the_recursion_limit():
    """5000 chained ops: backward runs without RecursionError and gives d/dx of
    x * 1.0001^5000 + 5000 * 0.5 (hand computation: 1.0001^5000, float64 within 1e-12)."""
    x = mm.tensor(1.0, dtype=mm.float64, requires_grad=True)
    y = x
    for i in range(5000):
        y = y * 1.0001 if i % 2 == 0 else y + 1.0
    y = y * 1.0
    y.backward()
    np.testing.assert_allclose(x.grad.item(), 1.0001**2500, rtol=1e-12)


def test_gradients_do_not_flow_into_tensors_without_requires_grad():
    """Only leaves with requires_grad receive .grad; constants stay None."""
    x = mm.ones(2, requires_grad=True)
    c = mm.ones(2)
    (x * c + c).sum().backward()
    assert c.grad is None
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0])


# ------------------------------------------------------------------ broken Functions
class WrongShape(Function):
    """y = 2x whose backward returns a gradient of the wrong shape (one element short)."""

    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, grad_out):
        return 2 * grad_out[..., :-1]


class WrongRank(Function):
    """y = 2x whose backward drops a dimension."""

    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, grad_out):
        return 2 * grad_out[..., 0]


class WrongDtype(Function):
    """y = 2x whose backward returns float64 for a float32 input."""

    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, grad_out):
        return (2 * grad_out).astype(np.float64)


class TooManyGradients(Function):
    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out, grad_out


@pytest.mark.parametrize(
    "function, message",
    [
        (
            WrongShape,
            r"WrongShape.backward: gradient of input 0 has shape \(3, 1\) .*"
            r"input has shape \(3, 2\)",
        ),
        (
            WrongRank,
            r"WrongRank.backward: gradient of input 0 has shape \(3,\) .* input has shape \(3, 1\)",
        ),
        (WrongDtype, r"WrongDtype.backward: .* dtype float64, but the input has .* dtype float32"),
        (TooManyGradients, r"TooManyGradients.backward returned 2 gradients for 1 inputs"),
    ],
)
def test_engine_rejects_a_backward_with_a_wrong_gradient(function, message):
    """The engine's shape/dtype/count check fires for deliberately broken Functions and
    names the Function, the input, and both shapes or dtypes."""
    shape = (3, 1) if function is WrongRank else (3, 2)
    x = mm.ones(*shape, requires_grad=True)
    with pytest.raises(RuntimeError, match=message):
        function.apply(x).sum().backward()
