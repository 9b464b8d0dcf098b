"""The Tensor API outside autograd: factories and their dtype inference, the random seed,
conversions, repr / len / bool / iteration, in-place assignment.

Reference: torch (dtype inference, factory results, conversions, promotion of Python
numbers: compared exactly, all values are exact in binary) or the stated hand value.
"""

import numpy as np
import pytest
import torch

import minimask as mm


def torch_dtype_name(t):
    return str(t.dtype).removeprefix("torch.")


# ------------------------------------------------------------------ factories
@pytest.mark.parametrize(
    "data",
    [
        1.5,
        3,
        True,
        [1, 2],
        [1, 2.5],
        [[True, False]],
        [[1.0, 2.0], [3.0, 4.0]],
        np.array([1.0, 2.0]),
        np.array([1, 2], dtype=np.int32),
        np.array([1, 2], dtype=np.uint8),
        np.array([1.0], dtype=np.float16),
        np.float64(2.5),
        np.int32(7),
    ],
    ids=repr,
)
def test_tensor_dtype_inference_like_torch(data):
    """tensor(data) infers the dtype as torch.tensor does (Python floats -> float32, ints ->
    int64, bools -> bool, NumPy arrays and scalars keep theirs) and holds the same values."""
    ours, theirs = mm.tensor(data), torch.tensor(data)
    assert str(ours.dtype) == torch_dtype_name(theirs)
    assert ours.shape == tuple(theirs.shape)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_tensor_copies_its_data():
    """tensor() copies: changing the source array afterwards does not change the tensor,
    also for a Tensor source; an explicit dtype converts."""
    source = np.array([1.0, 2.0])
    t = mm.tensor(source)
    source[0] = 100.0
    assert t.tolist() == [1.0, 2.0]
    u = mm.tensor(t, dtype=mm.float32)
    t[1] = 50.0
    assert u.tolist() == [1.0, 2.0] and u.dtype == mm.float32


@pytest.mark.parametrize(
    "make",
    [
        lambda lib: lib.zeros(2, 3),
        lambda lib: lib.zeros((2, 3)),
        lambda lib: lib.ones(4, dtype=lib.float64),
        lambda lib: lib.ones([1, 2], dtype=lib.int64),
        lambda lib: lib.full((2, 2), 7),
        lambda lib: lib.full((3,), 1.5),
        lambda lib: lib.full((2,), True),
        lambda lib: lib.full([2, 1], 2, dtype=lib.float64),
        lambda lib: lib.arange(5),
        lambda lib: lib.arange(2, 9, 3),
        lambda lib: lib.arange(0, 1, 0.25),
        lambda lib: lib.arange(1.5),
        lambda lib: lib.arange(4, dtype=lib.float64),
        lambda lib: lib.zeros_like(lib.ones(2, 3, dtype=lib.float64)),
        lambda lib: lib.ones_like(lib.arange(3)),
        lambda lib: lib.ones_like(lib.zeros(2), dtype=lib.int32),
        lambda lib: lib.zeros(0, 3),
    ],
)
def test_factories_match_torch(make):
    """zeros / ones / full / arange / *_like give torch's shape, dtype and values."""
    ours, theirs = make(mm), make(torch)
    assert str(ours.dtype) == torch_dtype_name(theirs)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert ours.shape == tuple(theirs.shape)


def test_factories_requires_grad():
    """requires_grad=True makes a leaf that requires grad, for every float factory."""
    for t in (
        mm.zeros(2, requires_grad=True),
        mm.ones(2, requires_grad=True),
        mm.full((2,), 1.5, requires_grad=True),
        mm.randn(2, requires_grad=True),
        mm.rand(2, requires_grad=True),
        mm.zeros_like(mm.ones(2), requires_grad=True),
        mm.tensor([1.0], requires_grad=True),
    ):
        assert t.requires_grad and t.is_leaf and t.grad is None


def test_random_factories_dtype_shape_and_range():
    """randn / rand are float32 by default, float64 on request, of the given shape; rand
    lies in [0, 1); randn over 20000 draws has mean within 0.03 of 0 and std within 0.03
    of 1 (about 4 standard errors)."""
    assert mm.randn(2, 3).dtype == mm.float32 and mm.randn(2, 3).shape == (2, 3)
    assert mm.rand((4,), dtype=mm.float64).dtype == mm.float64
    u = mm.rand(20000).numpy()
    assert u.min() >= 0 and u.max() < 1
    z = mm.randn(20000, dtype=mm.float64).numpy()
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1) < 0.03


