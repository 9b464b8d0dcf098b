"""Every autograd op against PyTorch CPU: forward values and input gradients, float32 and float64.

Each test draws shapes (``hypothesis.extra.numpy``: broadcastable pairs, gufunc signatures
for matmul, basic and integer-array indices), the operand values, and a *layout* for each
operand: contiguous, permuted (the operand is ``leaf.permute(p)`` of a leaf stored in
another order) or sliced (the operand is ``leaf[..., 1::2, ...]``, a strided view). The
same op then runs in minimask and in torch on the same numbers; the outputs are compared,
and so are the gradients of the *leaves* for one random upstream gradient (so the gradient
also passes back through the permute / slice that made the operand non-contiguous).

Operand values are drawn as float32-representable numbers, so both dtypes see exactly the
same inputs. Values are kept away from points where a derivative is undefined (0 for
abs/relu, the clamp bounds, ties for max/min/sort/topk/maximum/minimum: such ops get
well-separated distinct values) and inside the domain (log, sqrt, pow bases > 0); the tie
and kink conventions are tested at exactly those points in test_autograd_engine.py.

Tolerances. minimask and torch compute the same formulas, but in a different order
(BLAS blocking, pairwise vs. vectorised summation, libm vs. SLEEF exp/log), so results
may differ by a few roundings of the largest intermediate values. With unit roundoff
u = 1.1e-16 (float64) and 6e-8 (float32), at most 256 elements per reduction and
intermediate magnitudes bounded by the largest value compared, the difference stays
far below

    |minimask - torch| <= rtol * |torch| + atol * max(1, max |torch|)

with (rtol, atol) = (1e-12, 1e-12) for float64 and (1e-5, 1e-5) for float32: a few hundred
roundings in float64 and about a hundred in float32. A wrong formula (a missing factor, a
gradient sent to the wrong element, a dropped broadcast sum) is off by O(1) relative error,
far beyond both. Integer and bool outputs (indices, comparisons) must match exactly.
"""

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minimask as mm

DTYPES = [np.float32, np.float64]
TOLERANCE = {np.dtype(np.float32): (1e-5, 1e-5), np.dtype(np.float64): (1e-12, 1e-12)}
MAX_SIDE = 4


# ------------------------------------------------------------------ value strategies
def finite(lo, hi):
    """Floats in [lo, hi] that float32 represents exactly (the same input in both dtypes)."""
    return st.floats(lo, hi, width=32, allow_subnormal=False)


def smooth(shape, lo=-3.0, hi=3.0):
    return hnp.arrays(np.float64, shape, elements=finite(lo, hi))


def positive(shape):
    return smooth(shape, 0.125, 3.0)


def away_from_zero(shape):
    """Magnitudes in [1/16, 3] with either sign: never at the kink of abs or relu."""
    return hnp.arrays(np.float64, shape, elements=finite(-3.0, -0.0625) | finite(0.0625, 3.0))


@st.composite
def distinct(draw, shape, gap=0.25):
    """Values (k - n/2 + 0.3) * gap for a random permutation k of 0..n-1: no two equal, no
    two closer than ``gap``, none at 0, so argmax, sort and maximum are never at a tie."""
    n = int(np.prod(shape))
    order = np.array(draw(st.permutations(range(n))), dtype=np.float64)
    return ((order - n / 2 + 0.3) * gap).reshape(shape).astype(np.float32).astype(np.float64)


def shapes(min_dims=0, max_dims=4, min_side=1):
    return hnp.array_shapes(
        min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=MAX_SIDE
    )


def broadcastable(num_shapes=2, min_side=1):
    return hnp.mutually_broadcastable_shapes(
        num_shapes=num_shapes, min_dims=0, max_dims=4, min_side=min_side, max_side=MAX_SIDE
    )


@st.composite
def layouts(draw, ndim):
    """How an operand is made from its leaf: as it is, permuted, or a strided slice."""
    kind = draw(st.sampled_from(["contiguous", "permuted", "sliced"])) if ndim else "contiguous"
    if kind == "permuted":
        return kind, tuple(draw(st.permutations(range(ndim))))
    if kind == "sliced":
        return kind, draw(st.integers(0, ndim - 1))
    return kind, None


