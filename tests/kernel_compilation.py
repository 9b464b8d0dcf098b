"""Compile recorded kernel specialisations for real GPUs and read what each one uses.

For every specialisation ``tests/kernel_recording.py`` recorded (a kernel and its argument
types) and every target in ``TARGETS`` (sm_80, sm_90):

    PTX = numba.cuda.compile_ptx(kernel's Python function, argument types, cc)   (NVVM)
    ptxas -arch=sm_XY -v PTX            (PTX to machine code: on a GPU the driver does this)

and from ptxas's report: registers per thread, the bytes of stack frame, spill stores and
spill loads (summed over the entry function and the device functions it calls) and the
bytes of static shared memory per block. No GPU is needed, only numba-cuda's CUDA 12
compiler wheels (``pip install -e ".[gpu]"``), which bring NVVM and ptxas.

The occupancy a kernel's resources allow on one SM (sm_80 and sm_90 have the same limits:
65536 registers, 64 warps, 32 blocks; registers are allocated per warp in units of 256),
for blocks of T threads (the block the recorded launch uses on a GPU) and R registers:

    warps per block    W = ceil(T / 32)
    registers a warp   ceil(32 R / 256) * 256
    blocks per SM      min(32, floor(64 / W), floor(floor(65536 / registers a warp) / W),
                           floor(shared memory per SM / (shared memory per block + 1 KB)))
    resident threads   blocks per SM * T,    occupancy = blocks per SM * W / 64

(the CUDA runtime reserves 1 KB of shared memory per block; an SM has 164 KB of shared
memory on sm_80, 228 KB on sm_90).

This process must not run the simulator: ``NUMBA_ENABLE_CUDASIM`` replaces ``numba.cuda``.
A ``cuda.jit(device=True)`` function (``element_offset``, an elementwise op) is compiled
the first time a kernel calls it, for the compute capability of the current device,
which a compile-only process does not have: ``compute_capability(cc)`` supplies it. Such
a device function is lowered to LLVM IR once; NVVM then compiles each kernel, with the
device functions it calls, for each target.

On a GPU, numba-cuda compiles with ``lto=True`` where nvJitLink is installed: LTO-IR
linked by nvJitLink instead of PTX assembled by ptxas. The machine-code back end is the
same, but the link-time optimisation may move a register count a little.

    python tests/kernel_compilation.py RECORDS_DIR RESULTS_JSON

writes {"results": [one dict per specialisation and target]} or, where NVVM or ptxas is
missing, {"missing": why}; ``compile_in_new_process(RECORDS_DIR)`` runs it and reads it.
"""

import concurrent.futures
import contextlib
import importlib
import importlib.util
import json
import math
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import types

TESTS = pathlib.Path(__file__).resolve().parent
TARGETS = ((8, 0), (9, 0))
SM_LIMITS = {  # per SM: registers, warps, blocks, shared memory (bytes)
    (8, 0): (65536, 64, 32, 164 * 1024),
    (9, 0): (65536, 64, 32, 228 * 1024),
}
REGISTER_UNIT = 256  # registers are allocated to a warp in multiples of this
BLOCK_SHARED_RESERVE = 1024  # bytes of shared memory the CUDA runtime keeps per block
# cuda.jit options that compile_ptx also takes: a kernel that sets one is compiled with it
COMPILE_OPTIONS = ("debug", "lineinfo", "fastmath", "opt", "forceinline", "launch_bounds")


def missing_compiler():
    """Why the CUDA compiler cannot run here (a sentence), or None if it can."""
    from numba.cuda.cudadrv import nvvm

    if not nvvm.is_available():
        return 'NVVM not found: install the CUDA 12 compiler wheels, pip install -e ".[gpu]"'
    if ptxas_path() is None:
        return 'ptxas not found: install the CUDA 12 compiler wheels, pip install -e ".[gpu]"'
    return None


