"""Whether kernels must give bit-identical results run after run.

Some backward kernels scatter many contributions into one gradient cell. On a GPU the
fastest way is one thread per contribution with atomic adds; the order in which those
adds land changes from run to run, and float addition is not associative, so the last
bits of the gradient change too. A deterministic kernel instead gives each output cell one
owner that adds its contributions in a fixed order: slower on a GPU, identical every run.

minimask defaults to the deterministic kernels (``use_deterministic_algorithms(True)``):
students compare CPU and CUDA runs, and a resumed training run must continue exactly.
Turn it off to use the atomic-add kernels (for RoIAlign the one the Mask R-CNN paper's
implementation uses) for speed on a GPU. CPU kernels are deterministic either way.

The switch picks the CUDA backward kernels of RoIAlign and RoIPool
(``minimask/cuda/roi_align.py``, ``roi_pool.py``: one thread per (n, c) plane) and of
``max_pool2d`` and ``interpolate`` (``minimask/cuda/pooling.py``, ``interpolate.py``: one
thread per input element). Each deterministic kernel adds its terms in the order of its
CPU twin. The backward of indexing (``index_add``, ``scatter_add_along_axis`` in
``minimask/cuda/array/``) adds with atomics either way, so a gradient summed over a
repeated index may still differ in its last bits from run to run on a GPU.
"""

_deterministic = True


def use_deterministic_algorithms(mode):
    """Choose deterministic (True, the default) or atomic-add (False) backward kernels."""
    global _deterministic
    _deterministic = bool(mode)


def are_deterministic_algorithms_enabled():
    return _deterministic
