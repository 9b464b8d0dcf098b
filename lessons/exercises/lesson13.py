"""Checkers of lesson 13 (the GPU). References: NumPy written out (np.maximum, np.add.at),
minimask's own ops and counters (F.relu, the gradient of indexing, ``minimask.cuda.count()``,
``caching_pool.size_class``) and hand computations (a table of size classes, the launches
of each expression counted from the lesson's rules). Results that are copies (relu) or
sums in one fixed order (the scatter-add) are compared exactly, bit for bit; sizes and
counts are integers.

The CUDA checkers launch tiny grids (at most 64 threads) so that numba's simulator, which
runs every GPU thread as a Python thread, takes a second or two. Where the exercise asks
for a grid-stride loop they launch fewer threads than there are work items."""

import contextlib
import warnings

import numpy as np
from numba import cuda
from numba.core.errors import NumbaPerformanceWarning

import minimask
import minimask.nn.functional as F
from exercises import Wrong, exercise
from minimask.cuda.array import caching_pool


@contextlib.contextmanager
def _quiet():
    """Silence numba's warnings about tiny grids: they are about speed, the checks are
    about results."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumbaPerformanceWarning)
        yield


def _launch(kernel, blocks, threads, *arrays):
    """Run ``kernel[blocks, threads]`` on device copies of the host ``arrays`` and return
    the arrays as the kernel left them."""
    on_device = [cuda.to_device(a) for a in arrays]
    with _quiet():
        kernel[blocks, threads](*on_device)
    cuda.synchronize()
    return [d.copy_to_host() for d in on_device]


@exercise("13.1", "relu's forward, launched by minimask's grid", "relu_kernel", "relu_forward")
def check_relu(relu_kernel, relu_forward):
    """relu_kernel on 2 blocks x 32 threads over 300 float32 elements (only a grid-stride
    loop reaches them all; the output starts as NaN so that an element no thread wrote
    shows), every 5th element exactly 0. Then relu_forward on 70 elements inside
    ``minimask.cuda.count()``: its result, and that the count saw exactly one launch of 70
    work items (which only a launch configured by ``launch.grid`` records). Results against
    np.maximum(x, 0) and minimask's F.relu, exactly: relu copies or zeroes, no arithmetic."""
    rng = np.random.default_rng(111)
    x = rng.standard_normal(300).astype(np.float32)
    x[::5] = 0
    out = np.full(300, np.nan, np.float32)
    got = _launch(relu_kernel, 2, 32, x, out)[1]
    unwritten = np.flatnonzero(np.isnan(got))
    if unwritten.size:
        raise Wrong(
            f"relu_kernel on 2 blocks x 32 threads over 300 elements left {unwritten.size} "
            f"elements unwritten, the first at index {unwritten[0]}: loop over "
            "range(cuda.grid(1), x.shape[0], cuda.gridsize(1))"
        )
    _compare("relu_kernel", x, got)

    x = rng.standard_normal(70).astype(np.float32)
    with minimask.cuda.count() as counted, _quiet():
        result = relu_forward(x)
    result = np.asarray(result)
    if result.shape != x.shape:
        raise Wrong(f"relu_forward of 70 elements returned shape {result.shape}; want (70,)")
    _compare("relu_forward", x, result)
    if counted.launches != 1 or counted.work_items != x.size:
        raise Wrong(
            f"relu_forward(70 elements): minimask.cuda.count() saw {counted.launches} launches "
            f"of {counted.work_items} work items; want 1 launch of 70: launch with "
            "relu_kernel[grid(x.size)](...), the (blocks, threads) that launch.grid returns"
        )


def _compare(name, x, got):
    references = {
        "np.maximum(x, 0)": np.maximum(x, np.float32(0)),
        "minimask's F.relu": F.relu(minimask.tensor(x)).numpy(),
    }
    for reference, want in references.items():
        if not np.array_equal(got, want):
            i = int(np.flatnonzero(got != want)[0])
            raise Wrong(f"{name}: at x = {x[i]:.6g} got {got[i]:.6g}, {reference} is {want[i]:.6g}")


# Each expression of exercise 13.2 on a, b: float32 (3, 4) tensors on "cuda", and its
# launches counted by hand from the lesson's rules (one launch per elementwise operation,
# reduction or matmul; none for a view; a copy kernel where a view must become contiguous;
# a mean is a sum and a division).
EXPRESSIONS = {
    "a + b": (lambda a, b: a + b, 1),
    "F.relu(a * b + a)": (lambda a, b: F.relu(a * b + a), 3),
    "(a * b).sum()": (lambda a, b: (a * b).sum(), 2),
    "a.sum(dim=1).sum()": (lambda a, b: a.sum(dim=1).sum(), 2),
    "a @ b.T": (lambda a, b: a @ b.T, 1),
    "a[:, 1:].T": (lambda a, b: a[:, 1:].T, 0),
    "a.T.reshape(12)": (lambda a, b: a.T.reshape(12), 1),
    "a.exp().mean()": (lambda a, b: a.exp().mean(), 3),
}


