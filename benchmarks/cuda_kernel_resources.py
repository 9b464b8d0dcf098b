"""What each CUDA kernel needs on a real GPU: registers, spills, shared memory, occupancy.

Records every kernel specialisation the CUDA tests launch (in numba's simulator,
``tests/kernel_recording.py``), compiles each to PTX for sm_80 and sm_90 and assembles it
with ptxas (``tests/kernel_compilation.py``, whose docstring gives the occupancy formula),
then writes the tables to benchmarks/cuda_kernel_resources.md: one row per kernel (the
range over its specialisations), then one row per specialisation. No GPU is needed, only
the gpu extra (``pip install -e ".[gpu]"``: NVVM and ptxas).

    python benchmarks/cuda_kernel_resources.py [--out FILE] [--records DIR]

``--records DIR`` reuses (or keeps) a recording instead of running the CUDA tests again.
"""

import argparse
import collections
import importlib.metadata
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import kernel_compilation  # noqa: E402
import kernel_recording  # noqa: E402

MAX_REGISTERS_UNLISTED = 128  # README names every kernel above this or with spills


def measure(records):
    """The compile results for the recording in ``records`` (made first if it is empty)."""
    if not any(records.glob("kernels-*.pkl")):
        run = kernel_recording.run_cuda_tests(records)
        if run.returncode != 0:
            sys.exit(f"the CUDA tests failed while recording:\n{run.stdout[-4000:]}")
    measured = kernel_compilation.compile_in_new_process(records)
    if "missing" in measured:
        sys.exit(measured["missing"])
    failures = [r for r in measured["results"] if "error" in r]
    if failures:
        sys.exit(
            "\n".join(f"{r['kernel']}{r['signature']} sm_{r['cc']}: {r['error']}" for r in failures)
        )
    return measured["results"]


def _span(values):
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def _spills(rows):
    stores, loads = max(r["spill_stores"] for r in rows), max(r["spill_loads"] for r in rows)
    return f"{stores} / {loads}"


def _cc(row):
    return f"sm_{row['cc'][0]}{row['cc'][1]}"


def kernel_table(results):
    """One line per kernel function: the range over its specialisations, per target."""
    by_kernel = collections.defaultdict(list)
    for r in results:
        by_kernel[(r["module"].removeprefix("minimask.cuda."), r["function"])].append(r)
    lines = [
        "| kernel | specialisations | threads / block | registers sm_80 | registers sm_90 "
        "| spill bytes (stores / loads) | stack bytes | shared bytes | resident threads / SM "
        "sm_80 | sm_90 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (module, function), rows in sorted(by_kernel.items()):
        sm80 = [r for r in rows if _cc(r) == "sm_80"]
        sm90 = [r for r in rows if _cc(r) == "sm_90"]
        lines.append(
            f"| `{function}` ({module}) | {len(sm80)} | {_span([r['threads'] for r in rows])} "
            f"| {_span([r['registers'] for r in sm80])} | {_span([r['registers'] for r in sm90])} "
            f"| {_spills(rows)} | {max(r['stack'] for r in rows)} "
            f"| {max(r['shared'] for r in rows)} | {_span([r['resident'] for r in sm80])} "
            f"| {_span([r['resident'] for r in sm90])} |"
        )
    return lines


def specialisation_table(results):
    """One line per specialisation: each target's numbers as "sm_80 / sm_90"."""
    pairs = collections.defaultdict(dict)
    for r in results:
        pairs[(r["kernel"], r["signature"])][_cc(r)] = r
    lines = [
        "| kernel | argument types | threads / block | registers | spill stores / loads "
        "| stack | shared | blocks / SM | resident threads / SM |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (kernel, signature), by_cc in sorted(pairs.items()):
        a, b = by_cc["sm_80"], by_cc["sm_90"]

        def both(key, a=a, b=b):
            return f"{a[key]} / {b[key]}"

        spills = f"{a['spill_stores']}/{a['spill_loads']} / {b['spill_stores']}/{b['spill_loads']}"
        lines.append(
            f"| {kernel.removeprefix('minimask.cuda.')} | `{signature}` | {a['threads']} "
            f"| {both('registers')} | {spills} | {both('stack')} | {both('shared')} "
            f"| {both('blocks')} | {both('resident')} |"
        )
    return lines


def summary(results):
    """The counts, the largest register use and the kernels README must name."""
    specialisations = {(r["kernel"], r["signature"]) for r in results}
    functions = {r["function"] for r in results}
    top = max(results, key=lambda r: r["registers"])
    heavy = sorted(
        {
            r["function"]
            for r in results
            if r["spill_stores"] or r["spill_loads"] or r["registers"] > MAX_REGISTERS_UNLISTED
        }
    )
    return [
        f"{len(specialisations)} specialisations of {len(functions)} kernels, each compiled for "
        f"sm_80 and sm_90: {len(results)} compilations, none failed.",
        f"Most registers: {top['registers']} per thread (`{top['function']}`, {_cc(top)}). "
        f"Largest static shared memory: {max(r['shared'] for r in results)} bytes a block.",
        "Kernels that spill or need more than 128 registers: "
        + (", ".join(f"`{name}`" for name in heavy) if heavy else "none")
        + ".",
    ]


def versions():
    """numba-cuda's version and ptxas's release ("release 12.9, V12.9.86")."""
    report = subprocess.run(
        [kernel_compilation.ptxas_path(), "--version"], capture_output=True, text=True
    ).stdout
    release = next(line for line in report.splitlines() if "release" in line)
    return (
        f"numba-cuda {importlib.metadata.version('numba-cuda')}, ptxas {release.split(', ', 1)[1]}"
    )


def write(results, out):
    text = [
        "# CUDA kernels compiled for real GPUs",
        "",
        "Written by `python benchmarks/cuda_kernel_resources.py` (no GPU needed). Every kernel",
        "specialisation the CUDA tests launch in numba's simulator (a kernel and its argument",
        "types), compiled to PTX by numba for sm_80 and sm_90 and assembled by ptxas:",
        f"{versions()}.",
        "",
        *summary(results),
        "",
        "Threads / block: what a GPU launch uses, 128 for the grid-stride kernels (`launch.grid`),",
        "the kernel's own block otherwise. Resident threads / SM: blocks per SM x threads per",
        "block, where blocks per SM = min(32, 64 / warps per block, (65536 / registers per warp)",
        "/ warps per block, shared memory per SM / (shared bytes + 1 KB)), registers per warp =",
        "32 x registers per thread rounded up to 256 (tests/kernel_compilation.py). 2048 is the",
        "most an SM holds. On a GPU numba-cuda links LTO-IR with nvJitLink instead of assembling",
        "PTX, which may move a register count a little.",
        "",
        "## Per kernel (range over its specialisations)",
        "",
        *kernel_table(results),
        "",
        "## Per specialisation (sm_80 / sm_90)",
        "",
        *specialisation_table(results),
        "",
    ]
    out.write_text("\n".join(text))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=pathlib.Path, default=ROOT / "benchmarks" / "cuda_kernel_resources.md"
    )
    parser.add_argument("--records", type=pathlib.Path, help="a recording folder to reuse or keep")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        records = args.records or pathlib.Path(folder)
        records.mkdir(parents=True, exist_ok=True)
        results = measure(records)
    write(results, args.out)
    for line in summary(results):
        print(line)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
