"""Bad input: each mistake raises an error whose message names the problem (the shapes,
the dim and its valid range, the index and the tensor's shape, ...). Reference: the
message text itself (pytest.raises(match=...)); where PyTorch raises for the same input,
so must minimask.
"""

import numpy as np
import pytest

import minimask as mm
from minimask.autograd import Function


def x23():
    return mm.ones(2, 3)


# ------------------------------------------------------------------ shapes
@pytest.mark.parametrize(
    "a_shape, b_shape, message",
    [
        (
            (2, 3),
            (4, 5),
            r"matmul: shapes \(2, 3\) and \(4, 5\) cannot be multiplied "
            r"\(3 columns against 4 rows\)",
        ),
        ((3,), (4,), r"matmul: shapes \(3,\) and \(4,\) cannot be multiplied"),
        ((2, 3), (2,), r"matmul: shapes \(2, 3\) and \(2,\) cannot be multiplied"),
        (
            (2, 3, 4),
            (3, 4, 5),
            r"matmul: shapes \(2, 3, 4\) and \(3, 4, 5\): "
            r"batch dims \(2,\) and \(3,\) do not broadcast",
        ),
        ((), (3,), r"matmul: both operands need at least 1 dim, got shapes \(\) and \(3,\)"),
    ],
)
def test_matmul_shape_mismatch_names_both_shapes(a_shape, b_shape, message):
    """matmul of incompatible shapes: the message names both shapes as the user gave them."""
    with pytest.raises(RuntimeError, match=message):
        mm.ones(a_shape) @ mm.ones(b_shape)


@pytest.mark.parametrize(
    "name, op",
    [
        ("add", lambda a, b: a + b),
        ("sub", lambda a, b: a - b),
        ("mul", lambda a, b: a * b),
        ("div", lambda a, b: a / b),
        ("pow", lambda a, b: a**b),
        ("maximum", mm.maximum),
        ("minimum", mm.minimum),
        ("lt", lambda a, b: a < b),
        ("eq", lambda a, b: a == b),
        ("logical_and", lambda a, b: (a > 0) & (b > 0)),
    ],
)
def test_broadcasting_mismatch_names_the_op_and_both_shapes(name, op):
    """(2, 3) against (4,): the message names the operation and both shapes (not NumPy's
    'operands could not be broadcast')."""
    with pytest.raises(RuntimeError, match=rf"{name}: shapes \(2, 3\) and \(4,\) do not broadcast"):
        op(x23(), mm.ones(4))


def test_where_broadcasting_mismatch_names_all_three_shapes():
    """where(condition, a, b) whose condition does not broadcast names all three shapes."""
    condition = mm.tensor([True, False, True, True])
    with pytest.raises(RuntimeError, match=r"where: shapes \(4,\) and \(2, 3\) and \(2, 3\)"):
        mm.where(condition, x23(), x23())


def test_cat_and_stack_mismatched_shapes():
    """cat of tensors that differ outside dim, or in ndim, names both shapes and the dim;
    stack needs equal shapes; cat of 0-d tensors and of nothing are refused."""
    with pytest.raises(
        RuntimeError, match=r"cat: tensor 1 has shape \(3, 3\).*shape \(2, 3\) outside dim 1"
    ):
        mm.cat([x23(), mm.ones(3, 3)], dim=1)
    with pytest.raises(RuntimeError, match=r"cat: tensor 1 has shape \(6,\)"):
        mm.cat([x23(), mm.ones(6)])
    with pytest.raises(
        RuntimeError, match=r"stack: tensor 1 has shape \(3, 2\), tensor 0 has \(2, 3\)"
    ):
        mm.stack([x23(), mm.ones(3, 2)])
    with pytest.raises(RuntimeError, match="cat: tensor 0 is 0-d"):
        mm.cat([mm.tensor(1.0), mm.tensor(2.0)])
    with pytest.raises(ValueError, match="cat: expected a non-empty list"):
        mm.cat([])
    with pytest.raises(ValueError, match="stack: expected a non-empty list"):
        mm.stack([])


@pytest.mark.parametrize(
    "shape, message",
    [
        ((4, 2), r"shape \(4, 2\) is invalid for a tensor of shape \(2, 3\) \(6 elements\)"),
        ((-1, 4), r"shape \(-1, 4\) is invalid"),
        ((-1, -1), r"shape \(-1, -1\) is invalid"),
        ((-2, -3), r"shape \(-2, -3\) is invalid"),
        ((0, -1), r"shape \(0, -1\) is invalid"),
    ],
)
def test_reshape_to_an_incompatible_shape(shape, message):
    """reshape/view to a shape with another number of elements, two -1s, or negative sizes
    names the target shape and the tensor's shape (torch refuses each of these)."""
    with pytest.raises(RuntimeError, match=message):
        x23().reshape(*shape)
    with pytest.raises(RuntimeError, match=message):
        x23().view(shape)