def test_manual_seed_reproducibility():
    """The same seed gives the same randn/rand draws (in order); another seed others."""
    mm.manual_seed(123)
    first = (mm.randn(3, 2).numpy(), mm.rand(4).numpy())
    mm.manual_seed(123)
    again = (mm.randn(3, 2).numpy(), mm.rand(4).numpy())
    mm.manual_seed(124)
    other = mm.randn(3, 2).numpy()
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other)
    assert not np.array_equal(first[0], mm.randn(3, 2).numpy())


# ------------------------------------------------------------------ conversions
def test_item_numpy_tolist():
    """item() gives a Python number; numpy() a copy (writing to it leaves the tensor alone);
    tolist() nested lists, as torch."""
    t = mm.tensor([[1.5, 2.0], [3.0, 4.0]])
    assert mm.tensor([2.5]).item() == 2.5 and isinstance(mm.tensor([2.5]).item(), float)
    assert isinstance(mm.tensor(3).item(), int)
    array = t.numpy()
    array[0, 0] = 100.0
    assert t.tolist() == [[1.5, 2.0], [3.0, 4.0]] == torch.tensor(t.numpy()).tolist()
    assert isinstance(t.numpy(), np.ndarray) and t.numpy().dtype == np.float32


@pytest.mark.parametrize(
    "convert",
    [
        lambda t, lib: t.float(),
        lambda t, lib: t.double(),
        lambda t, lib: t.long(),
        lambda t, lib: t.int(),
        lambda t, lib: t.bool(),
        lambda t, lib: t.to(lib.float64),
        lambda t, lib: t.to(lib.int64),
        lambda t, lib: t.to("cpu"),
        lambda t, lib: t.to("cpu", lib.float64),
        lambda t, lib: t.cpu(),
    ],
)
def test_dtype_conversions_like_torch(convert):
    """.float() .double() .long() .int() .bool() .to(dtype) .to(device[, dtype]) give
    torch's dtypes and values (floats truncated toward zero in integer casts)."""
    values = np.array([-2.75, -0.5, 0.0, 1.5, 3.25], dtype=np.float32)
    ours, theirs = convert(mm.tensor(values), mm), convert(torch.tensor(values), torch)
    assert str(ours.dtype) == torch_dtype_name(theirs)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_to_the_same_dtype_and_device_returns_the_tensor_itself():
    """.to() with nothing to change returns the same object, as torch."""
    t = mm.ones(2)
    assert t.to(mm.float32) is t and t.to("cpu") is t and t.float() is t


@pytest.mark.parametrize(
    "op",
    [
        lambda lib: lib.tensor([1, 2]) + 2.5,
        lambda lib: lib.tensor([1, 2]) * 2,
        lambda lib: lib.tensor([True, False]) + 1,
        lambda lib: lib.tensor([1, 2]) / lib.tensor([2, 4]),
        lambda lib: lib.tensor([1, 2]) / 2,
        lambda lib: lib.tensor([1.0, 2.0]) * 2,
        lambda lib: lib.tensor([1.0, 2.0], dtype=lib.float64) * 2.5,
        lambda lib: lib.tensor([1.0, 2.0]) + lib.tensor([1.0], dtype=lib.float64),
        lambda lib: lib.tensor([1.0, 2.0], dtype=lib.float16) + 1.5,
        lambda lib: lib.tensor([1, 2], dtype=lib.int32) + lib.tensor([1, 2]),
        lambda lib: lib.tensor([1, 2]) + lib.tensor([0.5]),
        lambda lib: 2 ** lib.tensor([1, 2]),
    ],
)
def test_result_dtypes_of_mixed_operands_like_torch(op):
    """Python numbers take the tensor's dtype (a float beside an integer tensor gives
    float32), mixed tensors promote (float32 + float64 -> float64, int + float ->
    float), true division of integers gives float32: as torch, values exact."""
    ours, theirs = op(mm), op(torch)
    assert str(ours.dtype) == torch_dtype_name(theirs)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_numpy_array_on_the_left_defers_to_the_tensor():
    """ndarray + tensor, ndarray * tensor and ndarray @ tensor give Tensors (NumPy defers
    to Tensor's reflected methods), with the values of the NumPy computation."""
    a = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    t = mm.tensor([[0.5, 1.0], [1.5, 2.0]])
    for result, expected in (
        (a + t, a + t.numpy()),
        (a * t, a * t.numpy()),
        (a @ t, a @ t.numpy()),
    ):
        assert isinstance(result, mm.Tensor)
        np.testing.assert_array_equal(result.numpy(), expected)


