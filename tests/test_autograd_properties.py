"""Property tests (hypothesis) of the autograd ops, with references computed by hand in
plain NumPy, independently of minimask's implementation.

* Ops that only move elements (reshape, permute, transpose, flatten, squeeze, unsqueeze,
  expand, indexing of every kind, gather, cat, stack, sort, topk, max along a dim): the
  same op is applied in NumPy to an array of *element ids* of the leaf. Then
  ``out == leaf.ravel()[ids]`` and, for an upstream gradient w, ``leaf.grad`` must equal
  ``bincount(ids, weights=w)``: each element receives the sum of the gradients of the
  places it was copied to. With small-integer weights every sum is exact, so both are
  compared with ``==``.
* Broadcasting binary ops: the partial derivatives at every output position (1, -1, b,
  1/b, the max/min and where selectors, written by hand) are scattered back to each
  operand with the same element-id bincount, which is what un-broadcasting must do.
* Reductions, ties, sorting, softmax, elementwise derivatives, matmul and comparisons
  against the NumPy formula (exact where only selections are involved, else within
  1e-12 relative in float64 and 1e-5 in float32; see test_autograd_ops_vs_torch.py).

Operands are made from leaves by a drawn *layout* (contiguous, permuted, strided slice),
so every property is also checked on non-contiguous inputs; the ids of the operand are
obtained by applying the same layout to the leaf's ids.
"""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minimask as mm

MAX_SIDE = 4
FEW = [-1.5, 0.0, 0.5, 2.0]  # few distinct values: ties are common


def shapes(min_dims=0, max_dims=4, min_side=1, max_side=MAX_SIDE):
    return hnp.array_shapes(
        min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side
    )


@st.composite
def layouts(draw, ndim):
    kind = draw(st.sampled_from(["contiguous", "permuted", "sliced"])) if ndim else "contiguous"
    if kind == "permuted":
        return kind, tuple(draw(st.permutations(range(ndim))))
    if kind == "sliced":
        return kind, draw(st.integers(0, ndim - 1))
    return kind, None


def leaf_shape(shape, layout):
    """The shape of the leaf from which ``layout`` makes an operand of ``shape``."""
    kind, arg = layout
    if kind == "permuted":
        return tuple(shape[i] for i in np.argsort(arg))
    if kind == "sliced":
        return tuple(2 * n + 1 if d == arg else n for d, n in enumerate(shape))
    return shape


def apply_layout(a, layout):
    """The operand made from leaf ``a`` (a minimask Tensor or a NumPy array)."""
    kind, arg = layout
    if kind == "permuted":
        return a.permute(*arg) if isinstance(a, mm.Tensor) else a.transpose(arg)
    if kind == "sliced":
        return a[tuple(slice(1, None, 2) if d == arg else slice(None) for d in range(a.ndim))]
    return a


@st.composite
def operands(draw, shape, elements=None, dtype=np.float64):
    """(leaf Tensor, leaf values, operand Tensor, operand element ids) for ``shape``."""
    layout = draw(layouts(len(shape)))
    full = leaf_shape(shape, layout)
    elements = st.sampled_from(FEW) if elements is None else elements
    values = draw(hnp.arrays(np.float64, full, elements=elements)).astype(dtype)
    leaf = mm.tensor(values, requires_grad=True)
    ids = apply_layout(np.arange(values.size).reshape(full), layout)
    return leaf, values, apply_layout(leaf, layout), ids


def small_integers(shape):
    return hnp.arrays(np.float64, shape, elements=st.integers(-4, 4).map(float))


def scatter(ids, weights, size):
    """What each of ``size`` elements receives: the sum of ``weights`` at its ids."""
    return np.bincount(np.asarray(ids).ravel(), weights=np.asarray(weights).ravel(), minlength=size)


# ------------------------------------------------------------------ element-moving ops
def check_moves(data, op, reference, shape, elements=None):
    """``op`` (on the operand Tensor) against ``reference`` (on the operand's ids and
    values, in NumPy): forward exactly, and the leaf's gradient exactly (module docstring)."""
    leaf, values, x, ids = data.draw(operands(shape, elements))
    out = op(x)
    moved = reference(ids, values.ravel()[ids])
    np.testing.assert_array_equal(out.numpy(), values.ravel()[moved])
    assert out.shape == moved.shape
    w = data.draw(small_integers(out.shape))
    out.backward(w)
    expected = scatter(moved, w, values.size).reshape(values.shape)
    np.testing.assert_array_equal(leaf.grad.numpy(), expected)


