"""Shared test settings.

Hypothesis profiles: "dev" (default, 50 examples), "ci" (selected with
HYPOTHESIS_PROFILE=ci: fewer examples, derandomized so a CI run is reproducible) and
"fuzz" (HYPOTHESIS_PROFILE=fuzz: 2000 examples a test, for a long run by hand, e.g. of
tests/test_data_fuzz.py). No deadline in any: the first call of a Numba kernel compiles
it, which is slow.

OMP_WAIT_POLICY=passive (set before torch is imported): PyTorch's OpenMP threads otherwise
spin after each torch call and starve Numba's threads on a 2-core machine, which made
tests that alternate torch and minimask calls up to 100x slower.

NUMBA_ENABLE_CUDASIM=1 (set before numba is imported) on a machine with no NVIDIA device:
the CUDA kernels then run in numba's simulator, one Python thread per GPU thread, which is
why the CUDA tests use tiny shapes. With a GPU present the same tests run on it.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "passive")
if not os.path.exists("/dev/nvidiactl"):
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
if os.environ.get("MINIMASK_RECORD_KERNELS"):  # the recording run of tests/test_cuda_compile.py
    from kernel_recording import record_launches

    record_launches(os.environ["MINIMASK_RECORD_KERNELS"])

from hypothesis import HealthCheck, settings  # noqa: E402

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
settings.register_profile(
    "fuzz", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