# ------------------------------------------------------------------ the harness
def make_operand(lib, values, layout, dtype):
    """(leaf, operand) in ``lib``: the operand equals ``values`` and is a view of the leaf."""
    kind, arg = layout
    if kind == "permuted":
        leaf_values = np.ascontiguousarray(values.transpose(np.argsort(arg)))
    elif kind == "sliced":
        padded = list(values.shape)
        padded[arg] = 2 * padded[arg] + 1
        leaf_values = np.full(padded, 0.75)
        every_other = [slice(None)] * values.ndim
        every_other[arg] = slice(1, None, 2)
        leaf_values[tuple(every_other)] = values
    else:
        leaf_values = values
    leaf = lib.tensor(leaf_values.astype(dtype), requires_grad=True)
    if kind == "permuted":
        return leaf, leaf.permute(*arg)
    if kind == "sliced":
        return leaf, leaf[tuple(every_other)]
    return leaf, leaf


def as_outputs(out):
    return tuple(out) if isinstance(out, tuple) else (out,)


def assert_same(actual, expected, what, precision=None):
    """minimask array ``actual`` against torch's ``expected`` (shape, dtype, values), with the
    tolerance of ``precision`` (default: the arrays' dtype)."""
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    if actual.dtype.kind != "f":
        np.testing.assert_array_equal(actual, expected, err_msg=what)
        return
    rtol, atol = TOLERANCE[np.dtype(precision or actual.dtype)]
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale, err_msg=what)


def check_against_torch(op, operands, dtype, seed=0, precision=None):
    """Run ``op(lib, *operands)`` in minimask and torch; compare outputs and leaf gradients.

    operands: (values, layout) pairs, made into leaves of ``dtype`` and views of them.
    Every output that requires grad gets a random upstream gradient (the same in both
    libraries): one output is back-propagated with ``backward(grad)``, several through
    sum_k (out_k * grad_k).sum(). ``precision``: the dtype whose tolerance applies when the
    op computes in a lower precision than its inputs.
    """
    runs = {}
    for lib in (mm, torch):
        leaves, views = [], []
        for values, layout in operands:
            leaf, view = make_operand(lib, values, layout, dtype)
            leaves.append(leaf)
            views.append(view)
        runs[lib] = leaves, as_outputs(op(lib, *views))
    (mm_leaves, mm_outs), (torch_leaves, torch_outs) = runs[mm], runs[torch]
    assert len(mm_outs) == len(torch_outs)
    for k, (a, b) in enumerate(zip(mm_outs, torch_outs)):
        assert_same(a.numpy(), b.detach().numpy(), f"output {k}", precision)
        assert a.requires_grad == b.requires_grad, f"output {k}: requires_grad differs"
    differentiable = [k for k, b in enumerate(torch_outs) if b.requires_grad]
    if not differentiable:
        return
    rng = np.random.default_rng(seed)
    upstream = {k: rng.standard_normal(torch_outs[k].shape) for k in differentiable}
    if len(differentiable) == 1:
        (k,) = differentiable
        mm_outs[k].backward(mm.tensor(upstream[k].astype(mm_outs[k].dtype)))
        torch_outs[k].backward(torch.tensor(upstream[k]).to(torch_outs[k].dtype))
    else:
        for lib, outs in ((mm, mm_outs), (torch, torch_outs)):
            sum(
                (outs[k] * lib.tensor(upstream[k]).to(outs[k].dtype)).sum() for k in differentiable
            ).backward()
    for position, (a, b) in enumerate(zip(mm_leaves, torch_leaves)):
        if b.grad is None:
            assert a.grad is None, f"operand {position}: minimask has a gradient, torch none"
            continue
        assert a.grad is not None, f"operand {position}: no gradient"
        assert_same(a.grad.numpy(), b.grad.numpy(), f"gradient of operand {position}", precision)


@st.composite
def operands_for(draw, shape_list, values=smooth):
    return [(draw(values(s)), draw(layouts(len(s)))) for s in shape_list]