@exercise("13.2", "kernel launches counted by hand", "hand_counts")
def check_hand_counts(hand_counts):
    """Each expression of ``EXPRESSIONS`` run on two float32 (3, 4) CUDA tensors inside
    ``minimask.cuda.count()``: the student's number against the launches counted there and
    against the hand count written above (integers, exactly). The checker first checks
    that minimask and its hand counts agree, so that a change of minimask shows as an
    error of the checker, not of the student."""
    answers = hand_counts()
    missing = [name for name in EXPRESSIONS if name not in answers]
    if missing:
        raise Wrong(f"hand_counts() has no entry for {', '.join(map(repr, missing))}")
    minimask.manual_seed(112)
    a = minimask.randn(3, 4, device="cuda")
    b = minimask.randn(3, 4, device="cuda")
    for name, (compute, by_hand) in EXPRESSIONS.items():
        with minimask.cuda.count() as counted:
            compute(a, b)
        if counted.launches != by_hand:
            raise RuntimeError(
                f"the checker's hand count of {name} is {by_hand}, minimask launched "
                f"{counted.launches}: the checker needs updating"
            )
        if answers[name] != counted.launches:
            launchers = {
                launcher: value["launches"]
                for launcher, value in counted.as_dict(by_kernel=True)["by_kernel"].items()
            }
            raise Wrong(
                f"{name}: you counted {answers[name]!r} launches, minimask.cuda.count() saw "
                f"{counted.launches} (by launcher: {launchers or 'none'})"
            )


MiB = 1 << 20
# (request, block) by hand: multiples of 512 bytes up to 1 MiB, of 2 MiB above
SIZE_TABLE = (
    (1, 512),
    (512, 512),
    (513, 1024),
    (5000, 5120),
    (MiB - 1, MiB),
    (MiB, MiB),
    (MiB + 1, 2 * MiB),
    (2 * MiB, 2 * MiB),
    (2 * MiB + 1, 4 * MiB),
    (5 * MiB - 3, 6 * MiB),
)


@exercise("13.3", "the caching pool's size classes", "size_class")
def check_size_class(size_class):
    """The hand table ``SIZE_TABLE``, then 2,000 request sizes (random up to 64 MiB, and
    every size within 2 bytes of each boundary and granule edge tried) against
    minimask's ``caching_pool.size_class``: integers, exactly."""
    for request, block in SIZE_TABLE:
        got = size_class(request)
        if got != block:
            raise Wrong(f"size_class({request}) = {got!r}; by hand it is {block}")
    rng = np.random.default_rng(113)
    edges = [512, 1024, MiB - 512, MiB, 2 * MiB, 4 * MiB, 64 * MiB]
    sizes = {int(s) for s in rng.integers(1, 64 * MiB, 2000 - 5 * len(edges))}
    sizes |= {edge + d for edge in edges for d in (-2, -1, 0, 1, 2)}
    for request in sorted(sizes):
        got, want = size_class(request), caching_pool.size_class(request)
        if got != want:
            raise Wrong(
                f"size_class({request}) = {got!r}; minimask's caching_pool.size_class gives {want}"
            )


@exercise("13.4", "a deterministic scatter-add: one owner per output", "scatter_add_kernel")
def check_scatter_add(scatter_add_kernel):
    """1 block x 32 threads (fewer than the 40 outputs: a grid-stride loop) over 200 float32
    values of magnitudes 1e-3 to 1e3 sent to 40 outputs, every output receiving at least
    one. Against np.add.at(out, index, values) (NumPy adds in index order, in float32) and
    the gradient of minimask's CPU indexing x[index] (np.add.at too), bit for bit: the sum
    of an output is its terms added in increasing i, each addition rounded to float32. The
    checker makes sure its data tell orders apart: the same terms added in reverse order
    give other bits for some output. Then that the kernel uses no cuda.atomic.

    One thing the simulator cannot see: a float64 accumulator (``acc = 0.0``) runs there
    as NumPy scalars, and a Python float plus a float32 is a float32, so it passes; on a
    GPU numba types it float64, and the sum then rounds once instead of once a term."""
    rng = np.random.default_rng(114)
    outputs, count = 40, 200
    index = rng.permutation(np.concatenate([np.arange(outputs), rng.integers(0, outputs, 160)]))
    magnitudes = np.float32(10.0) ** rng.integers(-3, 4, count).astype(np.float32)
    values = (rng.uniform(-1, 1, count) * magnitudes).astype(np.float32)
    in_order = np.zeros(outputs, np.float32)
    np.add.at(in_order, index, values)
    reverse = np.zeros(outputs, np.float32)
    np.add.at(reverse, index[::-1], values[::-1])
    if np.array_equal(in_order, reverse):
        raise RuntimeError("the checker's data give the same bits in any order: pick others")

    got = _launch(scatter_add_kernel, 1, 32, index, values, np.zeros(outputs, np.float32))[2]
    x = minimask.zeros(outputs, requires_grad=True)
    (x[minimask.tensor(index)] * minimask.tensor(values)).sum().backward()
    references = {
        "np.add.at (index order)": in_order,
        "minimask's CPU gradient of x[index]": x.grad.numpy(),
    }
    for name, want in references.items():
        wrong = np.flatnonzero(got != want)
        if wrong.size:
            j = int(wrong[0])
            terms = int((index == j).sum())
            hint = (
                " (the same as adding in reverse order: loop over i upwards)"
                if got[j] == reverse[j]
                else ""
            )
            if j >= 32 and got[j] == 0:
                hint = " (never written: loop over the outputs with a grid-stride loop)"
            raise Wrong(f"out[{j}] ({terms} terms) = {got[j]!r}, {name} gives {want[j]!r}{hint}")
    if "atomic" in scatter_add_kernel.py_func.__code__.co_names:
        raise Wrong(
            "the kernel calls cuda.atomic: let the thread that owns out[j] add its terms itself"
        )
