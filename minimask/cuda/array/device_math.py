"""The scalar math functions that kernels call: ``math``'s on a GPU, NumPy's in the simulator.

On a GPU, ``math.exp`` and friends compile to CUDA's IEEE functions: ``log(0)`` is -inf,
``exp(1000)`` is inf, ``sqrt(-1)`` is nan. The simulator instead runs a kernel as plain
Python, where ``math.log(0)`` raises ValueError and ``math.exp(1000)`` OverflowError.
NumPy's functions behave like the GPU's (and keep float32 as float32), so the simulator
uses them. Kernels import these names from here and never see the difference.
"""

from numba import config

if config.ENABLE_CUDASIM:
    from numpy import exp, log, log1p, sqrt, tanh  # noqa: F401
else:
    from math import exp, log, log1p, sqrt, tanh  # noqa: F401
