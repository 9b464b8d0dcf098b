"""The CUDA backend's counters (minimask/cuda/array/counters.py): kernel launches and
their work items, device allocations, copies each way and waits, as ``minimask.cuda.stats()``
and ``with minimask.cuda.count() as c``.

The expected counts are worked out by hand from the code, step by step, in each test's
comments. The first test runs in a fresh interpreter, where no number operand has been put
on the GPU yet (elementwise.py keeps one device copy per distinct number).
"""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import minimask as mm

cuda = pytest.importorskip("minimask.cuda")
pytestmark = pytest.mark.skipif(not cuda.is_available(), reason="no CUDA GPU or simulator")

from minimask.cuda.array import elementwise, launch  # noqa: E402

FIELDS = (
    "launches",
    "work_items",
    "allocations",
    "allocated_bytes",
    "h2d",
    "h2d_bytes",
    "d2h",
    "d2h_bytes",
    "syncs",
)


def counts(launches=0, work_items=0, allocations=0, allocated_bytes=0, h2d=0, h2d_bytes=0,
           d2h=0, d2h_bytes=0, syncs=0):  # fmt: skip
    return dict(zip(FIELDS, (launches, work_items, allocations, allocated_bytes, h2d,
                             h2d_bytes, d2h, d2h_bytes, syncs)))  # fmt: skip


HAND_COUNTED = """
import json
import numpy as np
import minimask as mm
import minimask.cuda as cuda

steps = {}
def step(name, run):
    with cuda.count() as c:
        value = run()
    steps[name] = c.as_dict()
    return value

x = step("ones", lambda: mm.ones(3, device="cuda"))
y = step("plus_one", lambda: x + 1)
step("numpy", lambda: y.numpy())
a = cuda.asarray(np.ones(3, np.float32))
step("backend_plus_number", lambda: a + 0.8125)
step("backend_plus_number_again", lambda: a + 0.8125)
step("strided_to_numpy", lambda: cuda.to_numpy(a[::2]))
index = cuda.asarray(np.array([2, 0]))
step("gather", lambda: a[index])
steps["total"] = cuda.stats()
print(json.dumps(steps))
"""


