"""Checkers of lesson 02 (Numba kernels). References: NumPy written out (np.sum, np.where,
strided slices summed) and minimask's own ops (Tensor.sum, relu's gradient, a tensor's
slices), with tolerances from the dtype: float64 row sums to 1e-12, float32 sums of 32 or 9
terms to 2e-5 and 2e-6, and exact equality where the kernel only copies (relu's backward).

The CUDA checkers launch tiny grids (at most 128 threads), so that numba's simulator, which
runs every GPU thread as a Python thread, takes well under a second. They launch FEWER
threads than there are work items where the exercise asks for a grid-stride loop, and fill
the outputs with NaN first, so that an element no thread wrote shows up."""

import ast
import contextlib
import inspect
import textwrap
import warnings

import numpy as np
from numba import cuda
from numba.core.errors import NumbaPerformanceWarning
from numba.core.registry import CPUDispatcher

import minimask
import minimask.nn.functional as F
from exercises import Wrong, exercise


@contextlib.contextmanager
def _quiet():
    """Silence numba's performance warnings (tiny grids, a stub's loop-less parallel=True):
    they are about speed, and the checks are about results."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumbaPerformanceWarning)
        yield


def _launch(kernel, blocks, threads, *arrays):
    """Run ``kernel[blocks, threads]`` on copies of the host ``arrays`` (NumPy arrays or
    plain numbers) and return the arrays as the kernel left them."""
    on_device = [cuda.to_device(a) if isinstance(a, np.ndarray) else a for a in arrays]
    with _quiet():
        kernel[blocks, threads](*on_device)
    cuda.synchronize()
    return [d.copy_to_host() if hasattr(d, "copy_to_host") else d for d in on_device]


def _uses(function, *names):
    """The names in ``names`` that the Python code of a numba function never mentions
    (attribute and global names: ``numba.prange`` mentions "prange")."""
    mentioned = set(function.py_func.__code__.co_names)
    return [name for name in names if name not in mentioned]


def _barriers_inside_if(kernel):
    """Line numbers (in the kernel's source) of cuda.syncthreads() calls that sit inside an
    ``if``, or None when the source cannot be read (a function made by exec)."""
    try:
        source = textwrap.dedent(inspect.getsource(kernel.py_func))
    except (OSError, TypeError):
        return None
    lines = []
    for branch in ast.walk(ast.parse(source)):
        if isinstance(branch, (ast.If, ast.IfExp)):
            for node in ast.walk(branch):
                if isinstance(node, ast.Call) and "syncthreads" in ast.unparse(node.func):
                    lines.append(node.lineno)
    return sorted(set(lines))


@exercise("02.1", "parallel row sums with prange", "row_sums")
def check_row_sums(row_sums):
    """On a 37 x 50 and a 3 x 1 float64 matrix (values in [-1, 1]): against np.sum(axis=1)
    and minimask's Tensor.sum(dim=1), to 1e-12 (a sum of 50 terms of size <= 1 rounds by
    at most ~50 * 50 * 1.1e-16 = 3e-13 in any order). Then that row_sums is a numba CPU
    dispatcher compiled with parallel=True (its targetoptions) whose code uses prange."""
    rng = np.random.default_rng(21)
    for shape in ((37, 50), (3, 1)):
        matrix = rng.uniform(-1, 1, shape)
        with _quiet():
            got = np.asarray(row_sums(matrix))
        references = {
            "np.sum(matrix, axis=1)": np.sum(matrix, axis=1),
            "minimask's Tensor.sum(dim=1)": minimask.tensor(matrix).sum(dim=1).numpy(),
        }
        for name, want in references.items():
            if got.shape != want.shape:
                raise Wrong(f"a {shape} matrix gave shape {got.shape}; want {want.shape}")
            if not np.allclose(got, want, rtol=0, atol=1e-12):
                row = int(np.argmax(np.abs(got - want)))
                raise Wrong(
                    f"{shape} matrix, row {row}: got {float(got[row])!r}, {name} gives "
                    f"{float(want[row])!r}"
                )
    if not isinstance(row_sums, CPUDispatcher):
        raise Wrong(
            "row_sums is not compiled by numba: decorate it with @numba.njit(parallel=True)"
        )
    if not row_sums.targetoptions.get("parallel"):
        raise Wrong("row_sums is compiled without parallel=True: prange then runs as range")
    if _uses(row_sums, "prange"):
        raise Wrong("row_sums never calls prange: loop over the rows with numba.prange")


@exercise("02.2", "relu's backward as a grid-stride kernel", "relu_backward_kernel")
def check_relu_backward_kernel(relu_backward_kernel):
    """2 blocks x 32 threads over 300 float32 elements (so only a grid-stride loop reaches
    them all), then 1 block x 32 threads over 20 (more threads than elements), every 7th x
    exactly 0. Against np.where(x > 0, grad_out, 0) and the gradient of minimask's F.relu
    (relu'(0) = 0), exactly: each element is a copy or a zero, no arithmetic."""
    rng = np.random.default_rng(22)
    for blocks, threads, n in ((2, 32, 300), (1, 32, 20)):
        x = rng.standard_normal(n).astype(np.float32)
        x[::7] = 0
        grad_out = rng.standard_normal(n).astype(np.float32)
        grad_in = np.full(n, np.nan, np.float32)
        (got,) = _launch(relu_backward_kernel, blocks, threads, x, grad_out, grad_in)[2:]
        x_tensor = minimask.tensor(x, requires_grad=True)
        (F.relu(x_tensor) * minimask.tensor(grad_out)).sum().backward()
        references = {
            "np.where(x > 0, grad_out, 0)": np.where(x > 0, grad_out, np.float32(0)),
            "minimask's relu gradient": x_tensor.grad.numpy(),
        }
        launch = f"{blocks} blocks x {threads} threads over {n} elements"
        unwritten = np.flatnonzero(np.isnan(got))
        if unwritten.size:
            raise Wrong(
                f"{launch}: {unwritten.size} elements were never written, the first at "
                f"index {unwritten[0]}; thread t of T must handle t, t + T, t + 2T, ... "
                "(range(cuda.grid(1), n, cuda.gridsize(1)))"
            )
        for name, want in references.items():
            if not np.array_equal(got, want):
                i = int(np.flatnonzero(got != want)[0])
                raise Wrong(
                    f"{launch}: at x = {x[i]:.6g}, grad_out = {grad_out[i]:.6g} got {got[i]:.6g}, "
                    f"{name} gives {want[i]:.6g} (the gradient passes where x > 0, else 0)"
                )


BLOCK = 32  # the threads of a block in exercise 02.3, and the elements each block sums


@exercise("02.3", "a block's sum: a tree reduction in shared memory", "block_sum_kernel")
def check_block_sum_kernel(block_sum_kernel):
    """4 blocks x 32 threads over 120 float32 values in [-1, 1] (the last block has 24, so
    threads past the end must add 0). Each block's sum against NumPy's float64 sum of its
    slice and minimask's Tensor.sum of the zero-padded (4, 32) float32 array, to 2e-5: a
    float32 sum of 32 terms of size <= 1 in 5 levels (a tree, or NumPy's pairwise sum)
    errs by at most ~5 * 2**-24 * 32 = 1e-5, and two of them differ by twice that. Then that the
    kernel's code uses cuda.shared and cuda.syncthreads, which the tree needs, and (when its
    source can be read) calls cuda.syncthreads() outside every ``if``: on a GPU each thread
    of a block must reach each barrier, which numba's simulator does not enforce."""
    rng = np.random.default_rng(23)
    n, blocks = 120, 4
    values = rng.uniform(-1, 1, n).astype(np.float32)
    block_sums = np.full(blocks, np.nan, np.float32)
    (got,) = _launch(block_sum_kernel, blocks, BLOCK, values, block_sums)[1:]
    padded = np.zeros(blocks * BLOCK, np.float32)
    padded[:n] = values
    references = {
        "NumPy's float64 sum of the block's values": np.array(
            [values[b * BLOCK : (b + 1) * BLOCK].astype(np.float64).sum() for b in range(blocks)]
        ),
        "minimask's Tensor.sum(dim=1) of the (4, 32) values": minimask.tensor(padded)
        .reshape(blocks, BLOCK)
        .sum(dim=1)
        .numpy(),
    }
    unwritten = np.flatnonzero(np.isnan(got))
    if unwritten.size:
        raise Wrong(
            f"block_sums[{unwritten[0]}] was never written: thread 0 of block b writes "
            "block_sums[b]"
        )
    for name, want in references.items():
        wrong = np.flatnonzero(~np.isclose(got, want, rtol=0, atol=2e-5))
        if wrong.size:
            b = int(wrong[0])
            hint = " (it has 24 values: threads past the end add 0)" if b == blocks - 1 else ""
            raise Wrong(f"block {b}{hint}: got {got[b]:.6g}, {name} is {want[b]:.6f}")
    missing = _uses(block_sum_kernel, "shared", "syncthreads")
    if missing:
        raise Wrong(
            f"the kernel never uses cuda.{' or cuda.'.join(missing)}: sum in a "
            "cuda.shared.array, with cuda.syncthreads() between the steps of the tree"
        )
    divergent = _barriers_inside_if(block_sum_kernel)
    if divergent:
        raise Wrong(
            "cuda.syncthreads() is called inside an if (line "
            f"{', '.join(map(str, divergent))} of the kernel): "
            "the simulator lets it pass, but on a GPU every thread of the block must reach "
            "each syncthreads, or the block may hang or read stale values; call it after the if"
        )


def _window_sums(array, k, stride, out_hw):
    """The k x k window sums of an (N, C, H, W) ``array`` (NumPy or minimask) for an output
    of out_hw = (OH, OW): the sum of one strided slice per offset (di, dj) in the window."""
    oh, ow = out_hw
    total = 0
    for di in range(k):
        for dj in range(k):
            rows = slice(di, di + stride * (oh - 1) + 1, stride)
            columns = slice(dj, dj + stride * (ow - 1) + 1, stride)
            total = total + array[:, :, rows, columns]
    return total


@exercise("02.4", "average pooling as a grid-stride kernel", "avg_pool_kernel")
def check_avg_pool_kernel(avg_pool_kernel):
    """1 block x 32 threads (fewer than the outputs: a grid-stride loop) on float32 inputs
    (2, 3, 9, 9) with a 3x3 window, stride 2 (overlapping windows), and (1, 2, 6, 6) with
    2x2, stride 2. Against the window sum written out in NumPy, sum over (di, dj) of the
    strided slices x[..., di::stride, dj::stride], in float64, / k^2; the same with
    minimask's tensor slicing and adds; and for 2x2, stride 2, NumPy's mean of the
    reshaped (N, C, OH, 2, OW, 2) blocks. Tolerance 2e-6: a float32 running sum of 9
    standard-normal terms (|partial sums| < 20), divided by 9, errs by at most
    ~8 * 20 * 6e-8 / 9 = 1e-6, and two such (the kernel's, minimask's) differ by twice that."""
    rng = np.random.default_rng(24)
    for shape, k, stride in (((2, 3, 9, 9), 3, 2), ((1, 2, 6, 6), 2, 2)):
        x = rng.standard_normal(shape).astype(np.float32)
        out_hw = ((shape[2] - k) // stride + 1, (shape[3] - k) // stride + 1)
        out = np.full((*shape[:2], *out_hw), np.nan, np.float32)
        (got,) = _launch(avg_pool_kernel, 1, 32, x, k, stride, out)[3:]
        numpy_sums = _window_sums(x.astype(np.float64), k, stride, out_hw)
        minimask_sums = _window_sums(minimask.tensor(x), k, stride, out_hw)
        references = {
            "NumPy's float64 window sums / k^2": numpy_sums / k**2,
            "minimask's slices summed / k^2": (minimask_sums / k**2).numpy(),
        }
        if k == stride == 2:
            blocks = x.reshape(*shape[:2], out_hw[0], 2, out_hw[1], 2)
            references["NumPy's mean of 2x2 blocks"] = blocks.astype(np.float64).mean(axis=(3, 5))
        geometry = f"input {shape}, {k}x{k} window, stride {stride}"
        unwritten = np.argwhere(np.isnan(got))
        if len(unwritten):
            raise Wrong(
                f"{geometry}, 32 threads for {out.size} outputs: {len(unwritten)} outputs "
                f"never written, the first at {tuple(int(i) for i in unwritten[0])}; loop "
                "over the output elements with a grid-stride loop"
            )
        for name, want in references.items():
            wrong = np.argwhere(~np.isclose(got, want, rtol=0, atol=2e-6))
            if len(wrong):
                at = tuple(int(i) for i in wrong[0])
                raise Wrong(
                    f"{geometry}: out{list(at)} = {got[at]:.6f}, {name} gives {want[at]:.6f}"
                )