@st.composite
def reshape_targets(draw, shape):
    n = int(np.prod(shape))
    factors, p = [], 2
    while n > 1:
        while n % p == 0:
            factors.append(p)
            n //= p
        p += 1
    target = [1] * draw(st.integers(1, 4))
    for f in factors:
        target[draw(st.integers(0, len(target) - 1))] *= f
    if draw(st.booleans()):
        target[draw(st.integers(0, len(target) - 1))] = -1
    return tuple(target)


def move_reshape(data, shape):
    target = data.draw(reshape_targets(shape))
    return (lambda x: x.reshape(*target)), (lambda ids, v: ids.reshape(target))


def move_permute(data, shape):
    order = tuple(data.draw(st.permutations(range(len(shape)))))
    return (lambda x: x.permute(*order)), (lambda ids, v: ids.transpose(order))


def move_transpose(data, shape):
    span = max(len(shape), 1)
    d0, d1 = data.draw(st.integers(-span, span - 1)), data.draw(st.integers(-span, span - 1))
    if not shape:
        return (lambda x: x.transpose(d0, d1)), (lambda ids, v: ids)
    return (lambda x: x.transpose(d0, d1)), (lambda ids, v: np.swapaxes(ids, d0, d1))


def move_flatten(data, shape):
    if not shape:
        return (lambda x: x.flatten()), (lambda ids, v: ids.reshape(1))
    ndim = len(shape)
    start = data.draw(st.integers(0, ndim - 1))
    end = data.draw(st.integers(start, ndim - 1))
    target = shape[:start] + (int(np.prod(shape[start : end + 1])),) + shape[end + 1 :]
    signed = start - ndim if data.draw(st.booleans()) else start
    return (lambda x: mm.flatten(x, signed, end)), (lambda ids, v: ids.reshape(target))


def move_squeeze(data, shape):
    span = max(len(shape), 1)
    dim = data.draw(st.none() | st.integers(-span, span - 1))
    if dim is None:
        return (lambda x: x.squeeze()), (lambda ids, v: ids.reshape([n for n in shape if n != 1]))
    kept = [n for d, n in enumerate(shape) if not (d == dim % span and n == 1)]
    return (lambda x: x.squeeze(dim)), (lambda ids, v: ids.reshape(kept))


def move_unsqueeze(data, shape):
    dim = data.draw(st.integers(-len(shape) - 1, len(shape)))
    return (lambda x: x.unsqueeze(dim)), (lambda ids, v: np.expand_dims(ids, dim))


def move_expand(data, shape):
    sizes = [data.draw(st.integers(1, 3)) if n == 1 else n for n in shape]
    sizes = data.draw(st.lists(st.integers(1, 3), max_size=2)) + sizes
    assume(sizes)
    return (lambda x: x.expand(*sizes)), (lambda ids, v: np.broadcast_to(ids, sizes))


def move_basic_index(data, shape):
    index = data.draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))
    return (lambda x: x[index]), (lambda ids, v: ids[index])


def move_integer_arrays(data, shape):
    assume(shape)
    arrays = data.draw(hnp.integer_array_indices(shape, result_shape=shapes(max_dims=2)))
    after_slice = len(shape) >= 2 and data.draw(st.booleans())
    if after_slice:
        arrays = data.draw(hnp.integer_array_indices(shape[1:], result_shape=shapes(max_dims=2)))
        index = (slice(None),) + tuple(arrays)
    else:
        index = tuple(arrays)

    def op(x):
        return x[tuple(mm.tensor(i) if isinstance(i, np.ndarray) else i for i in index)]

    return op, (lambda ids, v: ids[index])


def move_bool_mask(data, shape):
    assume(shape)
    mask = data.draw(hnp.arrays(np.bool_, shape[: data.draw(st.integers(1, len(shape)))]))
    return (lambda x: x[mm.tensor(mask)]), (lambda ids, v: ids[mask])


def move_gather(data, shape):
    assume(shape)
    dim = data.draw(st.integers(0, len(shape) - 1))
    index_shape = tuple(
        data.draw(st.integers(1, MAX_SIDE)) if d == dim else data.draw(st.integers(1, n))
        for d, n in enumerate(shape)
    )
    index = data.draw(hnp.arrays(np.int64, index_shape, elements=st.integers(0, shape[dim] - 1)))

    def reference(ids, v):  # torch.gather's definition: out[p] = x[p with p[dim] = index[p]]
        where = list(np.indices(index_shape))
        where[dim] = index
        return ids[tuple(where)]

    return (lambda x: x.gather(dim, mm.tensor(index))), reference


