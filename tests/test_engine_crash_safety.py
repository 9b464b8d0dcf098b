"""Crash-safe training, tried on real processes: `minimask train` killed with SIGKILL after
some steps and while it writes a checkpoint, and stopped with Ctrl-C (SIGINT). Each time
the checkpoint on disk loads, and `--resume` reproduces the uninterrupted run's losses
exactly (reference: the same command run once without interruption; bitwise equality of
every logged loss and learning rate)."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from minimask.data import make_shapes_dataset
from minimask.data.coco import PYCOCOTOOLS_NUMPY2_WARNING
from minimask.engine.checkpoint import read_checkpoint

pytestmark = [
    pytest.mark.filterwarnings(f"ignore:{PYCOCOTOOLS_NUMPY2_WARNING}:DeprecationWarning"),
    pytest.mark.skipif(os.name != "posix", reason="POSIX signals"),
]

STEPS = 8
WAIT_S = 240

# Runs the CLI with numpy.savez slowed down on the second checkpoint: it writes half of
# the file, leaves a marker and sleeps, so the test can kill the process mid-write.
HALF_WRITTEN_CHECKPOINT = textwrap.dedent(
    """
    import io, os, sys, time
    import numpy as np
    real_savez, calls = np.savez, []
    def savez(file, **arrays):
        calls.append(1)
        if len(calls) != 2:
            return real_savez(file, **arrays)
        buffer = io.BytesIO()
        real_savez(buffer, **arrays)
        data = buffer.getvalue()
        file.write(data[: len(data) // 2])
        file.flush()
        open(os.environ["MARKER"], "w").close()
        time.sleep(600)
    np.savez = savez
    from minimask.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes_dataset(
        str(tmp_path_factory.mktemp("shapes")), n_train=6, n_val=2, size=64, seed=0
    )


def _arguments(shapes, out):
    return [
        "train", "--train-images", shapes["train_images"], "--train-ann",
        shapes["train_annotations"], "--out", str(out), "--preset", "tiny", "--iters",
        str(STEPS), "--checkpoint-period", "2", "--seed", "5", "--quiet",
    ]  # fmt: skip


def _cli(*arguments):
    return [sys.executable, "-m", "minimask", *arguments]


def _losses(out):
    with open(os.path.join(out, "metrics.jsonl"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def _wait_for(condition, process):
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the training process made no progress"
        time.sleep(0.05)


def _logged_steps(out):
    path = os.path.join(out, "metrics.jsonl")
    return len(_losses(out)) if os.path.exists(path) else 0


@pytest.fixture(scope="module")
def reference(shapes, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    subprocess.run(_cli(*_arguments(shapes, out)), check=True, capture_output=True)
    losses = _losses(out)
    assert [r["step"] for r in losses] == list(range(STEPS))
    return losses


def _resume_and_compare(shapes, out, reference):
    done = subprocess.run(_cli(*_arguments(shapes, out), "--resume"), capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    assert _losses(out) == reference


@pytest.mark.parametrize("after_steps", [3, 6])
def test_sigkill_after_some_steps_then_resume(shapes, reference, tmp_path, after_steps):
    out = tmp_path / "run"
    process = subprocess.Popen(_cli(*_arguments(shapes, out)), stderr=subprocess.PIPE)
    _wait_for(lambda: _logged_steps(out) >= after_steps, process)
    process.kill()
    process.wait()
    meta, _ = read_checkpoint(os.path.join(out, "checkpoint.npz"))
    assert meta["step"] <= _logged_steps(out)
    _resume_and_compare(shapes, out, reference)


def test_sigkill_while_a_checkpoint_is_written_then_resume(shapes, reference, tmp_path):
    """The second checkpoint (after step 4) is half written when the process dies: the
    first one (2 steps) is still whole and the run resumes from it."""
    out = tmp_path / "run"
    marker = tmp_path / "writing"
    process = subprocess.Popen(
        [sys.executable, "-c", HALF_WRITTEN_CHECKPOINT, *_arguments(shapes, out)],
        env={**os.environ, "MARKER": str(marker)},
        stderr=subprocess.PIPE,
    )
    _wait_for(marker.exists, process)
    process.kill()
    process.wait()
    meta, _ = read_checkpoint(os.path.join(out, "checkpoint.npz"))
    assert meta["step"] == 2
    _resume_and_compare(shapes, out, reference)


def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(shapes, reference, tmp_path):
    out = tmp_path / "run"
    process = subprocess.Popen(_cli(*_arguments(shapes, out)), stderr=subprocess.PIPE)
    _wait_for(lambda: _logged_steps(out) >= 3, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=WAIT_S)
    message = stderr.decode()
    assert process.returncode == 130, message
    assert "--resume" in message and "Traceback" not in message
    meta, _ = read_checkpoint(os.path.join(out, "checkpoint.npz"))
    assert meta["step"] == _logged_steps(out) < STEPS
    _resume_and_compare(shapes, out, reference)