# ------------------------------------------------------------------ Python protocols
def test_repr():
    """repr shows the values, the dtype, and requires_grad or the grad_fn (torch's layout,
    with the dtype always shown)."""
    assert repr(mm.tensor([1.0, 2.5])) == "tensor([1. , 2.5], dtype=float32)"
    assert repr(mm.tensor([1.0], requires_grad=True)) == (
        "tensor([1.], dtype=float32, requires_grad=True)"
    )
    y = mm.tensor([1.0], requires_grad=True) * 2
    assert repr(y) == "tensor([2.], dtype=float32, grad_fn=<Mul>)"
    assert repr(mm.tensor([[1, 2], [3, 4]])) == "tensor([[1, 2],\n        [3, 4]], dtype=int64)"


def test_len_bool_iteration_and_sizes():
    """len is the size of dim 0; bool of a one-element tensor is its truth value; iterating
    gives the rows; size()/dim()/numel()/shape/ndim/T as torch."""
    t = mm.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    tt = torch.tensor(t.numpy())
    assert len(t) == 2
    assert bool(mm.tensor([0.5])) is True and bool(mm.tensor(0.0)) is False
    assert [row.tolist() for row in t] == [row.tolist() for row in tt]
    assert t.size() == tuple(tt.size()) and t.size(1) == 3 and t.size(-1) == 3
    assert t.dim() == 2 and t.ndim == 2 and t.numel() == 6 and mm.tensor(1.0).numel() == 1
    assert t.T.tolist() == tt.T.tolist()
    assert t.contiguous() is t


def test_tensors_hash_by_identity():
    """Tensors can be dict keys and set members (== is elementwise, hashing by identity)."""
    a, b = mm.ones(2), mm.ones(2)
    assert len({a: 1, b: 2}) == 2 and a in {a}


def test_results_of_0d_operations_hold_arrays():
    """A 0-d result (of a reduction, of 0-d arithmetic, of an int index) holds a 0-d NumPy
    array, not a NumPy scalar, so it can be written in place like any tensor."""
    x = mm.tensor([1.0, 2.0])
    for t in (x.sum(), x[0], mm.tensor(2.0) * 3, x.max(), x.argmax()):
        assert isinstance(t.data, np.ndarray) and t.shape == ()
    s = x.sum()
    s.zero_()
    s[...] = 5.0
    assert s.item() == 5.0


# ------------------------------------------------------------------ in-place assignment
def test_setitem_on_tensors_without_grad():
    """t[index] = value writes in place for ints, slices, bool masks, index tensors, and
    Tensor or number values, as torch."""
    ours = mm.zeros(3, 4)
    theirs = torch.zeros(3, 4)
    for t, lib in ((ours, mm), (theirs, torch)):
        t[0] = 1.0
        t[1, 1:3] = lib.tensor([2.0, 3.0])
        t[t == 0] = -1.0
        t[lib.tensor([2, 2]), lib.tensor([0, 3])] = 7.0
        t[..., -1] = t[..., 0] * 2
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_setitem_on_a_tensor_that_requires_grad_is_refused():
    """In-place assignment to a tensor that requires grad raises and suggests an
    alternative; the data is unchanged."""
    w = mm.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place assignment to a tensor that requires grad"):
        w[0] = 5.0
    with pytest.raises(RuntimeError, match="minimask.where"):
        (w * 2)[1] = 0.0
    assert w.tolist() == [1.0, 1.0, 1.0]


def test_zero_():
    """zero_() sets every element to 0 in place and returns the tensor."""
    t = mm.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert t.zero_() is t
    assert t.tolist() == [[0.0, 0.0], [0.0, 0.0]]