def move_cat(data, shape):
    """Cut the operand along dim into pieces and join them in another order."""
    assume(shape)
    dim = data.draw(st.integers(0, len(shape) - 1))
    cuts = sorted(data.draw(st.lists(st.integers(0, shape[dim]), max_size=3)))
    bounds = list(zip([0] + cuts, cuts + [shape[dim]]))
    order = data.draw(st.permutations(range(len(bounds))))

    def pieces(a):
        return [
            a[tuple(slice(*bounds[k]) if d == dim else slice(None) for d in range(len(shape)))]
            for k in order
        ]

    return (lambda x: mm.cat(pieces(x), dim)), (lambda ids, v: np.concatenate(pieces(ids), dim))


def move_stack(data, shape):
    dim = data.draw(st.integers(-len(shape) - 1, len(shape)))
    return (lambda x: mm.stack([x, x, x], dim)), (lambda ids, v: np.stack([ids, ids, ids], dim))


def stable_order(values, dim, descending):
    """NumPy reference of the documented tie rule: equal values keep their original order."""
    return np.argsort(-values if descending else values, axis=dim, kind="stable")


def move_sort(data, shape):
    span = max(len(shape), 1)
    dim = data.draw(st.integers(-span, span - 1))
    descending = data.draw(st.booleans())
    if not shape:
        return (lambda x: x.sort(dim, descending).values), (lambda ids, v: ids)

    def reference(ids, v):
        return np.take_along_axis(ids, stable_order(v, dim, descending), dim)

    return (lambda x: x.sort(dim, descending).values), reference


def move_topk(data, shape):
    assume(shape)
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    k = data.draw(st.integers(0, shape[dim]))
    largest = data.draw(st.booleans())

    def reference(ids, v):
        order = stable_order(v, dim, largest)
        first_k = tuple(
            slice(0, k) if d == dim % len(shape) else slice(None) for d in range(len(shape))
        )
        return np.take_along_axis(ids, order[first_k], dim)

    return (lambda x: x.topk(k, dim, largest).values), reference


def move_max_dim(data, shape):
    assume(shape)
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    largest = data.draw(st.booleans())
    keepdim = data.draw(st.booleans())

    def op(x):
        return (x.max if largest else x.min)(dim, keepdim=keepdim).values

    def reference(ids, v):  # np.argmax/argmin pick the first extreme, the documented rule
        first = (np.argmax if largest else np.argmin)(v, axis=dim, keepdims=True)
        picked = np.take_along_axis(ids, first, dim)
        return picked if keepdim else picked.squeeze(dim)

    return op, reference


MOVES = {
    "reshape": move_reshape,
    "permute": move_permute,
    "transpose": move_transpose,
    "flatten": move_flatten,
    "squeeze": move_squeeze,
    "unsqueeze": move_unsqueeze,
    "expand": move_expand,
    "getitem basic": move_basic_index,
    "getitem integer arrays": move_integer_arrays,
    "getitem bool mask": move_bool_mask,
    "gather": move_gather,
    "cat": move_cat,
    "stack": move_stack,
    "sort": move_sort,
    "topk": move_topk,
    "max/min dim": move_max_dim,
}


@pytest.mark.parametrize("name", MOVES)
@given(data=st.data())
def test_element_moving_ops_against_element_ids(name, data):
    """Forward equals the leaf's values at the NumPy-moved element ids; the leaf gradient
    equals the bincount of the upstream gradient over those ids (exact; module docstring).
    Values come from a set of four, so sort/topk/max meet ties (first-index / stable rule)."""
    shape = data.draw(shapes())
    op, reference = MOVES[name](data, shape)
    check_moves(data, op, reference, shape)