def test_expand_to_an_incompatible_shape():
    """expand: a non-1 dim cannot change, too few sizes, -1 for a new leading dim."""
    with pytest.raises(RuntimeError, match=r"cannot expand shape \(2, 3\) to \(4, 3\)"):
        x23().expand(4, 3)
    with pytest.raises(RuntimeError, match=r"expand: 1 sizes for a 2-d tensor \(2, 3\)"):
        x23().expand(3)
    with pytest.raises(RuntimeError, match=r"-1 .* not allowed for a new leading dim"):
        mm.ones(3).expand(-1, 3)


# ------------------------------------------------------------------ backward
def test_backward_on_a_non_scalar_without_grad():
    """backward() without grad on a tensor with more than one element says it needs a
    scalar or an explicit grad of its shape."""
    y = mm.ones(2, 3, requires_grad=True) * 2
    with pytest.raises(
        RuntimeError, match=r"single-element \(scalar\) output, got shape \(2, 3\); pass grad="
    ):
        y.backward()


def test_backward_with_a_grad_of_the_wrong_shape():
    """An explicit grad of another shape names both shapes."""
    y = mm.ones(2, 3, requires_grad=True) * 2
    with pytest.raises(
        RuntimeError, match=r"grad has shape \(3, 2\), but the tensor has shape \(2, 3\)"
    ):
        y.backward(np.ones((3, 2)))


def test_backward_on_a_tensor_without_grad():
    """backward() where nothing requires grad says so."""
    with pytest.raises(RuntimeError, match="does not require grad"):
        mm.ones(2).sum().backward()


def test_requires_grad_on_an_integer_tensor():
    """Only floating point tensors can require gradients: tensor(), factories and
    requires_grad_() refuse integer and bool tensors, naming the dtype."""
    with pytest.raises(
        RuntimeError, match="only floating point tensors can require gradients, this one is int64"
    ):
        mm.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError, match="this one is int32"):
        mm.zeros(2, dtype=mm.int32, requires_grad=True)
    with pytest.raises(RuntimeError, match="this one is bool"):
        mm.tensor([True]).requires_grad_()


def test_requires_grad_off_on_a_non_leaf():
    """A computed tensor cannot be made to stop requiring grad; the message points to
    detach()."""
    y = mm.ones(2, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=r"only be turned off on a leaf.*detach\(\)"):
        y.requires_grad = False


def test_function_inputs_must_be_tensors():
    """Function.apply names the Function and the position of a non-Tensor input."""

    class Double(Function):
        @staticmethod
        def forward(ctx, x):
            return 2 * x

    with pytest.raises(TypeError, match="Double: input 0 must be a Tensor, got list"):
        Double.apply([1.0, 2.0])


# ------------------------------------------------------------------ indices and dims
@pytest.mark.parametrize(
    "index, message",
    [
        (5, r"index 5 is out of bounds for axis 0 with size 2"),
        ((slice(None), -4), r"index -4 is out of bounds for axis 1 with size 3"),
        ([0, 9], r"index 9 is out of bounds"),
        ((0, 0, 0), r"too many indices"),
        (mm.tensor([True, False, True]), r"boolean index did not match"),
        (1.5, r"only integers, slices"),
    ],
)
def test_index_out_of_range_names_the_shape(index, message):
    """An invalid index raises IndexError naming the tensor's shape and what is wrong."""
    with pytest.raises(
        IndexError, match=rf"invalid index for a tensor of shape \(2, 3\): {message}"
    ):
        x23()[index]


def test_float_index_tensor_is_refused():
    """A float tensor cannot index (torch refuses it too)."""
    with pytest.raises(IndexError, match="indices must be integer or bool, got float32"):
        x23()[mm.tensor([0.0, 1.0])]


