"""The random state behind ``randn``, ``rand`` and ``nn.init``: one NumPy Generator.

``minimask.manual_seed(n)`` resets it, so a seeded script draws the same numbers every
run, whatever the device (numbers are drawn on the host, then moved).
"""

import numpy as np

_generator = np.random.default_rng(0)


def manual_seed(seed):
    """Reset the global random state to ``seed``."""
    global _generator
    _generator = np.random.default_rng(int(seed))
    return _generator


def default_generator():
    return _generator