seeds = st.integers(0, 2**32 - 1)
dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])


# ------------------------------------------------------------------ arithmetic
BINARY = {
    "add": (lambda lib, a, b: a + b, smooth, smooth),
    "sub": (lambda lib, a, b: a - b, smooth, smooth),
    "mul": (lambda lib, a, b: a * b, smooth, smooth),
    "div": (lambda lib, a, b: a / b, smooth, away_from_zero),
    "pow": (lambda lib, a, b: a**b, lambda s: smooth(s, 0.5, 2.5), lambda s: smooth(s, -2, 2)),
}


@dtypes
@pytest.mark.parametrize("name", BINARY)
@given(data=st.data(), seed=seeds)
def test_binary_arithmetic_with_broadcasting(name, dtype, data, seed):
    """a (op) b for broadcastable shapes (empty dims included), any layouts, vs torch
    (tolerance: module docstring)."""
    op, values_a, values_b = BINARY[name]
    (shape_a, shape_b), _ = data.draw(broadcastable(min_side=0))
    operands = [
        (data.draw(values_a(shape_a)), data.draw(layouts(len(shape_a)))),
        (data.draw(values_b(shape_b)), data.draw(layouts(len(shape_b)))),
    ]
    check_against_torch(op, operands, dtype, seed)


WITH_NUMBERS = {
    "x + 2.5": (lambda lib, x: x + 2.5, smooth),
    "2.5 + x": (lambda lib, x: 2.5 + x, smooth),
    "x - 1": (lambda lib, x: x - 1, smooth),
    "3 - x": (lambda lib, x: 3 - x, smooth),
    "-2 * x": (lambda lib, x: -2 * x, smooth),
    "x / 4": (lambda lib, x: x / 4, smooth),
    "2 / x": (lambda lib, x: 2 / x, away_from_zero),
    "x ** 2": (lambda lib, x: x**2, smooth),
    "x ** 3": (lambda lib, x: x**3, smooth),
    "x ** -1.5": (lambda lib, x: x**-1.5, positive),
    "2 ** x": (lambda lib, x: 2**x, smooth),
    "-x": (lambda lib, x: -x, smooth),
    "x.neg()": (lambda lib, x: x.neg(), smooth),
    "x.add(x).mul(x)": (lambda lib, x: x.add(x).mul(x).sub(x).div(x.exp()), smooth),
}


@dtypes
@pytest.mark.parametrize("name", WITH_NUMBERS)
@given(data=st.data(), seed=seeds)
def test_arithmetic_with_python_numbers(name, dtype, data, seed):
    """Python numbers beside a tensor keep the tensor's dtype; negation; vs torch
    (tolerance: module docstring)."""
    op, values = WITH_NUMBERS[name]
    shape = data.draw(shapes())
    check_against_torch(op, data.draw(operands_for([shape], values)), dtype, seed)


@dtypes
@given(data=st.data(), seed=seeds)
def test_matmul_batched_broadcasting_and_vectors(dtype, data, seed):
    """a @ b over gufunc shapes (n?,k),(k,m?) with broadcast batch dims and 1-d operands;
    also via minimask.matmul / torch.matmul; vs torch (tolerance: module docstring)."""
    (shape_a, shape_b), _ = data.draw(
        hnp.mutually_broadcastable_shapes(
            signature=np.matmul.signature, max_dims=2, min_side=1, max_side=MAX_SIDE
        )
    )
    as_function = data.draw(st.booleans())

    def op(lib, a, b):
        return lib.matmul(a, b) if as_function else a @ b

    check_against_torch(op, data.draw(operands_for([shape_a, shape_b])), dtype, seed)


# ------------------------------------------------------------------ elementwise functions
UNARY = {
    "exp": (lambda lib, x: x.exp(), smooth),
    "log": (lambda lib, x: lib.log(x), positive),
    "sqrt": (lambda lib, x: x.sqrt(), positive),
    "abs": (lambda lib, x: lib.abs(x), away_from_zero),
    "relu": (lambda lib, x: lib.relu(x), away_from_zero),
    "relu method": (lambda lib, x: x.relu(), away_from_zero),
    "sigmoid": (lambda lib, x: lib.sigmoid(x * 4), smooth),
    "tanh": (lambda lib, x: x.tanh(), smooth),
    "exp of large": (lambda lib, x: (x * 25).exp(), smooth),
    "sigmoid of large": (lambda lib, x: (x * 30).sigmoid(), smooth),
}