@pytest.mark.parametrize(
    "op, message",
    [
        (lambda x: x.sum(dim=2), r"dim 2 is out of range \[-2, 1\] for a 2-d tensor"),
        (lambda x: x.mean(dim=(0, -3)), r"dim -3 is out of range \[-2, 1\]"),
        (lambda x: x.amax(dim=(1, -1)), r"dim \(1, -1\) names a dimension twice"),
        (lambda x: x.sum(dim=()), r"dim=\(\) is ambiguous .* pass dim=None"),
        (lambda x: x.max(dim=-3), r"dim -3 is out of range"),
        (lambda x: x.argmax(dim=2), r"dim 2 is out of range"),
        (lambda x: x.softmax(dim=2), r"dim 2 is out of range"),
        (lambda x: mm.log_softmax(x, dim=-3), r"dim -3 is out of range"),
        (lambda x: x.transpose(0, 2), r"dim 2 is out of range"),
        (lambda x: x.permute(0, 0), r"dims \(0, 0\) are not a permutation of a 2-d tensor's dims"),
        (lambda x: x.permute(1), r"dims \(1,\) are not a permutation"),
        (lambda x: x.squeeze(2), r"dim 2 is out of range"),
        (lambda x: x.unsqueeze(3), r"dim 3 is out of range \[-3, 2\] for a 3-d tensor"),
        (lambda x: x.flatten(1, 0), r"flatten: start_dim 1 comes after end_dim 0"),
        (lambda x: mm.cat([x, x], dim=2), r"dim 2 is out of range"),
        (lambda x: mm.stack([x, x], dim=-4), r"dim -4 is out of range \[-3, 2\]"),
        (lambda x: x.sort(dim=5), r"dim 5 is out of range"),
        (lambda x: x.topk(1, dim=2), r"dim 2 is out of range"),
        (lambda x: x.gather(2, mm.zeros(2, 3, dtype=mm.int64)), r"dim 2 is out of range"),
    ],
)
def test_invalid_dim_names_the_dim_and_the_valid_range(op, message):
    """Every op with a dim argument rejects an out-of-range (or repeated, or empty) dim,
    naming it and the valid range."""
    with pytest.raises((IndexError, RuntimeError, ValueError), match=message):
        op(x23())


def test_reductions_of_empty_tensors():
    """max/argmax/amax over an empty dim have no value to give: the message names the
    shape (torch raises too)."""
    empty = mm.ones(0, 3)
    with pytest.raises(RuntimeError, match=r"amax of an empty tensor \(0, 3\)"):
        empty.amax()
    with pytest.raises(RuntimeError, match=r"argmax of an empty tensor \(0, 3\) \(along dim 0\)"):
        empty.max(dim=0)
    with pytest.raises(RuntimeError, match=r"argmin of an empty tensor"):
        empty.argmin()


def test_gather_bad_index():
    """gather refuses a float index, an index with another ndim, one larger than the input
    outside dim, and index values out of [0, size) -- negative ones included (NumPy would
    count them from the end; torch refuses them)."""
    x = x23()
    with pytest.raises(TypeError, match="gather: index must be an integer tensor, got float32"):
        x.gather(1, mm.zeros(2, 1))
    with pytest.raises(RuntimeError, match="gather: index has 1 dims, input has 2"):
        x.gather(1, mm.tensor([0]))
    with pytest.raises(
        RuntimeError, match=r"index of shape \(3, 1\) is larger than the input \(2, 3\) in dim 0"
    ):
        x.gather(1, mm.zeros(3, 1, dtype=mm.int64))
    with pytest.raises(IndexError, match=r"index values must lie in \[0, 3\) .* from 0 to 3"):
        x.gather(1, mm.tensor([[0], [3]]))
    with pytest.raises(IndexError, match=r"index values must lie in \[0, 3\) .* from -1 to 0"):
        x.gather(1, mm.tensor([[0], [-1]]))


def test_topk_k_out_of_range():
    """topk with k larger than the dim names k and the dim's size."""
    with pytest.raises(RuntimeError, match=r"topk: k=4 is out of range for dim 1 of size 3"):
        x23().topk(4)


# ------------------------------------------------------------------ other arguments
def test_other_bad_arguments():
    """clamp without bounds or with tensor bounds, where with a non-bool condition, mean of
    an integer tensor: each message names the problem."""
    with pytest.raises(ValueError, match="at least one of min and max"):
        x23().clamp()
    with pytest.raises(TypeError, match="min and max must be numbers.*maximum"):
        x23().clamp(min=mm.tensor(0.5))
    with pytest.raises(TypeError, match="condition must be a bool tensor, got float32"):
        mm.where(mm.ones(3), mm.ones(3), mm.zeros(3))
    with pytest.raises(TypeError, match="mean needs a floating point tensor, got int64"):
        mm.tensor([1, 2]).mean()


def test_single_element_conversions_of_larger_tensors():
    """item() and bool() need one element, len() needs a dim, iteration needs a dim: each
    says so (iterating a 0-d tensor must not quietly yield nothing)."""
    with pytest.raises(
        ValueError, match=r"item\(\) needs a single-element tensor, got shape \(2, 3\)"
    ):
        x23().item()
    with pytest.raises(RuntimeError, match="truth value of a tensor with 6 elements is ambiguous"):
        bool(x23())
    with pytest.raises(TypeError, match="len"):
        len(mm.tensor(1.0))
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        list(mm.tensor(1.0))


def test_unknown_device_and_dtype():
    """An unknown device or dtype name is refused, with the name in the message."""
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        mm.zeros(2, device="tpu")
    with pytest.raises(TypeError, match="not a dtype: 'float99'"):
        x23().to("float99")
    with pytest.raises(TypeError, match="cannot make a tensor from str"):
        mm.tensor("abc")
