"""Record every kernel specialisation the CUDA tests launch in numba's simulator.

A specialisation is what numba compiles once on a GPU: one kernel and one tuple of
argument types. The simulator compiles nothing, so ``tests/test_cuda_compile.py`` runs the
CUDA tests in the simulator with this recorder on, and compiles what it recorded for real
GPUs in a second process (``tests/kernel_compilation.py``): the simulator replaces
``numba.cuda`` for the whole process, so both cannot happen in one.

That second process must find each kernel again, as a Python function:

- a module-level kernel (``@cuda.jit def roi_pool_forward_kernel``) by its module and
  qualified name;
- a kernel that a factory builds (``_zip_kernel("add", float32)`` returns a closure
  around ``f`` and ``cast``) by calling the factory again with the same arguments. When a
  kernel is decorated inside a function, the recorder reads that function's arguments
  from its frame (``FakeCUDAKernel.__init__``). The factories are ``functools.cache``-d
  functions of hashable arguments (names, dtypes, flags): the arguments pickle, and the
  same arguments build the same kernel.

At each launch (``FakeCUDAKernel.__call__``) the recorder types every argument with
``numba.typeof``, as numba's dispatcher does on a GPU, and notes the threads per block a
GPU launch would use: ``launch.grid(n)`` launches one warp in the simulator but blocks of
up to ``THREADS_PER_BLOCK`` on a GPU, so a launch configured by ``grid`` (the recorder
wraps it and recognises the very tuple it returned) counts as a full block of
``THREADS_PER_BLOCK`` threads, the block of every large launch; a
kernel that chooses its own block (the matmul tile, NMS's tile, the tree reduction) is
launched with the same block in the simulator and on a GPU.

On: ``MINIMASK_RECORD_KERNELS=DIR`` (tests/conftest.py then calls
``record_launches(DIR)``); each process writes ``DIR/kernels-<pid>.pkl`` when it exits, so
that pytest-xdist workers would not overwrite each other, and ``load(DIR)`` merges them.
``run_cuda_tests(DIR)`` runs the CUDA tests in a new process with the recorder on.
"""

import atexit
import dataclasses
import functools
import inspect
import os
import pathlib
import pickle
import subprocess
import sys

TESTS = pathlib.Path(__file__).resolve().parent


@dataclasses.dataclass(frozen=True)
class KernelSource:
    """Where a kernel's Python function comes from: ``module.qualname`` for a module-level
    kernel; for one built by a factory, ``qualname`` is ``factory.<locals>.kernel`` and
    ``factory_args`` the positional arguments the factory was called with."""

    module: str
    qualname: str
    factory_args: tuple | None = None

    @property
    def function(self):
        """The kernel function's own name (``zip_kernel``, ``roi_align_forward_kernel``)."""
        return self.qualname.rsplit(".", 1)[-1]

    @property
    def name(self):
        """A readable name: ``module.kernel`` or ``module.factory(args).kernel``."""
        if self.factory_args is None:
            return f"{self.module}.{self.qualname}"
        factory, kernel = self.qualname.split(".<locals>.")
        args = ", ".join(_readable(a) for a in self.factory_args)
        return f"{self.module}.{factory}({args}).{kernel}"


@dataclasses.dataclass(frozen=True)
class Specialisation:
    """One kernel and one tuple of numba argument types: one compilation on a GPU."""

    source: KernelSource
    argtypes: tuple

    @property
    def signature(self):
        return "(" + ", ".join(str(t) for t in self.argtypes) + ")"


def _readable(value):
    """Factory arguments as a reader writes them: dtypes by name, strings quoted."""
    dtype_name = getattr(value, "name", None)
    return dtype_name if isinstance(dtype_name, str) else repr(value)


def _factory_source(fn):
    """The ``KernelSource`` of a kernel function decorated inside a factory, from the
    factory's frame (the frame whose code holds ``fn``'s code); None at module level."""
    if "<locals>" not in fn.__qualname__:
        return None
    frame = inspect.currentframe()
    while frame is not None and fn.__code__ not in frame.f_code.co_consts:
        frame = frame.f_back
    if frame is None:
        raise RuntimeError(f"no factory frame found for the kernel {fn.__qualname__}")
    code = frame.f_code
    if code.co_kwonlyargcount or code.co_flags & (inspect.CO_VARARGS | inspect.CO_VARKEYWORDS):
        raise RuntimeError(
            f"the factory of {fn.__qualname__} takes keyword-only or variable arguments; "
            "the recorder rebuilds kernels from positional arguments only"
        )
    args = tuple(frame.f_locals[name] for name in code.co_varnames[: code.co_argcount])
    return KernelSource(fn.__module__, fn.__qualname__, args)