# ------------------------------------------------------------------ broadcasting binary ops
BINARY_PARTIALS = {
    "add": (lambda a, b: a + b, lambda a, b: (np.ones_like(a), np.ones_like(b))),
    "sub": (lambda a, b: a - b, lambda a, b: (np.ones_like(a), -np.ones_like(b))),
    "mul": (lambda a, b: a * b, lambda a, b: (b, a)),
    "div": (lambda a, b: a / b, lambda a, b: (1 / b, -a / b**2)),
    "maximum": (
        mm.maximum,
        lambda a, b: ((a > b) + 0.5 * (a == b), (b > a) + 0.5 * (a == b)),
    ),
    "minimum": (
        mm.minimum,
        lambda a, b: ((a < b) + 0.5 * (a == b), (b < a) + 0.5 * (a == b)),
    ),
}


@pytest.mark.parametrize("name", BINARY_PARTIALS)
@given(data=st.data())
def test_broadcast_binary_gradients_are_scattered_back(name, data):
    """For broadcastable shapes, each operand's gradient is the sum over the output
    positions it was broadcast to of g * (its partial derivative there): bincount over the
    broadcast element ids (hand partials; maximum/minimum split 1/2 at ties, which the
    four-value set makes common; exact except div: 1e-12 relative)."""
    (shape_a, shape_b), out_shape = data.draw(
        hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=MAX_SIDE)
    )
    a_leaf, a_values, a, a_ids = data.draw(operands(shape_a))
    divisor = st.sampled_from([-2.0, -0.5, 1.0, 4.0]) if name == "div" else None
    b_leaf, b_values, b, b_ids = data.draw(operands(shape_b, divisor))
    op, partials = BINARY_PARTIALS[name]
    out = op(a, b)
    av, bv = a_values.ravel()[a_ids], b_values.ravel()[b_ids]
    np.testing.assert_allclose(out.numpy(), op(mm.tensor(av), mm.tensor(bv)).numpy(), rtol=0)
    assert out.shape == out_shape
    g = data.draw(small_integers(out_shape))
    out.backward(g)
    da, db = (np.broadcast_to(p, out_shape) for p in partials(av, bv))
    for leaf, values, ids, partial in (
        (a_leaf, a_values, a_ids, da),
        (b_leaf, b_values, b_ids, db),
    ):
        expected = scatter(np.broadcast_to(ids, out_shape), g * partial, values.size)
        np.testing.assert_allclose(leaf.grad.numpy(), expected.reshape(values.shape), rtol=1e-12)


@given(data=st.data())
def test_where_gradients_follow_the_condition(data):
    """where(c, a, b) with three broadcast shapes: a receives g where c holds, b where it
    does not, each scattered over its broadcast ids (exact)."""
    (shape_c, shape_a, shape_b), out_shape = data.draw(
        hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=MAX_SIDE)
    )
    condition = data.draw(hnp.arrays(np.bool_, shape_c))
    a_leaf, a_values, a, a_ids = data.draw(operands(shape_a))
    b_leaf, b_values, b, b_ids = data.draw(operands(shape_b))
    out = mm.where(mm.tensor(condition), a, b)
    chosen = np.where(condition, a_values.ravel()[a_ids], b_values.ravel()[b_ids])
    np.testing.assert_array_equal(out.numpy(), chosen)
    g = data.draw(small_integers(out_shape))
    out.backward(g)
    c = np.broadcast_to(condition, out_shape)
    for leaf, values, ids, mask in ((a_leaf, a_values, a_ids, c), (b_leaf, b_values, b_ids, ~c)):
        expected = scatter(np.broadcast_to(ids, out_shape), g * mask, values.size)
        np.testing.assert_array_equal(leaf.grad.numpy(), expected.reshape(values.shape))


# ------------------------------------------------------------------ reductions
@st.composite
def dim_arguments(draw, ndim):
    kind = draw(st.sampled_from(["none", "int", "tuple"] if ndim else ["none", "int"]))
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-max(ndim, 1), max(ndim, 1) - 1))
    dims = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    return tuple(d - ndim if draw(st.booleans()) else d for d in dims)


def numpy_axes(dim, ndim):
    if dim is None or ndim == 0:
        return None if ndim else ()
    return tuple(d % ndim for d in ((dim,) if isinstance(dim, int) else dim))