def ptxas_path():
    """The ptxas of the nvidia-cuda-nvcc wheel numba-cuda[cu12] installs, else PATH's."""
    spec = importlib.util.find_spec("nvidia.cuda_nvcc")
    for folder in spec.submodule_search_locations if spec else ():
        candidate = pathlib.Path(folder, "bin", "ptxas")
        if candidate.exists():
            return str(candidate)
    return shutil.which("ptxas")


@contextlib.contextmanager
def compute_capability(cc):
    """Make numba see a current device of compute capability ``cc`` while compiling.

    numba's CUDA dispatcher asks ``get_current_device().compute_capability`` when it
    compiles a device function for a kernel; with no GPU that call fails. Within this
    block it answers ``cc``; afterwards the lookup is restored.
    """
    from numba.cuda import dispatcher

    original = dispatcher.get_current_device
    dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=cc)
    try:
        yield
    finally:
        dispatcher.get_current_device = original


def kernel_function(source):
    """The numba dispatcher of the kernel that ``source`` (a ``KernelSource``) names: the
    module's attribute, or what the factory returns for the recorded arguments."""
    module = importlib.import_module(source.module)
    if source.factory_args is None:
        return _attribute(module, source.qualname)
    factory_name, _ = source.qualname.split(".<locals>.")
    kernel = _attribute(module, factory_name)(*source.factory_args)
    if kernel.py_func.__qualname__ != source.qualname:
        raise LookupError(
            f"{source.module}.{factory_name} now builds {kernel.py_func.__qualname__}, "
            f"not the recorded {source.qualname}"
        )
    return kernel


def _attribute(module, qualname):
    value = module
    for part in qualname.split("."):
        value = getattr(value, part)
    return value


def compile_ptx(kernel, argtypes, cc):
    """The PTX of ``kernel`` (a numba CUDA dispatcher) for ``argtypes`` and ``cc``."""
    from numba import cuda

    options = {k: v for k, v in kernel.targetoptions.items() if k in COMPILE_OPTIONS}
    with compute_capability(cc):
        ptx, _ = cuda.compile_ptx(kernel.py_func, argtypes, cc=cc, **options)
    return ptx


def assemble(ptx, cc, ptxas, folder):
    """ptxas's verbose report on ``ptx`` for sm_XY, parsed (``parse_ptxas``)."""
    handle, name = tempfile.mkstemp(suffix=".ptx", dir=folder)
    path = pathlib.Path(name)
    with os.fdopen(handle, "w") as file:
        file.write(ptx)
    done = subprocess.run(
        [ptxas, f"-arch=sm_{cc[0]}{cc[1]}", "-v", str(path), "-o", "/dev/null"],
        capture_output=True,
        text=True,
    )
    path.unlink()
    if done.returncode != 0:
        raise RuntimeError(f"ptxas failed: {done.stderr.strip() or done.stdout.strip()}")
    return parse_ptxas(done.stderr + done.stdout)


def parse_ptxas(report):
    """{registers, stack, spill_stores, spill_loads, shared} from ``ptxas -v`` output: the
    entry's registers and shared memory; stack and spills summed over every function."""
    frames = re.findall(
        r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", report
    )
    used = re.search(r"Used (\d+) registers[^\n]*", report)
    if used is None or not frames:
        raise RuntimeError(f"unexpected ptxas report: {report.strip()}")
    shared = re.search(r"(\d+) bytes smem", used.group(0))
    return {
        "registers": int(used.group(1)),
        "stack": sum(int(f[0]) for f in frames),
        "spill_stores": sum(int(f[1]) for f in frames),
        "spill_loads": sum(int(f[2]) for f in frames),
        "shared": int(shared.group(1)) if shared else 0,
    }