@dtypes
@pytest.mark.parametrize("name", UNARY)
@given(data=st.data(), seed=seeds)
def test_unary_functions(name, dtype, data, seed):
    """exp log sqrt abs relu sigmoid tanh (inputs in their domain, off the kinks; sigmoid
    and exp also where float32 is close to overflow/saturation) vs torch (tolerance: module
    docstring)."""
    op, values = UNARY[name]
    check_against_torch(op, data.draw(operands_for([data.draw(shapes())], values)), dtype, seed)


CLAMP_BOUNDS = [(-0.5, 1.25), (None, 0.75), (-1.0, None), (0.25, 0.25), (1.5, -1.5)]


@dtypes
@pytest.mark.parametrize("bounds", CLAMP_BOUNDS, ids=str)
@given(data=st.data(), seed=seeds)
def test_clamp(bounds, dtype, data, seed):
    """clamp(min, max) with either bound missing, equal bounds and min > max (torch gives
    max), inputs at least 0.01 from the bounds; vs torch (tolerance: module docstring)."""
    low, high = bounds
    shape = data.draw(shapes())
    values = data.draw(smooth(shape))
    for bound in (low, high):
        if bound is not None:
            values = np.where(np.abs(values - bound) < 0.01, values + 0.02, values)
    values = values.astype(np.float32).astype(np.float64)
    layout = data.draw(layouts(len(shape)))
    check_against_torch(lambda lib, x: x.clamp(low, high), [(values, layout)], dtype, seed)


@dtypes
@pytest.mark.parametrize("name", ["maximum", "minimum"])
@given(data=st.data(), seed=seeds)
def test_maximum_minimum_broadcasting(name, dtype, data, seed):
    """maximum / minimum of broadcast operands with no ties (values drawn distinct) vs torch
    (tolerance: module docstring)."""
    (shape_a, shape_b), _ = data.draw(broadcastable())
    size_a = int(np.prod(shape_a))
    pool = data.draw(distinct((size_a + int(np.prod(shape_b)),))).ravel()
    operands = [
        (pool[:size_a].reshape(shape_a), data.draw(layouts(len(shape_a)))),
        (pool[size_a:].reshape(shape_b), data.draw(layouts(len(shape_b)))),
    ]
    check_against_torch(lambda lib, a, b: getattr(lib, name)(a, b), operands, dtype, seed)


@dtypes
@given(data=st.data(), seed=seeds)
def test_where_broadcasting(dtype, data, seed):
    """where(condition, a, b) with condition, a and b of three broadcastable shapes; the
    condition gets no gradient; vs torch (tolerance: module docstring)."""
    (shape_c, shape_a, shape_b), _ = data.draw(broadcastable(num_shapes=3))
    condition = data.draw(hnp.arrays(np.bool_, shape_c))

    def op(lib, a, b):
        return lib.where(lib.tensor(condition), a, b)

    check_against_torch(op, data.draw(operands_for([shape_a, shape_b])), dtype, seed)


COMPARISONS = {
    "==": lambda lib, a, b: a == b,
    "!=": lambda lib, a, b: a != b,
    "<": lambda lib, a, b: a < b,
    "<=": lambda lib, a, b: a <= b,
    ">": lambda lib, a, b: a > b,
    ">=": lambda lib, a, b: a >= b,
    "& | ~": lambda lib, a, b: ((a < b) & (a > -1)) | ~(b == 0.5),
    "vs number": lambda lib, a, b: (a >= 0.5) & (b != 2),
}


