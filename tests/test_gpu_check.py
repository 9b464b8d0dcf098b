"""benchmarks/gpu_check.py, the one command for a machine with an NVIDIA GPU, checked here
without one: it refuses to run with no GPU (and in the simulator without --toy), and its
toy run in numba's simulator goes through every stage (the CUDA tests, the ops, a training
step on cuda and on cpu, a short demo training) and writes the table. The toy's numbers are
the simulator's; what this test checks is that the script works end to end and that cuda
and cpu agree (the script's own comparisons, which set its exit status). The toy run takes
a few minutes of simulated training steps."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
HAS_GPU = os.path.exists("/dev/nvidiactl")


def _run(args, simulator, timeout):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    if simulator:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.skipif(HAS_GPU, reason="a GPU is here: gpu_check.py would run in full")
def test_without_a_gpu_it_says_so_and_exits_1(tmp_path):
    done = _run(["--out", str(tmp_path / "t.md")], simulator=False, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no NVIDIA GPU" in done.stdout and "Traceback" not in done.stderr
    assert not (tmp_path / "t.md").exists()


def test_in_the_simulator_it_wants_toy(tmp_path):
    done = _run(["--out", str(tmp_path / "t.md")], simulator=True, timeout=300)
    assert done.returncode == 1 and "add --toy" in done.stdout, done.stdout + done.stderr


def test_a_toy_run_in_the_simulator_writes_every_row(tmp_path):
    out = tmp_path / "gpu_check.md"
    args = ["--toy", "--steps", "1", "--repeats", "0", "--out", str(out)]
    args += ["--tests", "tests/test_cuda_stats.py"]
    done = _run(args, simulator=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    table = out.read_text()
    for row in (
        "| device | numba's CUDA simulator",
        "| CUDA tests | ",
        "| roi_align fwd ms |",
        "| roi_align fwd+bwd ms |",
        "| nms ms |",
        "| training step ms, 2 images (the first step, compiling) |",
        "| training step: launches, allocations |",
        "| demo training, 1 steps: s/step |",
        "| memory: allocator, cache hits, misses | simulator",
    ):
        assert row in table, f"no row {row!r} in\n{table}"
    assert "DISAGREE" not in table
    assert "passed" in table.split("| CUDA tests | ")[1].split("\n")[0]
