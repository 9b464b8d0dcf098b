"""The geometry both backends share: one definition of every index and coordinate formula.

A CPU kernel (``minimask/cpu/``, ``@numba.njit``) and its CUDA twin (``minimask/cuda/``,
``numba.cuda.jit``) must agree on where RoIAlign samples, which cells a bilinear sample
reads, how RoIPool rounds a box and how large a convolution's output is. Each of those
formulas is written once, here, as a plain Python function of scalars:

- ``roi_align.py``: a box's RoIAlign grid (``roi_geometry``), the position of one sample
  (``sample_position``), the border rule (``outside_map``) and the bilinear corners and
  weights (``bilinear_corners``);
- ``roi_pool.py``: C's rounding (``round_half_away_from_zero``) and the cells of one
  RoIPool bin (``roi_pool_bin``);
- ``conv.py``: the output size of a convolution and of a transposed convolution, and the
  outputs whose input index falls inside the map (``valid_output_range``).

The functions are decorated with numba's ``register_jitable``: they stay ordinary Python
functions (``minimask.viz`` calls them to draw what a kernel does, and a test can step
through them), and numba compiles them into whichever kernel calls them, an ``@njit`` CPU
kernel or a ``cuda.jit`` GPU kernel. This is minitorch's ``to_index =
cuda.jit(device=True)(to_index)`` done once for both backends, and it works for helpers
that call each other (``roi_pool_bin`` calls ``round_half_away_from_zero``).

``error_model="numpy"``: a float division by zero gives inf or NaN instead of raising, so
the compiler drops the zero checks (every divisor here is positive).

Numba's on-disk cache (``cache=True`` on the CPU kernels) is keyed by the kernel's own
file. After editing a function here, delete the ``__pycache__`` folders of
``minimask/cpu/`` (or touch the kernel files) so that the CPU kernels are compiled again.
"""

from minimask.geometry.conv import (
    conv2d_output_size,
    conv_transpose2d_output_size,
    valid_output_range,
)
from minimask.geometry.roi_align import (
    bilinear_corners,
    outside_map,
    roi_geometry,
    sample_position,
)
from minimask.geometry.roi_pool import roi_pool_bin, round_half_away_from_zero

__all__ = [
    "bilinear_corners",
    "conv2d_output_size",
    "conv_transpose2d_output_size",
    "outside_map",
    "roi_geometry",
    "roi_pool_bin",
    "round_half_away_from_zero",
    "sample_position",
    "valid_output_range",
]