class _Recorder:
    """Patches the simulator's kernel class and ``launch.grid``; keeps, per specialisation,
    the largest number of threads per block a GPU launch of it would use."""

    def __init__(self, directory):
        self.path = pathlib.Path(directory) / f"kernels-{os.getpid()}.pkl"
        self.threads = {}  # Specialisation -> threads per block
        self.last_grid = None  # the tuple launch.grid returned last
        self.gpu_threads_per_block = None  # launch.THREADS_PER_BLOCK, once imported

    def install(self):
        from numba.cuda.simulator.kernel import FakeCUDAKernel

        self._wrap_kernel_class(FakeCUDAKernel)
        import minimask.cuda  # noqa: F401  (every module that imports launch.grid)
        from minimask.cuda.array import launch

        self._wrap_grid(launch)
        self.gpu_threads_per_block = launch.THREADS_PER_BLOCK
        atexit.register(self.write)

    def _wrap_grid(self, launch):
        original = launch.grid

        @functools.wraps(original)
        def grid(n):
            self.last_grid = original(n)
            return self.last_grid

        for module in list(sys.modules.values()):
            if getattr(module, "__name__", "").startswith("minimask.") and (
                getattr(module, "grid", None) is original
            ):
                module.grid = grid

    def _wrap_kernel_class(self, kernel_class):
        recorder = self
        original_init = kernel_class.__init__
        original_getitem = kernel_class.__getitem__
        original_call = kernel_class.__call__

        def __init__(kernel, fn, device, *args, **kwargs):
            original_init(kernel, fn, device, *args, **kwargs)
            if not device:
                kernel.recorded_source = _factory_source(fn) or KernelSource(
                    fn.__module__, fn.__qualname__
                )

        def __getitem__(kernel, configuration):
            configured = original_getitem(kernel, configuration)
            if configuration is recorder.last_grid:
                kernel.gpu_threads_per_block = recorder.gpu_threads_per_block
            else:
                x, y, z = configured.block_dim
                kernel.gpu_threads_per_block = x * y * z
            return configured

        def __call__(kernel, *args):
            from numba.cuda.simulator.kernel import _get_kernel_context

            if not kernel._device and _get_kernel_context() is None:
                recorder.launched(kernel, args)
            return original_call(kernel, *args)

        kernel_class.__init__ = __init__
        kernel_class.__getitem__ = __getitem__
        kernel_class.__call__ = __call__

    def launched(self, kernel, args):
        import numba

        source = getattr(kernel, "recorded_source", None)
        if source is None:
            raise RuntimeError(
                f"the kernel {kernel.fn.__qualname__} was built before the recorder started"
            )
        key = Specialisation(source, tuple(numba.typeof(a) for a in args))
        self.threads[key] = max(self.threads.get(key, 0), kernel.gpu_threads_per_block)

    def write(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(pickle.dumps(self.threads))


def record_launches(directory):
    """Record every kernel launch of this process into ``directory`` (see the module
    docstring). Call it before the tests run, with ``NUMBA_ENABLE_CUDASIM=1``."""
    _Recorder(directory).install()


def load(directory):
    """{Specialisation: threads per block} from every process that recorded into
    ``directory`` (the largest block where two processes launched the same one)."""
    threads = {}
    for path in sorted(pathlib.Path(directory).glob("kernels-*.pkl")):
        for key, count in pickle.loads(path.read_bytes()).items():
            threads[key] = max(threads.get(key, 0), count)
    return threads


def cuda_test_files():
    """tests/test_cuda_*.py except test_cuda_compile.py, which runs them."""
    return [p for p in sorted(TESTS.glob("test_cuda_*.py")) if p.name != "test_cuda_compile.py"]


def run_cuda_tests(directory, timeout=1800):
    """Run the CUDA tests in numba's simulator, one process, recording into ``directory``;
    the ``subprocess.CompletedProcess`` (stdout and stderr together, as text)."""
    env = {**os.environ, "MINIMASK_RECORD_KERNELS": str(directory), "NUMBA_ENABLE_CUDASIM": "1"}
    command = [sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-q"]
    return subprocess.run(
        command + [str(p) for p in cuda_test_files()],
        cwd=TESTS.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
