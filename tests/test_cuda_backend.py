"""The CUDA backend against the CPU backend's layout and NumPy: first the twin rules (every
file of minimask/cpu/ has a CUDA twin of the same name, every CPU function a same-named
CUDA function with the same parameters), then the array functions one kernel family
at a time: elementwise (dtype rules, broadcasting, views, in place), reductions, matmul,
indexing (views, gathers, scatter-adds with repeated indices), sorting, creation and
transfers, and the conv / pooling / interpolate kernels against their CPU twins.

Integer and index results must be equal; floating results agree to a few roundings
(the kernels sum in other orders than NumPy and BLAS).
No GPU: the kernels run in numba's simulator (tests/conftest.py), so the arrays are tiny.
"""

import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minimask.cpu as cpu

cuda = pytest.importorskip("minimask.cuda")
pytestmark = pytest.mark.skipif(not cuda.is_available(), reason="no CUDA GPU or simulator")

from minimask.cuda.array import CudaArray  # noqa: E402


def dev(array):
    return cuda.asarray(array)


def host(array):
    assert isinstance(array, CudaArray)
    return cuda.to_numpy(array)


def assert_same(ours, reference, rtol=1e-12):
    """Same dtype and shape; equal (integers, bools) or close (floats)."""
    reference = np.asarray(reference)
    ours = host(ours)
    assert ours.dtype == reference.dtype, (ours.dtype, reference.dtype)
    assert ours.shape == reference.shape, (ours.shape, reference.shape)
    if reference.dtype.kind == "f":
        np.testing.assert_allclose(ours, reference, rtol=rtol, atol=rtol)
    else:
        np.testing.assert_array_equal(ours, reference)