@pytest.mark.parametrize("name", ["sum", "mean", "amax", "amin"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@given(data=st.data())
def test_reductions_against_numpy(name, dtype, data):
    """sum/mean/amax/amin over dims with keepdim: values as NumPy's; the gradient is g
    broadcast back (sum), g / count (mean), or g / (number of ties) on the elements equal to
    the extreme (amax/amin: the documented even split); values from the four-value set
    (ties common); exact up to the division (1e-6 relative)."""
    shape = data.draw(shapes())
    dim = data.draw(dim_arguments(len(shape)))
    keepdim = data.draw(st.booleans())
    leaf, values, x, ids = data.draw(operands(shape, dtype=dtype))
    v = values.ravel()[ids]
    axes = numpy_axes(dim, len(shape))
    numpy_reduce = {"sum": np.sum, "mean": np.mean, "amax": np.max, "amin": np.min}[name]
    expected = numpy_reduce(v.astype(np.float64), axis=axes, keepdims=True)
    out = getattr(x, name)(dim=dim, keepdim=keepdim)
    np.testing.assert_allclose(out.numpy(), expected.reshape(out.shape), rtol=1e-6)
    assert out.shape == (expected.shape if keepdim else np.squeeze(expected, axes).shape)
    g = data.draw(small_integers(out.shape)).reshape(expected.shape)
    out.backward(g.reshape(out.shape))
    count = v.size // max(expected.size, 1)
    if name == "sum":
        local = np.broadcast_to(g, v.shape)
    elif name == "mean":
        local = np.broadcast_to(g / count, v.shape)
    else:
        reaches = v == expected
        local = g * reaches / reaches.sum(axis=axes, keepdims=True)
    grad = scatter(ids, local, values.size).reshape(values.shape)
    np.testing.assert_allclose(leaf.grad.numpy(), grad, rtol=1e-6)


@given(data=st.data())
def test_argmax_argmin_pick_the_first_extreme(data):
    """argmax/argmin (dim None or int, keepdim) equal NumPy's first-occurrence indices,
    with ties common, and are int64 without gradient."""
    shape = data.draw(shapes())
    span = max(len(shape), 1)
    dim = data.draw(st.none() | st.integers(-span, span - 1))
    keepdim = data.draw(st.booleans())
    _, values, x, ids = data.draw(operands(shape))
    v = values.ravel()[ids]
    for name in ("argmax", "argmin"):
        out = getattr(x, name)(dim=dim, keepdim=keepdim)
        if dim is None or not shape:
            expected = getattr(np, name)(v.reshape(-1)).reshape(
                (1,) * len(shape) if keepdim else ()
            )
        else:
            expected = getattr(np, name)(v, axis=dim, keepdims=keepdim)
        assert out.dtype == mm.int64 and not out.requires_grad
        np.testing.assert_array_equal(out.numpy(), expected)


# ------------------------------------------------------------------ sorting
@given(data=st.data())
def test_sort_and_topk_indices(data):
    """sort: values ordered, indices a permutation giving those values, equal values in
    their original order (NumPy stable argsort); topk: the first k of that order; also for
    uint8 and int64 tensors, where descending order cannot be found by negation."""
    shape = data.draw(shapes(min_dims=1))
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    descending = data.draw(st.booleans())
    dtype = data.draw(st.sampled_from([np.float32, np.int64, np.uint8]))
    values = data.draw(
        hnp.arrays(
            dtype, shape, elements=st.sampled_from([0, 1, 7, 255 if dtype == np.uint8 else -3])
        )
    )
    x = mm.tensor(values)
    out = x.sort(dim=dim, descending=descending)
    wide = values.astype(np.float64)
    order = stable_order(wide, dim, descending)
    np.testing.assert_array_equal(out.indices.numpy(), order)
    np.testing.assert_array_equal(out.values.numpy(), np.take_along_axis(values, order, dim))
    k = data.draw(st.integers(0, shape[dim]))
    top = x.topk(k, dim=dim, largest=descending)
    first_k = tuple(
        slice(0, k) if d == dim % len(shape) else slice(None) for d in range(len(shape))
    )
    np.testing.assert_array_equal(top.indices.numpy(), order[first_k])
    np.testing.assert_array_equal(top.values.numpy(), out.values.numpy()[first_k])


# ------------------------------------------------------------------ smooth functions
def numpy_softmax(v, dim):
    e = np.exp(v - v.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@given(data=st.data())
def test_softmax_log_softmax_against_numpy(dtype, data):
    """softmax sums to 1 along dim; log_softmax = x - logsumexp(x); their gradients equal
    y * (g - sum(g * y)) and g - softmax * sum(g) (hand formulas, NumPy float64); float64
    within 1e-12, float32 within 1e-5 (relative to the largest value)."""
    shape = data.draw(shapes(min_dims=1))
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    elements = st.floats(-20, 20, width=32)
    leaf, values, x, ids = data.draw(operands(shape, elements, dtype))
    v = values.ravel()[ids].astype(np.float64)
    y = numpy_softmax(v, dim)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    g = data.draw(small_integers(shape))
    soft = x.softmax(dim)
    np.testing.assert_allclose(soft.numpy(), y, rtol=tol, atol=tol)
    np.testing.assert_allclose(soft.numpy().sum(axis=dim), 1.0, rtol=tol)
    soft.backward(g)
    local = y * (g - (g * y).sum(axis=dim, keepdims=True))
    scale = max(1.0, np.abs(g).max())
    expected = scatter(ids, local, values.size).reshape(values.shape)
    np.testing.assert_allclose(leaf.grad.numpy(), expected, rtol=tol, atol=tol * scale)
    leaf.grad = None
    log_soft = mm.log_softmax(x, dim)
    logsumexp = np.log(np.exp(v - v.max(axis=dim, keepdims=True)).sum(axis=dim, keepdims=True))
    np.testing.assert_allclose(
        log_soft.numpy(), v - v.max(axis=dim, keepdims=True) - logsumexp, rtol=tol, atol=tol * 20
    )
    log_soft.backward(g)
    local = g - y * g.sum(axis=dim, keepdims=True)
    expected = scatter(ids, local, values.size).reshape(values.shape)
    np.testing.assert_allclose(leaf.grad.numpy(), expected, rtol=tol, atol=tol * scale * 4)


UNARY_DERIVATIVES = {
    "exp": (lambda x: x.exp(), np.exp, np.exp, (-3, 3)),
    "log": (lambda x: x.log(), np.log, lambda v: 1 / v, (0.125, 3)),
    "sqrt": (lambda x: x.sqrt(), np.sqrt, lambda v: 0.5 / np.sqrt(v), (0.125, 3)),
    "abs": (lambda x: x.abs(), np.abs, np.sign, (-3, 3)),
    "relu": (lambda x: x.relu(), lambda v: np.maximum(v, 0), lambda v: (v > 0) * 1.0, (-3, 3)),
    "sigmoid": (
        lambda x: x.sigmoid(),
        lambda v: 1 / (1 + np.exp(-v)),
        lambda v: np.exp(-v) / (1 + np.exp(-v)) ** 2,
        (-8, 8),
    ),
    "tanh": (lambda x: x.tanh(), np.tanh, lambda v: 1 / np.cosh(v) ** 2, (-3, 3)),
    "clamp": (
        lambda x: x.clamp(-1, 1.5),
        lambda v: np.clip(v, -1, 1.5),
        lambda v: ((v >= -1) & (v <= 1.5)) * 1.0,
        (-3, 3),
    ),
    "square": (lambda x: x**2, np.square, lambda v: 2 * v, (-3, 3)),
    "reciprocal": (lambda x: 1 / x, lambda v: 1 / v, lambda v: -1 / v**2, (0.5, 3)),
}


@pytest.mark.parametrize("name", UNARY_DERIVATIVES)
@given(data=st.data())
def test_elementwise_derivatives_match_hand_formulas(name, data):
    """f(x) and its gradient g * f'(x) against NumPy float64 with the derivative written by
    hand (abs'(0) = relu'(0) = 0, clamp passes the gradient at its bounds; the value set
    includes 0 and the bounds); float64 within 1e-12 relative."""
    op, f, derivative, (low, high) = UNARY_DERIVATIVES[name]
    shape = data.draw(shapes())
    elements = st.floats(low, high, width=32) | st.sampled_from(
        [v for v in (0.0, -1.0, 1.5) if low <= v <= high]
    )
    leaf, values, x, ids = data.draw(operands(shape, elements))
    v = values.ravel()[ids]
    out = op(x)
    np.testing.assert_allclose(out.numpy(), f(v), rtol=1e-12, atol=1e-300)
    g = data.draw(small_integers(shape))
    out.backward(g)
    expected = scatter(ids, g * derivative(v), values.size).reshape(values.shape)
    np.testing.assert_allclose(leaf.grad.numpy(), expected, rtol=1e-12, atol=1e-300)


def unbroadcast_by_hand(grad, shape):
    """Sum a gradient of a broadcast shape down to ``shape`` (reference for matmul)."""
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for d, n in enumerate(shape):
        if n == 1 and grad.shape[d] != 1:
            grad = grad.sum(axis=d, keepdims=True)
    return grad


@given(data=st.data())
def test_matmul_against_numpy(data):
    """a @ b (batched, broadcasting, 1-d operands) equals NumPy's matmul in float64 and the
    gradients equal g @ b^T and a^T @ g summed over broadcast batch dims (with 1-d operands
    promoted to a row / column and back), within 1e-12 relative."""
    (shape_a, shape_b), _ = data.draw(
        hnp.mutually_broadcastable_shapes(
            signature=np.matmul.signature, max_dims=2, max_side=MAX_SIDE
        )
    )
    a_leaf, a_values, a, a_ids = data.draw(operands(shape_a, st.floats(-3, 3, width=32)))
    b_leaf, b_values, b, b_ids = data.draw(operands(shape_b, st.floats(-3, 3, width=32)))
    av, bv = a_values.ravel()[a_ids], b_values.ravel()[b_ids]
    out = a @ b
    np.testing.assert_allclose(out.numpy(), np.matmul(av, bv), rtol=1e-12, atol=1e-12)
    g = data.draw(small_integers(out.shape))
    out.backward(g)
    a2 = av[None, :] if av.ndim == 1 else av
    b2 = bv[:, None] if bv.ndim == 1 else bv
    g2 = g.reshape(np.matmul(a2, b2).shape)
    da = unbroadcast_by_hand(g2 @ np.swapaxes(b2, -1, -2), a2.shape).reshape(av.shape)
    db = unbroadcast_by_hand(np.swapaxes(a2, -1, -2) @ g2, b2.shape).reshape(bv.shape)
    for leaf, values, ids, d in ((a_leaf, a_values, a_ids, da), (b_leaf, b_values, b_ids, db)):
        expected = scatter(ids, d, values.size).reshape(values.shape)
        np.testing.assert_allclose(leaf.grad.numpy(), expected, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ no-gradient ops, casts
@given(data=st.data())
def test_comparisons_match_numpy_and_carry_no_gradient(data):
    """== != < <= > >= and & | ~ of broadcast operands equal NumPy's bool results, with
    requires_grad False (ties common)."""
    (shape_a, shape_b), _ = data.draw(
        hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=MAX_SIDE)
    )
    _, a_values, a, a_ids = data.draw(operands(shape_a))
    _, b_values, b, b_ids = data.draw(operands(shape_b))
    av, bv = a_values.ravel()[a_ids], b_values.ravel()[b_ids]
    pairs = [
        (a == b, av == bv),
        (a != b, av != bv),
        (a < b, av < bv),
        (a <= b, av <= bv),
        (a > b, av > bv),
        (a >= b, av >= bv),
        ((a > 0) & (b < 1) | ~(a == 0.5), (av > 0) & (bv < 1) | ~(av == 0.5)),
    ]
    for ours, expected in pairs:
        assert ours.dtype == mm.bool_ and not ours.requires_grad
        np.testing.assert_array_equal(ours.numpy(), expected)


@given(data=st.data())
def test_casts_round_trip_and_gradient_dtypes(data):
    """float32 -> float64 -> float32 returns the same values; the gradient reaching each
    leaf has that leaf's dtype (float32 + float64 leaves in one expression: the result is
    float64, a float32 leaf still gets a float32 gradient), exact with small integers."""
    (shape_a, shape_b), out_shape = data.draw(
        hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=MAX_SIDE)
    )
    a_leaf, a_values, a, a_ids = data.draw(operands(shape_a, dtype=np.float32))
    b_leaf, b_values, b, b_ids = data.draw(operands(shape_b, dtype=np.float64))
    np.testing.assert_array_equal(a.double().float().numpy(), a_values.ravel()[a_ids])
    out = a.double().float() * 2 + b
    assert out.dtype == mm.float64
    g = data.draw(small_integers(out_shape))
    out.backward(g)
    assert a_leaf.grad.dtype == mm.float32 and b_leaf.grad.dtype == mm.float64
    expected_a = scatter(np.broadcast_to(a_ids, out_shape), 2 * g, a_values.size)
    expected_b = scatter(np.broadcast_to(b_ids, out_shape), g, b_values.size)
    np.testing.assert_array_equal(a_leaf.grad.numpy(), expected_a.reshape(a_values.shape))
    np.testing.assert_array_equal(b_leaf.grad.numpy(), expected_b.reshape(b_values.shape))
