"""Data-parallel training (minimask/engine/distributed.py, models/loss_normalizer.py).

In one process: the batch split (hand cases), the thread rule, the image-keyed draws, and
the exactness argument itself: two halves of a batch, each normalised by the counts of
the whole batch, give losses and gradients that add up to the whole batch's (float32
tolerance, see below).

Under MPI (``mpiexec -n 2``, real processes, the CLI): 2 ranks x 1 image train as 1 process
x 2 images, step by step and in the final weights; a broken image leaves one rank without
images for a step and the run still equals one process; Ctrl-C then ``--resume`` under MPI
continues exactly; an exception on one rank stops both with a message naming the rank,
and nothing hangs. These need mpi4py and mpiexec (the distributed extra); without them
they skip, except under CI=true, where that is an error.

Tolerances. The two sides add the same float32 terms in another order (a rank sums its
half, then the halves are added), u = 6e-8 per addition: measured loss differences after
12 steps are below 1e-6 relative. Losses: rtol 1e-5; weights after 6 SGD steps with
momentum: rtol 1e-4, atol 1e-5 x the largest |weight| of the tensor (momentum carries each
step's rounding into the next ones, as in test_models_training_matches_torch.py).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import minimask as mm
from minimask.data.coco import PYCOCOTOOLS_NUMPY2_WARNING
from minimask.data.shapes import make_shapes_dataset
from minimask.engine import distributed
from minimask.engine.batches import TrainingBatches
from minimask.engine.checkpoint import read_checkpoint
from minimask.models import MaskRCNN, MaskRCNNConfig
from minimask.models.mask_rcnn import LOSS_NAMES
from minimask.models.sampler import ROI_STREAM, image_generator

pytestmark = pytest.mark.filterwarnings(f"ignore:{PYCOCOTOOLS_NUMPY2_WARNING}:DeprecationWarning")
LOSS_RTOL = 1e-5
WEIGHT_RTOL, WEIGHT_ATOL = 1e-4, 1e-5
WAIT_S = 300


class Ranks:
    """A stand-in world for ``share``: rank r of n."""

    def __init__(self, rank, size):
        self.rank, self.size, self.local_size = rank, size, size


# ------------------------------------------------------------------ in one process
def test_share_splits_the_global_batch_into_contiguous_even_parts():
    """By hand: 5 positions over 2 ranks are [0, 1, 2] and [3, 4]; over 5 ranks one each;
    a batch smaller than the ranks is an error naming both numbers."""
    assert distributed.share(5, Ranks(0, 2)) == [0, 1, 2]
    assert distributed.share(5, Ranks(1, 2)) == [3, 4]
    assert [distributed.share(5, Ranks(r, 5)) for r in range(5)] == [[0], [1], [2], [3], [4]]
    with pytest.raises(ValueError, match="--batch-size 1 .* 2 processes"):
        distributed.share(1, Ranks(0, 2))


def test_threads_per_rank_divides_the_cores_among_the_ranks_of_a_machine():
    """By hand: 16 cores, 4 ranks on the machine -> 4 threads each; 2 cores, 3 ranks -> 1."""
    assert distributed.threads_per_rank(Ranks(0, 4), cpu_count=16) == 4
    assert distributed.threads_per_rank(Ranks(0, 3), cpu_count=2) == 1
    assert distributed.threads_per_rank(distributed.SingleProcess(), cpu_count=2) == 2


def test_without_mpiexec_the_world_is_one_process(monkeypatch):
    """No mpiexec variables, or a job of one rank: SingleProcess, whose sum is the value."""
    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert isinstance(distributed.world(), distributed.SingleProcess)
    monkeypatch.setenv("PMI_SIZE", "1")
    world = distributed.world()
    assert isinstance(world, distributed.SingleProcess)
    np.testing.assert_array_equal(world.sum([3, 4]), [3, 4])


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes_dataset(
        str(tmp_path_factory.mktemp("shapes")), n_train=6, n_val=2, size=64, seed=0
    )


@pytest.fixture(scope="module")
def train_set(shapes):
    from minimask.data.coco import CocoDetection

    return CocoDetection(shapes["train_images"], shapes["train_annotations"])


def test_a_share_of_a_batch_is_those_positions_of_the_whole_batch(train_set):
    """examples(step, [1]) is position 1 of batch ``step`` (same image, same flip, the
    draw key (seed, step, 1)); the draws keyed by it do not depend on the global
    generator (reference: the whole batch's position 1)."""
    batches = TrainingBatches(train_set, 2, seed=4)
    images, targets = batches.examples(3)
    [image], [target] = batches.examples(3, [1])
    np.testing.assert_array_equal(image.numpy(), images[1].numpy())
    assert target["draw_key"] == targets[1]["draw_key"] == (4, 3, 1)
    mm.manual_seed(0)
    first = image_generator(target, ROI_STREAM).permutation(50)
    mm.manual_seed(1)
    np.testing.assert_array_equal(image_generator(target, ROI_STREAM).permutation(50), first)


def _losses_and_grads(model, images, targets, reduce=None):
    """The losses and parameter gradients of one step, in float64 (the model's dtype);
    ``reduce`` replaces each count the loss normaliser asks for."""
    images = [image.to(mm.float64) for image in images]
    model.zero_grad()
    calls = []

    def recorded(count):
        calls.append(count)
        return count if reduce is None else reduce(len(calls) - 1, count)

    model.loss_normalizer.reduce = recorded
    losses = model(images, targets)
    sum(losses[k] for k in LOSS_NAMES).backward()
    model.loss_normalizer.reduce = None
    grads = {n: p.grad.numpy().copy() for n, p in model.named_parameters() if p.grad is not None}
    return {k: losses[k].item() for k in LOSS_NAMES}, grads, calls


def test_halves_normalised_by_the_whole_batch_add_up_to_the_whole_batch(train_set):
    """The exactness argument of loss_normalizer.py, in one process: batch step 0 of 2
    images (keyed draws), then each image alone with every count replaced by the count of
    both halves; the halves' losses and gradients add up to the whole batch's. The argument
    is algebra, so the model runs in float64, where the two sides differ only by summation
    order: losses to 1e-12 relative, gradients to 1e-10 norm-relative (sums of thousands of
    terms through the whole backward), every gradient of the whole batch present. The two
    images sample different numbers of terms, so a half's own count is not half of the
    whole batch's."""
    mm.manual_seed(0)
    model = MaskRCNN(MaskRCNNConfig.tiny(len(train_set.category_ids))).to(mm.float64)
    model.train()
    batches = TrainingBatches(train_set, 2, seed=1, flip_prob=0.0)
    images, targets = batches.examples(0)
    whole, whole_grads, _ = _losses_and_grads(model, images, targets)

    halves = [batches.examples(0, [position]) for position in (0, 1)]
    counts = [_losses_and_grads(model, *half)[2] for half in halves]
    assert len(counts[0]) == model.loss_normalizer.CALLS_PER_STEP
    assert counts[0] != counts[1]  # the two images sample different numbers of terms
    totals = [a + b for a, b in zip(*counts)]
    parts = [_losses_and_grads(model, *half, reduce=lambda i, _: totals[i]) for half in halves]
    for name in LOSS_NAMES:
        added = parts[0][0][name] + parts[1][0][name]
        assert added == pytest.approx(whole[name], rel=1e-12, abs=1e-15), name
    for name, grad in whole_grads.items():
        added = sum(part[1].get(name, 0.0) for part in parts)
        assert np.linalg.norm(added - grad) <= 1e-10 * np.linalg.norm(grad), name


# ------------------------------------------------------------------ under MPI
def _mpiexec():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        mpi = None
    else:
        mpi = shutil.which("mpiexec")
    if mpi is None:
        message = 'no mpi4py or mpiexec: pip install -e ".[distributed]"'
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return mpi


def _train_arguments(shapes, out, *extra):
    return [
        "-m", "minimask", "train", "--train-images", shapes["train_images"],
        "--train-ann", shapes["train_annotations"], "--out", str(out), "--preset", "tiny",
        "--iters", "6", "--batch-size", "2", "--seed", "5", "--checkpoint-period", "100",
        "--quiet", *extra,
    ]  # fmt: skip


def _run(command, **kwargs):
    done = subprocess.run(command, capture_output=True, text=True, timeout=WAIT_S, **kwargs)
    return done


def _single(shapes, out):
    done = _run([sys.executable, *_train_arguments(shapes, out, "--threads", "1")])
    assert done.returncode == 0, done.stderr
    return out


def _two_ranks(shapes, out, *extra):
    return _run([_mpiexec(), "-n", "2", sys.executable, *_train_arguments(shapes, out, *extra)])


def _log(out):
    with open(os.path.join(out, "metrics.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _assert_same_training(one, two, steps=6):
    ours, theirs = _log(two), _log(one)
    assert [r["step"] for r in ours] == [r["step"] for r in theirs] == list(range(steps))
    for mine, reference in zip(ours, theirs):
        assert mine["lr"] == reference["lr"]
        for name in LOSS_NAMES:
            assert mine[name] == pytest.approx(reference[name], rel=LOSS_RTOL), name
    _, weights_two = read_checkpoint(os.path.join(two, "checkpoint.npz"))
    _, weights_one = read_checkpoint(os.path.join(one, "checkpoint.npz"))
    for name, reference in weights_one["model"].items():
        reference, ours = reference.numpy(), weights_two["model"][name].numpy()
        scale = max(np.abs(reference).max(), 1e-30)
        np.testing.assert_allclose(ours, reference, rtol=WEIGHT_RTOL, atol=WEIGHT_ATOL * scale)


@pytest.fixture(scope="module")
def one_process(shapes, tmp_path_factory):
    return _single(shapes, tmp_path_factory.mktemp("one_process"))


def test_two_ranks_of_one_image_train_as_one_process_of_two(shapes, one_process, tmp_path):
    """mpiexec -n 2 with --batch-size 2 against one process with --batch-size 2: the same
    logged losses every step and the same weights after 6 steps (module tolerances);
    rank 0 alone wrote the run folder."""
    out = tmp_path / "two_ranks"
    done = _two_ranks(shapes, out)
    assert done.returncode == 0, done.stderr
    _assert_same_training(one_process, out)
    assert done.stdout.count("trained 6 steps") == 1  # rank 0 reports, rank 1 is quiet


def test_a_rank_without_images_takes_part_and_the_run_still_equals_one_process(shapes, tmp_path):
    """One training image is truncated: in the steps where it is drawn, the rank that
    holds it has nothing to load and joins the sums with zero counts. Reference: one
    process on the same files (it drops the same image from the same batches)."""
    images = tmp_path / "images"
    shutil.copytree(shapes["train_images"], images)
    broken = sorted(os.listdir(images))[2]
    with open(images / broken, "r+b") as f:
        f.truncate(100)
    data = {**shapes, "train_images": str(images)}
    one = _single(data, tmp_path / "one")
    out = tmp_path / "two"
    done = _two_ranks(data, out)
    assert done.returncode == 0, done.stderr
    assert broken in done.stderr
    _assert_same_training(one, out)


def test_ctrl_c_under_mpi_then_resume_continues_exactly(shapes, one_process, tmp_path):
    """SIGINT to mpiexec reaches both ranks; they agree to stop after the same step, rank
    0 saves, the job exits 130 with the resume message once; ``--resume`` under mpiexec
    then finishes the run, equal to the uninterrupted single process."""
    out = tmp_path / "interrupted"
    arguments = _train_arguments(shapes, out, "--iters", "6")
    process = subprocess.Popen(
        [_mpiexec(), "-n", "2", sys.executable, *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = os.path.join(out, "metrics.jsonl")
    deadline = time.monotonic() + WAIT_S
    while not (os.path.exists(log) and len(_log(out)) >= 2):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=WAIT_S)
    assert process.returncode == 130, stderr
    assert stderr.count("--resume") == 1 and "Traceback" not in stderr
    meta, _ = read_checkpoint(os.path.join(out, "checkpoint.npz"))
    assert meta["step"] == len(_log(out)) < 6
    done = _two_ranks(shapes, out, "--resume")
    assert done.returncode == 0, done.stderr
    _assert_same_training(one_process, out)


FAILING_RANK = textwrap.dedent(
    """
    import sys
    from minimask.cli import main
    from minimask.engine import batches, distributed

    original = batches.TrainingBatches.examples

    def examples(self, step, positions=None):
        if step == 2 and distributed.world().rank == 1:
            raise RuntimeError("disk gone")
        return original(self, step, positions)

    batches.TrainingBatches.examples = examples
    sys.exit(main(sys.argv[1:]))
    """
)


def test_an_exception_on_one_rank_stops_every_rank_and_names_it(shapes, tmp_path):
    """Rank 1 raises at step 2 while rank 0 waits in the step's first sum: the job ends
    (no hang: the timeout would fail the test) with a non-zero status and a message naming
    rank 1 and the cause, and no traceback."""
    out = tmp_path / "failing"
    arguments = _train_arguments(shapes, out)[2:]  # without "-m minimask"
    done = _run([_mpiexec(), "-n", "2", sys.executable, "-c", FAILING_RANK, *arguments])
    assert done.returncode != 0
    assert "rank 1 of 2 failed: RuntimeError: disk gone" in done.stderr
    assert "Traceback" not in done.stderr
