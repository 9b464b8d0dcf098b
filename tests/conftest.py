"""Shared test settings.

Hypothesis profiles: "dev" (default, 50 examples) and "ci" (selected with
HYPOTHESIS_PROFILE=ci: fewer examples, derandomized so a CI run is reproducible).
No deadline in either: the first call of a Numba kernel compiles it, which is slow.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "dev", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