@dtypes
@pytest.mark.parametrize("name", COMPARISONS)
@given(data=st.data())
def test_comparisons_have_no_gradient(name, dtype, data):
    """Comparisons and logical ops of broadcast operands (values from a small set, so ties
    are common) give the same bool tensors as torch, exactly, with requires_grad False."""
    (shape_a, shape_b), _ = data.draw(broadcastable())
    few = st.sampled_from([-1.0, 0.0, 0.5, 2.0])
    operands = [
        (
            data.draw(hnp.arrays(np.float64, shape_a, elements=few)),
            data.draw(layouts(len(shape_a))),
        ),
        (
            data.draw(hnp.arrays(np.float64, shape_b, elements=few)),
            data.draw(layouts(len(shape_b))),
        ),
    ]
    check_against_torch(COMPARISONS[name], operands, dtype)


# ------------------------------------------------------------------ reductions
@st.composite
def dim_arguments(draw, ndim, allow_none=True, allow_tuple=True):
    """None, one dim, or a tuple of distinct dims; negative dims too."""
    kinds = ["int"] + ["none"] * allow_none + ["tuple"] * (allow_tuple and ndim > 0)
    kind = draw(st.sampled_from(kinds))
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-max(ndim, 1), max(ndim, 1) - 1))
    chosen = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    return tuple(d - ndim if draw(st.booleans()) else d for d in chosen)


SUMS = {
    "sum": lambda lib, x, dim, keepdim: x.sum(dim=dim, keepdim=keepdim),
    "mean": lambda lib, x, dim, keepdim: x.mean(dim=dim, keepdim=keepdim),
    "amax": lambda lib, x, dim, keepdim: lib.amax(x, dim=dim, keepdim=keepdim),
    "amin": lambda lib, x, dim, keepdim: x.amin(dim=dim, keepdim=keepdim),
}


@dtypes
@pytest.mark.parametrize("name", SUMS)
@given(data=st.data(), seed=seeds)
def test_reductions_over_dims(name, dtype, data, seed):
    """sum mean amax amin over dim=None / int / tuple, with and without keepdim, 0-d inputs
    included (amax/amin on distinct values); vs torch (tolerance: module docstring)."""
    shape = data.draw(shapes())
    dim = data.draw(dim_arguments(len(shape)))
    keepdim = data.draw(st.booleans())
    values = distinct if name in ("amax", "amin") else smooth
    operands = data.draw(operands_for([shape], values))

    def op(lib, x):
        return SUMS[name](lib, x, dim, keepdim)

    check_against_torch(op, operands, dtype, seed)


@dtypes
@pytest.mark.parametrize("name", ["max", "min"])
@given(data=st.data(), seed=seeds)
def test_max_min_values_and_indices(name, dtype, data, seed):
    """max()/min() of all elements, and max(dim)/min(dim) -> (values, indices) with keepdim,
    on distinct values; indices exactly, values and gradients within tolerance; vs torch
    (tolerance: module docstring)."""
    shape = data.draw(shapes())
    dim = data.draw(dim_arguments(len(shape), allow_tuple=False))
    keepdim = data.draw(st.booleans())

    def op(lib, x):
        if dim is None:
            return getattr(x, name)()
        return getattr(lib, name)(x, dim, keepdim=keepdim)

    check_against_torch(op, data.draw(operands_for([shape], distinct)), dtype, seed)


@dtypes
@pytest.mark.parametrize("name", ["argmax", "argmin"])
@given(data=st.data())
def test_argmax_argmin(name, dtype, data):
    """argmax/argmin over dim=None (flattened) or one dim, with keepdim, on distinct values:
    the int64 indices equal torch's exactly."""
    shape = data.draw(shapes())
    dim = data.draw(dim_arguments(len(shape), allow_tuple=False))
    keepdim = data.draw(st.booleans())

    def op(lib, x):
        return getattr(x, name)(dim=dim, keepdim=keepdim)

    check_against_torch(op, data.draw(operands_for([shape], distinct)), dtype)


# ------------------------------------------------------------------ shape operations
@st.composite
def reshape_targets(draw, shape):
    """A shape with the same number of elements (factors dealt out at random, some 1s),
    possibly with one -1."""
    n = int(np.prod(shape))
    factors, p = [], 2
    while n > 1:
        while n % p == 0:
            factors.append(p)
            n //= p
        p += 1
    slots = draw(st.integers(1, 4))
    target = [1] * slots
    for f in factors:
        target[draw(st.integers(0, slots - 1))] *= f
    if draw(st.booleans()):
        target[draw(st.integers(0, slots - 1))] = -1
    return tuple(target)


