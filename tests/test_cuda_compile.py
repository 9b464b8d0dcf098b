"""Every kernel specialisation the CUDA tests launch compiles for real GPUs: sm_80 and sm_90.

The CUDA tests run in numba's simulator, which compiles nothing, so a kernel that numba
cannot type for a GPU, or that NVVM or ptxas refuses, would pass all of them. This test
runs them again with the launch recorder on (``tests/kernel_recording.py``), then, in a
process without the simulator, compiles each recorded specialisation (the kernel and its
argument types, factory-built kernels included) to PTX for each target and assembles it
with ptxas (``tests/kernel_compilation.py``). It fails

- naming the kernel, its argument types, the target and the compiler's message, for any
  specialisation that does not compile or assemble;
- if a kernel of minimask/cuda (a module-level ``@cuda.jit`` function, or one a factory
  builds) was never launched by a CUDA test: nothing would check that it compiles;
- if a kernel spills registers or needs more than 128 of them and README.md's paragraph
  "Kernels that spill or need more than 128 registers" does not name it (with the reason).

When ``MINIMASK_KERNEL_RECORDS`` names a folder, the test compiles what an earlier run
recorded there instead of running the CUDA tests again: ``.ci/run`` runs the whole suite
with ``MINIMASK_RECORD_KERNELS`` set to that folder (every pytest-xdist worker records its
launches; this test skips itself inside a recording run), then this test on its own, so
that CI runs the simulated CUDA tests once, not twice.

It needs numba-cuda's CUDA 12 compiler wheels (``pip install -e ".[gpu]"``: NVVM and
ptxas). Without them it is skipped with that message, except under CI (CI=true), which
installs them, where it fails. ``python benchmarks/cuda_kernel_resources.py`` writes the
same measurements as a table.
"""

import ast
import os
import pathlib
import re

import kernel_compilation
import kernel_recording
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
MAX_REGISTERS_UNLISTED = 128
HEAVY_KERNELS_PARAGRAPH = "Kernels that spill or need more than 128 registers"
EARLIER_RECORDS = "MINIMASK_KERNEL_RECORDS"


def readme_paragraph(start):
    """The paragraph of README.md that begins with ``start`` (up to the next blank line)."""
    readme = (ROOT / "README.md").read_text()
    assert start in readme, f'README.md has no paragraph "{start} ..."'
    return readme[readme.index(start) :].split("\n\n", 1)[0]


def kernels_in_source():
    """(module, qualname) of every kernel under minimask/cuda: each function decorated with
    a kernel ``cuda.jit`` (not ``device=True``) at module level, or inside a module-level
    function (a factory: qualname ``factory.<locals>.kernel``)."""
    found = set()
    for path in sorted((ROOT / "minimask" / "cuda").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for node in ast.parse(path.read_text()).body:
            if not isinstance(node, ast.FunctionDef):
                continue
            if _is_kernel(node):
                found.add((module, node.name))
            for inner in ast.walk(node):
                if inner is not node and isinstance(inner, ast.FunctionDef) and _is_kernel(inner):
                    found.add((module, f"{node.name}.<locals>.{inner.name}"))
    return found


def _is_kernel(function):
    for decorator in function.decorator_list:
        text = ast.unparse(decorator)
        if text == "cuda.jit" or (text.startswith("cuda.jit(") and "device=True" not in text):
            return True
    return False


def recorded_launches(fresh_folder):
    """The folder of recorded launches: ``MINIMASK_KERNEL_RECORDS`` (an earlier run's), or
    ``fresh_folder`` after running the CUDA tests with the recorder on."""
    if os.environ.get(EARLIER_RECORDS):
        return pathlib.Path(os.environ[EARLIER_RECORDS])
    run = kernel_recording.run_cuda_tests(fresh_folder)
    assert run.returncode == 0, f"the CUDA tests failed while recording:\n{run.stdout[-4000:]}"
    return fresh_folder


def _compiler_missing(reason):
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must compile the CUDA kernels: {reason}")
    pytest.skip(reason)


def _failures(results):
    return [
        f"{r['kernel']}{r['signature']} for sm_{r['cc'][0]}{r['cc'][1]}:\n    {r['error']}"
        for r in results
        if "error" in r
    ]


@pytest.mark.skipif(
    bool(os.environ.get("MINIMASK_RECORD_KERNELS")), reason="inside the recording run"
)
def test_every_launched_kernel_compiles_for_sm80_and_sm90(tmp_path):
    check = kernel_compilation.compile_in_new_process(tmp_path / "nothing-recorded")
    if "missing" in check:
        _compiler_missing(check["missing"])

    records = recorded_launches(tmp_path / "records")
    recorded = kernel_recording.load(records)
    assert recorded, f"{records} holds no recorded kernel launches"
    in_source = kernels_in_source()
    assert in_source, "the scan found no @cuda.jit kernel under minimask/cuda"
    launched = {(spec.source.module, spec.source.qualname) for spec in recorded}
    never = sorted(in_source - launched)
    assert not never, "kernels no CUDA test launches (so nothing compiles them): " + ", ".join(
        f"{module}.{qualname}" for module, qualname in never
    )

    results = kernel_compilation.compile_in_new_process(records)["results"]
    assert len(results) == len(recorded) * len(kernel_compilation.TARGETS)
    failures = _failures(results)
    assert not failures, f"{len(failures)} of {len(results)} compilations failed:\n" + "\n".join(
        failures
    )

    listed = set(re.findall(r"`(\w+)`", readme_paragraph(HEAVY_KERNELS_PARAGRAPH)))
    heavy = {
        r["function"]
        for r in results
        if r["spill_stores"] or r["spill_loads"] or r["registers"] > MAX_REGISTERS_UNLISTED
    }
    unexplained = sorted(heavy - listed)
    assert not unexplained, (
        f"kernels that spill or need more than {MAX_REGISTERS_UNLISTED} registers, not in "
        f'README.md\'s paragraph "{HEAVY_KERNELS_PARAGRAPH}" with the reason: {unexplained}'
    )