def randn(*shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ---------------------------------------------------------------------------- the interface


def test_every_cpu_backend_name_exists_on_cuda():
    names = {n for n in dir(cpu) if not n.startswith("_") and callable(getattr(cpu, n))}
    names -= {"numba"}  # a module, not a backend function
    missing = sorted(n for n in names if not hasattr(cuda, n))
    assert not missing


def test_minimask_functions_have_the_cpu_signature():
    """Names the CPU backend defines itself (not NumPy's) take the same arguments."""
    for name in dir(cpu):
        function = getattr(cpu, name)
        if not getattr(function, "__module__", "").startswith("minimask"):
            continue
        assert inspect.signature(getattr(cuda, name)) == inspect.signature(function), name


# ---------------------------------------------------------------------------- the twins
# minimask/cuda/ mirrors minimask/cpu/ file for file and name for name (the rules are in
# minimask/cuda/__init__.py's docstring).

# Functions and classes of minimask/cpu/ with no CUDA twin: speed devices of the CPU.
CPU_ONLY = {
    "array_ops._selects_each_position_once": "lets the CPU replace the slow np.add.at by an "
    "assignment; the GPU adds with atomics (and copies for basic indexing) either way",
    "conv._Workspace": "reused per-thread buffers: a first touch of new host memory costs "
    "page faults, device memory has none to save",
    "conv._is_pointwise": "selects the CPU's 1x1 fast path; the GPU runs the general path",
    "conv._flip_kernel": "the CPU's stride-1 backward as a transposed convolution",
    "conv._flip_padding": "the CPU's stride-1 backward as a transposed convolution",
    "conv._add_bias": "adds the bias after the CPU's per-image GEMMs into y; the GPU adds it "
    "in the copy that puts the GEMM result into NCHW order",
    "roi_align.to_channels_last": "the layout of the CPU kernel's vectorised channel loop; "
    "the GPU gives every channel its own thread on the NCHW input",
    "nms.fill_mask_row": "a CPU work item's row of the IoU mask; a GPU thread fills one word "
    "of a 64 x 64 tile instead",
}

# Parameters a CUDA kernel may drop from its CPU twin's: the sizes of the arrays the CPU
# kernel returns (the CUDA kernel's output arrays carry them) and the width of the CPU's
# channel blocks (roi_align_backward_kernel; a GPU thread has one channel).
DROPPED_KERNEL_PARAMETERS = {
    "output_hw",
    "input_hw",
    "input_shape",
    "pooled_h",
    "pooled_w",
    "block",
}

CPU_FOLDER, CUDA_FOLDER = Path(cpu.__file__).parent, Path(cuda.__file__).parent


def module_names(folder):
    return sorted(path.stem for path in folder.glob("*.py") if path.stem != "__init__")


def defined_functions(module):
    """{name: object} of the functions and classes ``module`` defines itself (plain Python,
    numba-compiled or classes; not what it imports)."""
    return {
        name: value
        for name, value in vars(module).items()
        if callable(value) and getattr(value, "__module__", None) == module.__name__
    }


def is_compiled(function):
    """A numba kernel or device function (``@njit`` on the CPU, ``@cuda.jit`` on the GPU)."""
    return not (inspect.isfunction(function) or inspect.isclass(function))


def parameters(function):
    return list(inspect.signature(getattr(function, "py_func", function)).parameters)


def twins(name):
    return (
        importlib.import_module(f"minimask.cpu.{name}"),
        importlib.import_module(f"minimask.cuda.{name}"),
    )


def test_every_cpu_file_has_a_cuda_twin_of_the_same_name():
    """And nothing else: the device-array library is the package minimask/cuda/array/."""
    assert module_names(CUDA_FOLDER) == module_names(CPU_FOLDER)


@pytest.mark.parametrize("name", module_names(CPU_FOLDER))
def test_every_cpu_function_has_a_cuda_twin(name):
    cpu_module, cuda_module = twins(name)
    missing = [
        function
        for function in defined_functions(cpu_module)
        if f"{name}.{function}" not in CPU_ONLY
        and not callable(getattr(cuda_module, function, None))
    ]
    assert not missing, f"minimask/cuda/{name}.py lacks {missing} (or list them in CPU_ONLY)"
    for entry in CPU_ONLY:
        module, function = entry.split(".")
        if module == name:
            assert function in defined_functions(cpu_module), f"stale CPU_ONLY entry {entry}"


@pytest.mark.parametrize("name", module_names(CPU_FOLDER))
def test_twins_have_the_same_parameters(name):
    """Host functions: the same signature. Kernels: the CPU kernel's parameters in its order
    (less the sizes of returned arrays), then the output arrays a CUDA kernel writes."""
    cpu_module, cuda_module = twins(name)
    for function, cpu_function in defined_functions(cpu_module).items():
        if f"{name}.{function}" in CPU_ONLY:
            continue
        cuda_function = getattr(cuda_module, function)
        if not (is_compiled(cpu_function) and is_compiled(cuda_function)):
            assert inspect.signature(cuda_function) == inspect.signature(cpu_function), function
            continue
        cpu_parameters, cuda_parameters = parameters(cpu_function), parameters(cuda_function)
        shared = [p for p in cpu_parameters if p in cuda_parameters]
        assert set(cpu_parameters) - set(shared) <= DROPPED_KERNEL_PARAMETERS, function
        assert cuda_parameters[: len(shared)] == shared, function


def test_is_available_in_the_simulator_or_on_a_gpu():
    assert cuda.is_available() is True


def test_minimask_cuda_needs_no_import_by_hand():
    """As torch.cuda after `import torch`: `import minimask; minimask.cuda.is_available()`
    in a fresh interpreter (which inherits NUMBA_ENABLE_CUDASIM from tests/conftest.py on a
    machine without a GPU), and a plain `import minimask` does not load minimask.cuda."""
    program = (
        "import sys, minimask; before = 'minimask.cuda' in sys.modules; "
        "print(before, minimask.cuda.is_available(), minimask.cuda is sys.modules['minimask.cuda'])"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True", "True"]


# ---------------------------------------------------------------------------- elementwise


@pytest.mark.filterwarnings("ignore:overflow encountered")  # uint8 wraps around, as in NumPy
@pytest.mark.parametrize(
    "a, b",
    [
        (np.float32, 2.5),  # a Python float keeps float32
        (np.float32, 3),
        (np.int64, 2.5),  # ... but turns integers into float64
        (np.int64, np.int64),
        (np.float32, np.float64),
        (np.bool_, np.float32),
        (np.int32, np.int64),
        (np.uint8, 1),
    ],
)
@pytest.mark.parametrize("op", ["add", "sub", "mul", "truediv", "lt", "eq", "maximum"])
def test_binary_ops_follow_numpy_dtype_rules(op, a, b):
    x = (np.arange(6).reshape(2, 3) % 4).astype(a)
    y = b if not isinstance(b, type) else (np.arange(3)[::-1] % 3 + 1).astype(b)
    fn = {
        "add": lambda p, q: p + q,
        "sub": lambda p, q: q - p,
        "mul": lambda p, q: p * q,
        "truediv": lambda p, q: p / q,
        "lt": lambda p, q: p < q,
        "eq": lambda p, q: q == p,
        "maximum": None,
    }[op]
    if op == "maximum":
        expected = np.maximum(x, y)
        ours = cuda.maximum(dev(x), y if np.isscalar(y) else dev(y))
    else:
        expected = fn(x, y)
        ours = fn(dev(x), y if np.isscalar(y) else dev(y))
    assert_same(ours, expected, rtol=1e-6)


def test_broadcasting_over_non_contiguous_views():
    a = randn(4, 3, 5)
    b = randn(5, 3, seed=1)
    da, db = dev(a), dev(b)
    assert_same(da[:, ::2, ::-2] * db.T[None, 1:, :3], a[:, ::2, ::-2] * b.T[None, 1:, :3])
    assert_same(da.transpose(2, 0, 1) - db[:, None, 0:1], a.transpose(2, 0, 1) - b[:, None, 0:1])
    assert_same(cuda.broadcast_to(db[0], (2, 3)) + 1, np.broadcast_to(b[0], (2, 3)) + 1)
    assert_same(cuda.expand_dims(db, (0, 2)) / 2, np.expand_dims(b, (0, 2)) / 2)
    assert_same(-da[..., -1], -a[..., -1])
    assert_same(2.0 ** da[0] + abs(da[1]), 2.0 ** a[0] + abs(a[1]))


# the simulator's threads compute with NumPy scalars, which warn (np.errstate is per thread)
@pytest.mark.filterwarnings("ignore:divide by zero", "ignore:invalid value")
def test_unary_functions_match_numpy():
    x = np.array([[-3.0, -1e-3, 0.0, 0.5, 40.0]])
    for name in ["exp", "tanh", "abs", "sign", "log1p"]:
        values = x if name != "log1p" else np.abs(x)
        assert_same(getattr(cuda, name)(dev(values)), getattr(np, name)(values))
    positive = np.abs(x) + 0.25
    assert_same(cuda.log(dev(positive)), np.log(positive))
    assert_same(cuda.sqrt(dev(positive)), np.sqrt(positive))
    with np.errstate(divide="ignore", invalid="ignore"):  # IEEE results, not errors
        assert_same(cuda.log(dev(np.array([0.0, -1.0]))), np.log(np.array([0.0, -1.0])))


def test_sigmoid_matches_cpu_without_overflow():
    x = np.array([-1000.0, -30.0, -1.0, 0.0, 2.0, 800.0])
    for dtype in (np.float64, np.float32):
        assert_same(cuda.sigmoid(dev(x.astype(dtype))), cpu.sigmoid(x.astype(dtype)), rtol=1e-6)


def test_comparisons_logic_and_where():
    a, b = np.array([[1.0, np.nan, 2.0]]), np.array([[1.0, 1.0], [3.0, 2.0]])[:, :1]
    da, db = dev(a), dev(b)
    for name in ["equal", "not_equal", "less", "less_equal", "greater", "greater_equal"]:
        assert_same(getattr(cuda, name)(da, db), getattr(np, name)(a, b))
    assert_same(cuda.logical_and(da > 1, db > 1), np.logical_and(a > 1, b > 1))
    assert_same(cuda.logical_or(da > 1, True), np.logical_or(a > 1, True))
    assert_same(cuda.logical_not(da > 1), np.logical_not(a > 1))
    assert_same(~(da > 1) | (db < 2), ~(a > 1) | (b < 2))
    assert_same(cuda.where(da > 1, da, 0.5), np.where(a > 1, a, 0.5))
    assert_same(cuda.where(db > 1, 1, db - 1), np.where(b > 1, 1, b - 1))
    assert_same(cuda.maximum(da, db), np.maximum(a, b))  # NaN wins, as in NumPy
    assert_same(cuda.minimum(db, da), np.minimum(b, a))


def test_in_place_operators_write_through_views():
    a = randn(3, 4)
    da = dev(a)
    view = da[1:, ::2]
    view += 1.5
    view *= dev(np.array([2.0, -1.0]))
    a[1:, ::2] += 1.5
    a[1:, ::2] *= np.array([2.0, -1.0])
    assert_same(da, a)
    square = dev(np.arange(9.0).reshape(3, 3))
    square -= square.T  # overlapping operand: read before anything is overwritten
    assert_same(square, np.arange(9.0).reshape(3, 3) - np.arange(9.0).reshape(3, 3).T)
    counts = dev(np.arange(3))
    with pytest.raises(TypeError, match="same_kind"):
        counts += 0.5  # NumPy refuses to write floats into an integer array in place


def test_numpy_and_host_arrays_are_refused_with_a_message():
    with pytest.raises(TypeError, match="does not support ufuncs"):
        np.exp(dev(np.ones(2)))
    with pytest.raises(TypeError, match="to_numpy"):
        np.asarray(dev(np.ones(2)))
    assert_same(np.float32(2) * dev(np.ones(2, np.float32)), np.full(2, 2, np.float32))
    with pytest.raises(TypeError, match="asarray"):
        dev(np.ones(2)) + np.ones(2)


# ---------------------------------------------------------------------------- reductions


@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2), (1, 2)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions_match_numpy(axis, keepdims):
    x = np.round(randn(3, 4, 5), 1)  # rounded: ties for max/min
    dx = dev(x)
    for name in ["sum", "max", "min", "mean"]:
        assert_same(
            getattr(dx, name)(axis=axis, keepdims=keepdims),
            getattr(x, name)(axis=axis, keepdims=keepdims),
        )
    if not isinstance(axis, tuple):
        assert_same(cuda.argmax(dx, axis, keepdims=keepdims), np.argmax(x, axis, keepdims=keepdims))
        assert_same(cuda.argmin(dx, axis, keepdims=keepdims), np.argmin(x, axis, keepdims=keepdims))


def test_full_reduction_tree_over_more_elements_than_threads():
    x = randn(3, 150)  # 450 elements: each of the 128 threads combines several first
    dx = dev(x)
    assert_same(dx.sum(), x.sum())
    assert_same(dx[:, ::-3].max(), x[:, ::-3].max())
    assert_same(dx.T.min(), x.min())
    ints = np.arange(300, dtype=np.int32).reshape(3, 100)
    assert_same(dev(ints).sum(), ints.sum())  # int32 sums as int64, as in NumPy
    assert_same((dev(ints) > 150).sum(axis=1), (ints > 150).sum(axis=1))


def test_reductions_with_nan_and_empty_inputs():
    x = np.array([[1.0, np.nan, 3.0, np.nan], [2.0, 1.0, 2.0, 0.0]])
    dx = dev(x)
    assert_same(dx.max(axis=1), x.max(axis=1))
    assert_same(dx.min(), x.min())
    assert_same(cuda.argmax(dx, axis=1), np.argmax(x, axis=1))
    assert_same(cuda.argmin(dx), np.argmin(x))
    assert_same(dev(np.zeros((0, 3))).sum(axis=0), np.zeros(3))
    with pytest.raises(ValueError, match="zero-size"):
        dev(np.zeros((0, 3))).max()


# ---------------------------------------------------------------------------- matmul


@pytest.mark.parametrize(
    "a_shape, b_shape",
    [
        ((3, 17), (17, 18)),
        ((2, 1, 3, 4), (3, 4, 2)),
        ((4,), (4, 3)),
        ((2, 3, 4), (4,)),
        ((5,), (5,)),
    ],
)
def test_matmul_matches_numpy(a_shape, b_shape):
    a, b = randn(*a_shape), randn(*b_shape, seed=1)
    assert_same(cuda.matmul(dev(a), dev(b)), np.matmul(a, b))


def test_matmul_reads_transposed_operands_and_integers():
    a, b = randn(5, 3), randn(4, 5, seed=1)
    assert_same(dev(a).T @ dev(b).T, a.T @ b.T)
    ints = np.arange(12).reshape(3, 4)
    assert_same(dev(ints) @ dev(ints).swapaxes(-1, -2), ints @ ints.T)


# ---------------------------------------------------------------------------- indexing


INDEXES = [
    (1,),
    (slice(None, None, -1), 2),
    (Ellipsis, None, slice(1, 3)),
    (-1, slice(None, None, 2), -2),
    ([0, 2, 2],),
    (slice(None), [3, 0, 3]),
    ([[0], [1]], slice(1, None), [2, 0]),  # advanced dims apart: broadcast dims first
    (1, slice(None), [0, 0, 4]),  # an int counts as advanced next to an array
    (np.array([True, False, True]),),
    (slice(None), np.array([[True, False, False, True, True]] * 4)),
]


@pytest.mark.parametrize("index", INDEXES, ids=range(len(INDEXES)))
def test_getitem_and_setitem_match_numpy(index):
    x = np.arange(60.0).reshape(3, 4, 5)
    dx = dev(x)
    assert_same(dx[index], x[index])
    # values that depend on the target element only: an index that repeats a position
    # then assigns the same value each time (which repeat wins is not defined on a GPU)
    values = -x[index] - 0.5
    dx[index] = dev(values)
    x[index] = values
    assert_same(dx, x)
    dx[index] = 7
    x[index] = 7
    assert_same(dx, x)


def test_device_index_arrays_and_bounds_checks():
    x = np.arange(12.0).reshape(3, 4)
    dx = dev(x)
    assert_same(dx[dev(np.array([2, -1, 0]))], x[[2, -1, 0]])
    assert_same(dx[dx > 6.5], x[x > 6.5])
    with pytest.raises(IndexError, match="out of bounds"):
        dx[[0, 3]]
    with pytest.raises(IndexError, match="out of bounds"):
        dx[:, -5]
    with pytest.raises(IndexError, match="too many indices"):
        dx[0, 0, 0]


def test_index_add_adds_once_per_repeated_index():
    values = randn(6, 2)
    index = (np.array([0, 2, 0, 0, 1, 2]), slice(None))
    expected = np.zeros((3, 2))
    np.add.at(expected, index, values)
    assert_same(cuda.index_add((3, 2), np.float64, index, dev(values)), expected)
    assert_same(
        cuda.index_add((3, 2), np.float64, (1,), dev(values[0])),
        cpu.index_add((3, 2), np.float64, (1,), values[0]),
    )


def test_take_along_axis_and_its_scatter_add():
    x = randn(3, 4)
    index = np.array([[3, 3, 0], [1, 1, 1], [0, 2, 3]])
    assert_same(
        cuda.take_along_axis(dev(x), dev(index), axis=1), np.take_along_axis(x, index, axis=1)
    )
    values = randn(3, 3, seed=1)
    for axis in (0, 1):
        expected = cpu.scatter_add_along_axis((4, 4), index, values, axis)
        assert_same(cuda.scatter_add_along_axis((4, 4), dev(index), dev(values), axis), expected)


def test_concatenate_promotes_and_joins():
    a, b = randn(2, 3), np.arange(6, dtype=np.float32).reshape(2, 3)
    assert_same(cuda.concatenate([dev(a), dev(b), dev(a)], axis=1), np.concatenate([a, b, a], 1))
    assert_same(cuda.concatenate([dev(a).T, dev(b).T]), np.concatenate([a.T, b.T]))


def test_argsort_is_stable_with_ties_and_nan():
    x = np.array([[3.0, 1.0, np.nan, 1.0, 2.0, 3.0], [0.0, 0.0, -1.0, 5.0, np.nan, 0.0]])
    for axis in (0, 1, -1):
        assert_same(
            cuda.argsort(dev(x), axis=axis, kind="stable"), np.argsort(x, axis=axis, kind="stable")
        )
    ints = np.array([5, 1, 5, 0, 1], dtype=np.int32)
    assert_same(cuda.argsort(dev(ints)[::-1]), np.argsort(ints[::-1], kind="stable"))


# ---------------------------------------------------------------------------- creation


def test_creation_and_transfers():
    assert_same(cuda.zeros((2, 3)), np.zeros((2, 3)))
    assert_same(cuda.ones(3, dtype=np.int64), np.ones(3, dtype=np.int64))
    assert_same(cuda.full((2, 2), 1.5, dtype=np.float32), np.full((2, 2), 1.5, np.float32))
    assert_same(cuda.arange(2, 9, 3), np.arange(2, 9, 3))
    assert cuda.empty((2, 0)).shape == (2, 0) and cuda.empty(3).dtype == np.float64
    assert_same(cuda.asarray([[1, 2], [3, 4]], dtype=np.float32), np.array([[1, 2], [3, 4]], "f4"))
    assert_same(cuda.astype(dev(np.array([-1.7, 0.4, 2.9])), np.int64), np.array([-1, 0, 2]))
    x = randn(2, 3)
    assert_same(cuda.asarray(dev(x)[:, ::2]), x[:, ::2])  # a device copy of a view
    np.testing.assert_array_equal(cuda.to_numpy(dev(x)[::-1].T), x[::-1].T)
    assert cuda.to_numpy(np.ones(2)).tolist() == [1.0, 1.0]


def test_host_values_and_printing():
    x = dev(np.array([[2.5]]))
    assert float(x) == 2.5 and int(x) == 2 and bool(x) and x.item() == 2.5
    assert f"{x.max():.2f}" == "2.50" and "2.5" in str(x) and "CudaArray" in repr(x)
    assert len(dev(np.zeros((4, 1)))) == 4
    with pytest.raises(ValueError, match="ambiguous"):
        bool(dev(np.zeros(2)))


# ---------------------------------------------------------------------------- conv, pooling, ...


@pytest.mark.parametrize(
    "kernel_hw, stride, padding, dilation",
    [((3, 3), (1, 1), (1, 1), (1, 1)), ((2, 3), (2, 1), (0, 2), (1, 2))],
)
def test_im2col_and_col2im_match_the_cpu_kernels(kernel_hw, stride, padding, dilation):
    from minimask.cpu import conv as cpu_conv
    from minimask.cuda import conv as cuda_conv
    from minimask.cuda.array.launch import grid

    x = randn(2, 2, 5, 4)
    out_hw = cpu_conv.conv2d_output_size(x.shape[2:], kernel_hw, stride, padding, dilation)
    cols = np.empty((2 * kernel_hw[0] * kernel_hw[1], 2, *out_hw))
    cpu_conv.im2col(x, kernel_hw, stride, padding, dilation, cols)
    device_cols = cuda.empty(cols.shape)
    cuda_conv.im2col[grid(cols.size)](
        dev(x).device_ndarray(), kernel_hw, stride, padding, dilation, device_cols.device_ndarray()
    )
    assert_same(device_cols, cols)
    back = np.zeros_like(x)  # col2im adds onto x
    cpu_conv.col2im(cols, kernel_hw, stride, padding, dilation, back)
    device_back = cuda.zeros(x.shape)
    cuda_conv.col2im[grid(x.size)](
        device_cols.device_ndarray(),
        kernel_hw,
        stride,
        padding,
        dilation,
        device_back.device_ndarray(),
    )
    assert_same(device_back, back)


def test_pooling_and_interpolate_kernels_match_the_cpu():
    x = np.round(randn(1, 2, 4, 5), 0)  # ties
    y, argmax = cpu.max_pool2d_forward(x, (2, 2), (1, 2), (1, 0), (1, 1), (4, 2))
    dy, dargmax = cuda.max_pool2d_forward(dev(x), (2, 2), (1, 2), (1, 0), (1, 1), (4, 2))
    assert_same(dy, y)
    assert_same(dargmax, argmax)
    g = randn(*y.shape, seed=1)
    assert_same(
        cuda.max_pool2d_backward(dev(g), dargmax, (4, 5), (2, 2), (1, 2), (1, 0), (1, 1)),
        cpu.max_pool2d_backward(g, argmax, (4, 5), (2, 2), (1, 2), (1, 0), (1, 1)),
    )
    assert_same(
        cuda.interpolate_nearest2d(dev(x), (7, 3), (None, None)),
        cpu.interpolate_nearest2d(x, (7, 3), (None, None)),
    )
    assert_same(
        cuda.interpolate_bilinear2d(dev(x), (3, 8), False, (None, 1.7)),
        cpu.interpolate_bilinear2d(x, (3, 8), False, (None, 1.7)),
    )
    g = randn(1, 2, 6, 3, seed=2)
    assert_same(
        cuda.interpolate_bilinear2d_backward(dev(g), (4, 5), True, (None, None)),
        cpu.interpolate_bilinear2d_backward(g, (4, 5), True, (None, None)),
    )
    assert_same(
        cuda.interpolate_nearest2d_backward(dev(g), (4, 5), (None, None)),
        cpu.interpolate_nearest2d_backward(g, (4, 5), (None, None)),
    )