@dtypes
@given(data=st.data(), seed=seeds)
def test_reshape_and_view(dtype, data, seed):
    """reshape / view (also with -1 and the shape as one tuple) of any layout vs torch
    (tolerance: module docstring)."""
    shape = data.draw(shapes())
    target = data.draw(reshape_targets(shape))
    how = data.draw(st.sampled_from(["reshape", "reshape tuple", "view"]))

    def op(lib, x):
        if how == "reshape":
            return x.reshape(*target)
        if how == "reshape tuple":
            return lib.reshape(x, target)
        # torch's view needs compatible strides; a contiguous copy stands in for it there
        return x.view(*target) if lib is mm else x.contiguous().view(*target)

    check_against_torch(op, data.draw(operands_for([shape])), dtype, seed)


@dtypes
@given(data=st.data(), seed=seeds)
def test_permute_transpose(dtype, data, seed):
    """permute (tuple or varargs, negative dims), transpose, and .T of a 2-d tensor vs
    torch (tolerance: module docstring)."""
    shape = data.draw(shapes(min_dims=1))
    ndim = len(shape)
    order = [
        d - ndim if data.draw(st.booleans()) else d for d in data.draw(st.permutations(range(ndim)))
    ]
    dim0, dim1 = data.draw(st.integers(-ndim, ndim - 1)), data.draw(st.integers(-ndim, ndim - 1))

    def op(lib, x):
        y = lib.permute(x, tuple(order)) if lib is mm else x.permute(*order)
        y = y.transpose(dim0, dim1)
        return y.reshape(-1, y.shape[-1]).T

    check_against_torch(op, data.draw(operands_for([shape])), dtype, seed)


@dtypes
@given(data=st.data(), seed=seeds)
def test_flatten_squeeze_unsqueeze(dtype, data, seed):
    """flatten(start, end), squeeze() / squeeze(dim) (sides of 1 are common) and
    unsqueeze(dim) with negative dims, vs torch
    (tolerance: module docstring)."""
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=2))
    ndim = len(shape)
    span = max(ndim, 1)
    start = data.draw(st.integers(-span, span - 1))
    end = data.draw(st.integers(-span, span - 1))
    assume(start % span <= end % span)
    squeeze_dim = data.draw(st.none() | st.integers(-span, span - 1))
    new_dim = data.draw(st.integers(-ndim - 1, ndim))

    def op(lib, x):
        squeezed = x.squeeze() if squeeze_dim is None else x.squeeze(squeeze_dim)
        return lib.flatten(x, start, end), squeezed, x.unsqueeze(new_dim)

    check_against_torch(op, data.draw(operands_for([shape])), dtype, seed)


@st.composite
def expand_sizes(draw, shape):
    """Sizes for expand: size-1 dims may grow, others stay (or are written -1); new leading
    dims in front."""
    sizes = [draw(st.integers(1, 3)) if n == 1 else draw(st.sampled_from([n, -1])) for n in shape]
    leading = draw(st.lists(st.integers(1, 3), max_size=2))
    return tuple(leading + sizes)


@dtypes
@given(data=st.data(), seed=seeds)
def test_expand(dtype, data, seed):
    """expand to larger sizes (with -1 and new leading dims); the gradient sums over the
    expanded dims; vs torch
    (tolerance: module docstring)."""
    shape = data.draw(shapes(max_dims=3))
    sizes = data.draw(expand_sizes(shape))
    assume(sizes)  # torch's expand() needs at least one size
    check_against_torch(
        lambda lib, x: x.expand(*sizes) * 1.5, data.draw(operands_for([shape])), dtype, seed
    )


# ------------------------------------------------------------------ indexing
def positive_steps(index):
    items = index if isinstance(index, tuple) else (index,)
    return all(not isinstance(i, slice) or i.step is None or i.step > 0 for i in items)