@pytest.fixture(scope="module")
def hand_counted():
    """The counts of each step of HAND_COUNTED, run in a fresh interpreter."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(HAND_COUNTED)],
        capture_output=True,
        text=True,
        check=True,
    )  # the environment, NUMBA_ENABLE_CUDASIM included (tests/conftest.py), is inherited
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_ones_plus_one_to_numpy(hand_counted):
    # mm.ones(3, device="cuda"): np.ones on the host, then asarray: one new device buffer
    # holding a copy of the 3 float32 (12 bytes); a copy from the host waits for the GPU.
    assert hand_counted["ones"] == counts(allocations=1, allocated_bytes=12, h2d=1,
                                          h2d_bytes=12, syncs=1)  # fmt: skip
    # x + 1: the Tensor puts the number on the GPU as a 0-d float32 tensor (as_tensor: one
    # buffer of 4 bytes, copied from the host), then one zip kernel over the 3 elements
    # writes into a new 12-byte buffer.
    assert hand_counted["plus_one"] == counts(launches=1, work_items=3, allocations=2,
                                              allocated_bytes=16, h2d=1, h2d_bytes=4,
                                              syncs=1)  # fmt: skip
    # y.numpy(): y is contiguous, so no copy kernel: one copy of its 12 bytes to the host.
    assert hand_counted["numpy"] == counts(d2h=1, d2h_bytes=12, syncs=1)


def test_a_number_operand_is_copied_to_the_gpu_once(hand_counted):
    # a + 0.8125 on the backend array: the number becomes a one-element float32 buffer
    # (4 bytes, copied from the host) the first time; the zip kernel writes 12 bytes.
    assert hand_counted["backend_plus_number"] == counts(
        launches=1, work_items=3, allocations=2, allocated_bytes=16, h2d=1, h2d_bytes=4, syncs=1
    )
    # the second time the kept buffer is read: only the output is new
    assert hand_counted["backend_plus_number_again"] == counts(
        launches=1, work_items=3, allocations=1, allocated_bytes=12
    )


def test_a_strided_view_is_made_contiguous_before_its_copy(hand_counted):
    # a[::2] is a view (no kernel); to_numpy copies its 2 elements into a new contiguous
    # 8-byte buffer (one copy kernel), then copies those 8 bytes to the host.
    assert hand_counted["strided_to_numpy"] == counts(
        launches=1, work_items=2, allocations=1, allocated_bytes=8, d2h=1, d2h_bytes=8, syncs=1
    )


def test_an_advanced_index_checks_its_bounds_with_one_copy(hand_counted):
    # a[index], index int64 (2,): the index is read in place (it already is the kernels'
    # layout); its min and max go into one new (2,) int64 buffer (16 bytes) by two
    # tree-reduction launches over its 2 elements, and come back in one copy; then the
    # gather kernel writes the 2 float32 results into a new 8-byte buffer.
    assert hand_counted["gather"] == counts(
        launches=3, work_items=6, allocations=2, allocated_bytes=24, d2h=1, d2h_bytes=16, syncs=1
    )


def test_the_totals_are_the_sum_of_the_steps(hand_counted):
    steps = [value for name, value in hand_counted.items() if name != "total"]
    summed = {field: sum(step[field] for step in steps) for field in FIELDS}
    # the two setup lines between the steps: asarray of 3 float32 and of 2 int64
    setup = counts(allocations=2, allocated_bytes=28, h2d=2, h2d_bytes=28, syncs=2)
    assert hand_counted["total"] == {f: summed[f] + setup[f] for f in FIELDS}


def test_count_blocks_nest_and_keep_their_values():
    a = cuda.asarray(np.ones(4))
    before = cuda.stats()
    with cuda.count() as outer:
        a.copy()  # one copy kernel: 4 work items, a new 32-byte buffer
        with cuda.count() as inner:
            cuda.to_numpy(a)  # one copy to the host: 32 bytes
        a.copy()
    assert inner.as_dict() == counts(d2h=1, d2h_bytes=32, syncs=1)
    assert outer.as_dict() == counts(launches=2, work_items=8, allocations=2,
                                     allocated_bytes=64, d2h=1, d2h_bytes=32,
                                     syncs=1)  # fmt: skip
    after = cuda.stats()
    assert {f: after[f] - before[f] for f in FIELDS} == outer.as_dict()
    a.copy()  # after the blocks: they keep what they counted
    assert outer.launches == 2 and inner.launches == 0


def test_reset_stats_zeroes_the_totals_but_not_an_open_block():
    a = cuda.asarray(np.ones(2, np.float32))
    with cuda.count() as block:
        a.copy()
        cuda.reset_stats()
        assert cuda.stats() == counts()
        a.copy()
    assert cuda.stats() == counts(launches=1, work_items=2, allocations=1, allocated_bytes=8)
    assert block.launches == 2


def test_synchronize_counts_one_wait():
    with cuda.count() as c:
        cuda.synchronize()
    assert c.as_dict() == counts(syncs=1)


def test_launches_by_kernel_name_the_launching_function():
    a = cuda.asarray(np.ones((2, 3)))
    b = cuda.asarray(np.ones((3, 5)))
    with cuda.count() as c:
        a @ b  # the tiled matmul: 2 x 5 outputs
        a.sum(axis=1)  # one thread per output element: 2
        a + a  # a zip kernel: 6
    by_kernel = c.as_dict(by_kernel=True)["by_kernel"]
    assert by_kernel == {
        "array.matmul.matmul": {"launches": 1, "work_items": 10},
        "array.elementwise._launch": {"launches": 1, "work_items": 6},
        "array.reduction._reduce": {"launches": 1, "work_items": 2},
    }
    assert list(by_kernel) == ["array.matmul.matmul", "array.elementwise._launch",
                               "array.reduction._reduce"]  # most work first  # fmt: skip
    assert sum(v["launches"] for v in by_kernel.values()) == c.launches
    assert sum(v["work_items"] for v in by_kernel.values()) == c.work_items


def test_a_launch_through_a_wrapper_keeps_the_launching_functions_name(monkeypatch):
    """A wrapper around launch.grid from outside minimask (as tests/kernel_recording.py
    installs) does not take the launch's name."""
    original = launch.grid

    def wrapped_grid(n):
        return original(n)

    monkeypatch.setattr(elementwise, "grid", wrapped_grid)
    a = cuda.asarray(np.ones(3))
    with cuda.count() as c:
        a + a
    assert c.as_dict(by_kernel=True)["by_kernel"] == {
        "array.elementwise._launch": {"launches": 1, "work_items": 3}
    }


def test_an_sgd_step_on_cuda_launches_two_kernels_and_copies_nothing():
    """p -= lr * grad (momentum 0, no weight decay, optim/sgd.py): the multiply writes a new
    (3, 2) float32 buffer (24 bytes), the subtraction writes into p; the number lr is on
    the GPU since the first step, so the second step copies nothing either way."""
    from minimask.optim import SGD

    mm.manual_seed(0)
    weight = mm.randn(3, 2, device="cuda", requires_grad=True)
    optimizer = SGD([weight], lr=0.5)
    (weight * weight).sum().backward()
    optimizer.step()
    with cuda.count() as c:
        optimizer.step()
    assert c.as_dict() == counts(launches=2, work_items=12, allocations=1, allocated_bytes=24)
