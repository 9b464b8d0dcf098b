"""Which CUDA kernels compute float32 data in float64 (docs/design.md, "float64 on GPUs").

The rule: float32 where float64 would cost (the matmul's inner loop, elementwise math),
float64 where it is cheap and buys accuracy or the CPU's bits (a sum's accumulator,
RoIAlign, NMS). Two kinds of check:

- the numbers: a float32 sum accumulates in float64, so it is the exact sum rounded
  once. The reference is a hand computation: 2^24 plus sixteen ones is 16777232, which
  float32 holds (its spacing at 2^24 is 2), while adding the ones to a float32 one at a
  time leaves 2^24 (each 2^24 + 1 rounds back to even);
- the compiled code: the PTX of each kernel's float32 specialisation (numba's
  ``compile_ptx`` through NVVM, in a process without the simulator, which compiles
  nothing; no GPU needed, only numba-cuda's CUDA 12 compiler wheels, else skipped).
  A kernel that must stay float32 has no float64 instruction; RoIPool's forward (float64
  box geometry, as on the CPU) widens no float32 value; the float64 ones do.
"""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

cuda = pytest.importorskip("minimask.cuda")
pytestmark = pytest.mark.skipif(not cuda.is_available(), reason="no CUDA GPU or simulator")

TESTS = pathlib.Path(__file__).resolve().parent


def test_a_float32_sum_along_an_axis_is_the_exact_sum_rounded_once():
    """One thread a row: 2^24 and sixteen ones (module docstring): 16777232."""
    x = np.ones((2, 17), np.float32)
    x[:, 0] = 2.0**24
    total = cuda.asarray(x).sum(axis=1)
    assert total.dtype == np.float32
    np.testing.assert_array_equal(cuda.to_numpy(total), np.float32([16777232.0] * 2))


def test_a_float32_sum_of_everything_is_the_exact_sum_rounded_once():
    """The tree reduction: its 128 threads each add the 17 elements t, t + 128, ... one
    after another before the tree combines them; here each thread's are 2^24 and sixteen
    ones. Exact: 128 * (2^24 + 16) = 2^31 + 2048 = 2147485696, a float32 (spacing 256 at
    2^31); float32 partials would each stay 2^24, and the total 2^31."""
    x = np.ones((17, 128), np.float32)
    x[0] = 2.0**24
    total = cuda.asarray(x).sum()
    assert total.dtype == np.float32
    assert cuda.to_numpy(total) == np.float32(2147485696.0)


PTX_PROGRAM = """
    import json, sys
    sys.path.insert(0, {tests!r})
    import importlib
    import numpy as np
    from numba import types as t
    from kernel_compilation import compile_ptx, missing_compiler

    reason = missing_compiler()
    if reason is not None:
        print(json.dumps({{"missing": reason}}))
        raise SystemExit
    from minimask.cuda.array import elementwise, matmul, reduction
    conv, roi_align, roi_pool = (
        importlib.import_module("minimask.cuda." + name)
        for name in ("conv", "roi_align", "roi_pool")
    )
    f32 = np.dtype("float32")
    def a(dtype, ndim):
        return t.Array(dtype, ndim, "C")
    def ints(n):
        return t.UniTuple(t.int64, n)
    F, D, I = t.float32, t.float64, t.int64
    flat = (I, ints(2), a(F, 1), ints(2), I, a(F, 1), ints(2), I)  # a map kernel's
    reduce = (a(F, 1), ints(2), ints(2), ints(1), ints(1), I, a(F, 1), I)
    kernels = {{
        "matmul": (matmul._matmul_kernel(f32), (a(F, 1), I, I, I, ints(1))
                   + (a(F, 1), ints(1), I, I, I) * 2),
        "sigmoid": (elementwise._map_kernel("sigmoid", f32), flat),
        "multiply": (elementwise._zip_kernel("multiply", f32), flat + (a(F, 1), ints(2), I)),
        "col2im": (conv.col2im, (a(F, 4),) + (ints(2),) * 4 + (a(F, 4),)),
        "max": (reduction._reduce_kernel("max", f32), reduce),
        "sum": (reduction._reduce_kernel("sum", f32), reduce),
        "roi_pool_forward": (roi_pool.roi_pool_forward_kernel,
                             (a(F, 4), a(D, 2), D, a(F, 4), a(I, 4))),
        "roi_align_forward": (roi_align.roi_align_forward_kernel,
                              (a(F, 4), a(D, 2), D, I, I, I, t.boolean, a(F, 4))),
    }}
    report = {{}}
    for name, (kernel, signature) in kernels.items():
        opcodes = [
            line.split()[1 if line.startswith("@") else 0]
            for line in (raw.strip() for raw in compile_ptx(kernel, signature, (8, 6)).splitlines())
            if line and not line.startswith(("//", ".", "{{", "}}"))
        ]
        report[name] = {{
            "float64": sum(".f64" in op for op in opcodes),
            "widened": sum(op.startswith("cvt") and op.endswith(".f64.f32") for op in opcodes),
            "add_f64": sum(op == "add.f64" for op in opcodes),
        }}
    print(json.dumps({{"report": report}}))
"""


@pytest.fixture(scope="module")
def ptx_counts():
    """{kernel: {float64, widened, add_f64}}: counts of PTX instructions with a float64
    operand, of float32 -> float64 conversions, and of float64 adds."""
    program = textwrap.dedent(PTX_PROGRAM.format(tests=str(TESTS)))
    done = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        cwd=TESTS.parent,
        env={**os.environ, "NUMBA_ENABLE_CUDASIM": "0"},
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if "missing" in result:
        pytest.skip(result["missing"])
    return result["report"]


@pytest.mark.parametrize("kernel", ["matmul", "sigmoid", "multiply", "col2im", "max"])
def test_float32_kernels_compile_without_float64(ptx_counts, kernel):
    assert ptx_counts[kernel]["float64"] == 0, ptx_counts[kernel]


def test_roi_pool_compares_float32_values_as_float32(ptx_counts):
    assert ptx_counts["roi_pool_forward"]["widened"] == 0, ptx_counts["roi_pool_forward"]
    assert ptx_counts["roi_pool_forward"]["float64"] > 0  # the bin geometry, from the rois


def test_the_float64_choices_are_compiled_as_float64(ptx_counts):
    assert ptx_counts["sum"]["add_f64"] > 0 and ptx_counts["sum"]["widened"] > 0
    assert ptx_counts["roi_align_forward"]["widened"] > 0  # each sampled value, as on the CPU