@dtypes
@given(data=st.data(), seed=seeds)
def test_getitem_basic_indices(dtype, data, seed):
    """x[index] with ints, slices (positive steps, as torch allows), None and Ellipsis, on
    any layout, vs torch (tolerance: module docstring)."""
    shape = data.draw(shapes())
    index = data.draw(
        hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True).filter(positive_steps)
    )
    check_against_torch(lambda lib, x: x[index], data.draw(operands_for([shape])), dtype, seed)


@dtypes
@given(data=st.data(), seed=seeds)
def test_getitem_integer_arrays_with_repeats(dtype, data, seed):
    """x[int arrays] (negative and repeated indices: the gradient adds up per repeat), alone,
    after a slice, and after None; vs torch
    (tolerance: module docstring)."""
    shape = data.draw(shapes(min_dims=1))
    where = data.draw(st.sampled_from(["leading", "after slice", "after None"]))
    if where == "after slice" and len(shape) >= 2:
        arrays = data.draw(hnp.integer_array_indices(shape[1:], result_shape=shapes(max_dims=2)))
    else:
        arrays = data.draw(hnp.integer_array_indices(shape, result_shape=shapes(max_dims=2)))

    def op(lib, x):
        index = tuple(lib.tensor(a) for a in arrays)
        if where == "after slice" and len(shape) >= 2:
            return x[(slice(None),) + index]
        if where == "after None":
            return x[(None,) + index]
        return x[index]

    check_against_torch(op, data.draw(operands_for([shape])), dtype, seed)


@dtypes
@given(data=st.data(), seed=seeds)
def test_getitem_python_list_and_bool_mask(dtype, data, seed):
    """x[mask] for a bool mask over the leading k dims, and x[[i, j, i]] with a Python list;
    vs torch
    (tolerance: module docstring)."""
    shape = data.draw(shapes(min_dims=1))
    k = data.draw(st.integers(1, len(shape)))
    mask = data.draw(hnp.arrays(np.bool_, shape[:k]))
    picks = data.draw(st.lists(st.integers(-shape[0], shape[0] - 1), min_size=1, max_size=5))

    def op(lib, x):
        return lib.cat([x[lib.tensor(mask)].reshape(-1), x[picks].reshape(-1)])

    check_against_torch(op, data.draw(operands_for([shape])), dtype, seed)


# ------------------------------------------------------------------ joining
@dtypes
@given(data=st.data(), seed=seeds)
def test_cat(dtype, data, seed):
    """cat of 1-3 tensors with different sizes along dim (negative dims too) vs torch
    (tolerance: module docstring)."""
    base = list(data.draw(shapes(min_dims=1)))
    ndim = len(base)
    dim = data.draw(st.integers(-ndim, ndim - 1))
    shape_list = []
    for _ in range(data.draw(st.integers(1, 3))):
        base[dim] = data.draw(st.integers(0, 3))
        shape_list.append(tuple(base))
    check_against_torch(
        lambda lib, *xs: lib.cat(list(xs), dim), data.draw(operands_for(shape_list)), dtype, seed
    )


@dtypes
@given(data=st.data(), seed=seeds)
def test_stack(dtype, data, seed):
    """stack of 1-3 tensors of one shape (0-d included) along a new dim vs torch
    (tolerance: module docstring)."""
    shape = data.draw(shapes())
    dim = data.draw(st.integers(-len(shape) - 1, len(shape)))
    count = data.draw(st.integers(1, 3))
    check_against_torch(
        lambda lib, *xs: lib.stack(xs, dim=dim),
        data.draw(operands_for([shape] * count)),
        dtype,
        seed,
    )


# ------------------------------------------------------------------ softmax, sorting, gather
@dtypes
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@given(data=st.data(), seed=seeds)
def test_softmax_log_softmax(name, dtype, data, seed):
    """softmax / log_softmax along any dim (0-d included), inputs up to +-90 (exp overflows
    float32 beyond 88.7: this needs the max shift), function and method forms; vs torch
    (tolerance: module docstring)."""
    shape = data.draw(shapes())
    dim = data.draw(st.integers(-max(len(shape), 1), max(len(shape), 1) - 1))
    scale = data.draw(st.sampled_from([1.0, 10.0, 30.0]))
    as_method = data.draw(st.booleans())

    def op(lib, x):
        y = x * scale
        return getattr(y, name)(dim) if as_method else getattr(lib, name)(y, dim)

    check_against_torch(op, data.draw(operands_for([shape])), dtype, seed)