def occupancy(registers, shared, threads, cc):
    """(blocks per SM, resident threads per SM) for blocks of ``threads`` threads, each
    thread using ``registers`` registers and each block ``shared`` bytes (module docstring)."""
    register_file, max_warps, max_blocks, shared_per_sm = SM_LIMITS[cc]
    warps = math.ceil(threads / 32)
    warp_registers = math.ceil(32 * max(registers, 1) / REGISTER_UNIT) * REGISTER_UNIT
    blocks = min(
        max_blocks,
        max_warps // warps,
        (register_file // warp_registers) // warps,
        shared_per_sm // (shared + BLOCK_SHARED_RESERVE),
    )
    return blocks, blocks * threads


def measure(recorded):
    """One dict per (specialisation, target) of ``recorded`` ({Specialisation: threads per
    block}): kernel, module, function, signature, threads, cc, and either ptxas's numbers
    with the occupancy (``blocks``, ``resident`` threads per SM) or ``error``, the
    compiler's message. ptxas runs in worker threads beside the next NVVM compilation."""
    ptxas = ptxas_path()
    with (
        tempfile.TemporaryDirectory() as folder,
        concurrent.futures.ThreadPoolExecutor(2) as assemblers,
    ):
        jobs = []
        for spec, threads in sorted(recorded.items(), key=lambda item: _order(item[0])):
            row = {
                "kernel": spec.source.name,
                "module": spec.source.module,
                "function": spec.source.function,
                "signature": spec.signature,
                "threads": threads,
            }
            for cc, ptx in _ptx_for_each_target(spec):
                job = (
                    ptx
                    if isinstance(ptx, dict)
                    else assemblers.submit(assemble, ptx, cc, ptxas, folder)
                )
                jobs.append(({**row, "cc": list(cc)}, job))
        return [_finished(row, job) for row, job in jobs]


def _order(spec):
    return spec.source.name, spec.signature


def _ptx_for_each_target(spec):
    """[(cc, PTX text or {"error": message})] for each target."""
    try:
        kernel = kernel_function(spec.source)
    except Exception as error:  # not found: the same error on every target
        return [(cc, _error(error)) for cc in TARGETS]
    compiled = []
    for cc in TARGETS:
        try:
            compiled.append((cc, compile_ptx(kernel, spec.argtypes, cc)))
        except Exception as error:  # numba's typing, lowering or NVVM error, reported
            compiled.append((cc, _error(error)))
    return compiled


def _error(error):
    return {"error": f"{type(error).__name__}: {error}"}


def _finished(row, job):
    """``row`` with the error, or with ptxas's report and the occupancy it implies."""
    if isinstance(job, dict):
        return {**row, **job}
    try:
        report = job.result()
    except RuntimeError as error:
        return {**row, **_error(error)}
    blocks, resident = occupancy(
        report["registers"], report["shared"], row["threads"], tuple(row["cc"])
    )
    return {**row, **report, "blocks": blocks, "resident": resident}


def main(records_dir, results_json):
    """Compile everything recorded in ``records_dir``; write the results as JSON."""
    import kernel_recording

    reason = missing_compiler()
    if reason is not None:
        pathlib.Path(results_json).write_text(json.dumps({"missing": reason}))
        return
    results = measure(kernel_recording.load(records_dir))
    pathlib.Path(results_json).write_text(json.dumps({"results": results}, indent=1))


def compile_in_new_process(records_dir, timeout=1800):
    """``main`` in a new process without the simulator: {"results": [...]} or
    {"missing": why}. An empty or absent ``records_dir`` only checks the compiler."""
    with tempfile.TemporaryDirectory() as folder:
        results_json = pathlib.Path(folder, "results.json")
        subprocess.run(
            [sys.executable, __file__, str(records_dir), str(results_json)],
            cwd=TESTS.parent,
            env={
                **os.environ,
                "NUMBA_ENABLE_CUDASIM": "0",
                "NUMBA_DISABLE_ERROR_MESSAGE_HIGHLIGHTING": "1",  # plain text in messages
            },
            check=True,
            timeout=timeout,
        )
        return json.loads(results_json.read_text())


if __name__ == "__main__":
    sys.path[:0] = [str(TESTS), str(TESTS.parent)]  # the recorder; this checkout's minimask
    main(*sys.argv[1:])
