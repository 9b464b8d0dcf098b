"""Which CUDA backward kernels of max_pool2d and interpolate a test ran.

``minimask.use_deterministic_algorithms`` picks, for each of these backward passes, a
deterministic kernel or an atomic-add one (minimask/cuda/pooling.py, interpolate.py). In
numba's simulator the atomic adds may well land in a fixed order, so a result that is the
same on two runs does not show by itself that the deterministic kernel ran; the tests
record the launches instead. ``record_backward_launches(monkeypatch)`` replaces each of
the kernels by a wrapper that appends the kernel's name to a list, then launches it.
"""

import importlib

BACKWARD_KERNELS = {
    "pooling": ["_scatter_to_argmax", "_scatter_to_argmax_atomic"],
    "interpolate": [
        "_nearest_scatter",
        "_nearest_scatter_atomic",
        "_bilinear_scatter",
        "_bilinear_scatter_atomic",
    ],
}


class RecordedKernel:
    """A CUDA kernel that notes its name in ``log`` at each launch, ``kernel[grid](...)``."""

    def __init__(self, kernel, name, log):
        self.kernel, self.name, self.log = kernel, name, log

    def __getitem__(self, launch_configuration):
        launch = self.kernel[launch_configuration]

        def run(*args):
            self.log.append(self.name)
            return launch(*args)

        return run


def record_backward_launches(monkeypatch):
    """The list the backward kernels of minimask/cuda/pooling.py and interpolate.py append
    their names to when they run (until ``monkeypatch`` undoes the wrapping)."""
    log = []
    for module_name, kernel_names in BACKWARD_KERNELS.items():
        module = importlib.import_module(f"minimask.cuda.{module_name}")
        for name in kernel_names:
            monkeypatch.setattr(module, name, RecordedKernel(getattr(module, name), name, log))
    return log