@dtypes
@given(data=st.data(), seed=seeds)
def test_sort(dtype, data, seed):
    """sort(dim, descending) on distinct values: values and int64 indices vs torch
    (tolerance: module docstring)."""
    shape = data.draw(shapes())
    dim = data.draw(st.integers(-max(len(shape), 1), max(len(shape), 1) - 1))
    descending = data.draw(st.booleans())

    def op(lib, x):
        return x.sort(dim=dim, descending=descending) if lib is mm else x.sort(dim, descending)

    check_against_torch(op, data.draw(operands_for([shape], distinct)), dtype, seed)


@dtypes
@given(data=st.data(), seed=seeds)
def test_topk(dtype, data, seed):
    """topk(k, dim, largest) for every k from 0 to the dim's size, on distinct values:
    values and int64 indices vs torch
    (tolerance: module docstring)."""
    shape = data.draw(shapes(min_dims=1))
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    k = data.draw(st.integers(0, shape[dim]))
    largest = data.draw(st.booleans())
    as_function = data.draw(st.booleans())

    def op(lib, x):
        if as_function:
            return lib.topk(x, k, dim=dim, largest=largest)
        return x.topk(k, dim, largest)

    check_against_torch(op, data.draw(operands_for([shape], distinct)), dtype, seed)


@dtypes
@given(data=st.data(), seed=seeds)
def test_gather(dtype, data, seed):
    """gather(dim, index) with torch's rule: the index may be smaller than the input in the
    other dims (only the leading part is read) and any size along dim; repeated indices add
    their gradients; vs torch
    (tolerance: module docstring)."""
    shape = data.draw(shapes(min_dims=1))
    ndim = len(shape)
    dim = data.draw(st.integers(-ndim, ndim - 1))
    index_shape = tuple(
        data.draw(st.integers(1, MAX_SIDE)) if d == dim % ndim else data.draw(st.integers(1, n))
        for d, n in enumerate(shape)
    )
    index = data.draw(hnp.arrays(np.int64, index_shape, elements=st.integers(0, shape[dim] - 1)))

    def op(lib, x):
        return (
            lib.gather(x, dim, lib.tensor(index)) if lib is mm else x.gather(dim, lib.tensor(index))
        )

    check_against_torch(op, data.draw(operands_for([shape])), dtype, seed)


# ------------------------------------------------------------------ casts and promotion
CASTS = {
    ".to(float64)": lambda lib, x: x.to(lib.float64) * 3,
    ".to(float32)": lambda lib, x: x.to(lib.float32) * 3,
    ".double().float()": lambda lib, x: x.double().float().exp(),
    "mixed +": lambda lib, x: (
        x + x.detach().to(lib.float64 if x.dtype == lib.float32 else lib.float32)
    ),
    "mixed * and cat": lambda lib, x: lib.stack([x.double() * x.float(), x.float()]) * x.float(),
    ".long()": lambda lib, x: (x * 3).long(),
    ".to(int64)": lambda lib, x: (x * 3).to(lib.int64),
    ".to(bool)": lambda lib, x: x.to(lib.bool if lib is torch else mm.bool_),
}


@dtypes
@pytest.mark.parametrize("name", CASTS)
@given(data=st.data(), seed=seeds)
def test_casts_and_promotion(name, dtype, data, seed):
    """.to(dtype), .float(), .double(), .long(), float32 + float64 promotion (the result is
    float64 and each leaf's gradient keeps the leaf's dtype); casts to an integer or bool
    dtype give a tensor without gradient, as in torch; vs torch (float32 tolerance, as each
    case computes in float32 somewhere)."""
    shape = data.draw(shapes(min_dims=1, max_dims=2))
    operands = data.draw(operands_for([shape]))
    check_against_torch(CASTS[name], operands, dtype, seed, precision=np.float32)
