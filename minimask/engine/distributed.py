"""Data-parallel training on MPI: N processes, one replica of the model each, one batch.

``mpiexec -n N minimask train ...`` starts N copies of the same command. Each process
(rank r of N) builds the same model from the same seed, takes its share of every global
batch (``share``: contiguous positions of the batch, as even as possible) and, per step:

    losses  = model(its images, their targets)    the counts each loss is averaged over
                                                  are summed over the ranks first
                                                  (models/loss_normalizer.py)
    loss values summed over the ranks             the log line: the whole batch's losses
    backward; gradients summed over the ranks     one Allreduce of one flat buffer
    optimizer.step()                              identical on every rank

Because every count is global, the ranks' losses add up to the loss one process computes on
the whole batch, and so do their gradients: the sum is exact, not an average of per-rank
means (torchvision and detectron2 average per-rank means, which differs whenever the
ranks' counts differ). Every random draw about an image (the samplers', the flip, the
multi-scale size) is keyed by (seed, step, the image's position in the global batch), so it
does not depend on which rank holds the image. N ranks with B / N images each then train
as one process with B images, up to the order of float additions.

Rank 0 alone writes the log, the loss curve and the checkpoints; every rank reads the
checkpoint on ``--resume``. A run on one process (no ``mpiexec``, or ``-n 1``) is exactly
the single-process training, with no MPI import at all.

Failure: an exception on one rank would leave the others waiting in the next collective
for ever, so ``run_on_every_rank`` prints the rank and the cause and calls MPI's Abort,
which stops every rank of the job. A non-finite loss is seen by every rank at once (the
loss values are summed first), so they all stop at the same step, rank 0 having saved the
checkpoint. Ctrl-C reaches every rank; the ranks agree after each step whether one asked
to stop, so they stop together.

Threads: N ranks on one machine share its cores. Each rank uses cores / (ranks on this
machine) threads for Numba and for BLAS by default (``threads_per_rank``).
"""

import os
import sys
import time

import numpy as np

from minimask.autograd.factories import tensor

# mpiexec forwards a rank's output asynchronously, and Abort ends the job at once: wait
# this long after printing why, so the message reaches the terminal.
ABORT_GRACE_S = 1.0
# Set by mpiexec in every process it starts: MPICH's Hydra (PMI_SIZE), Open MPI's.
_WORLD_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")


class SingleProcess:
    """The world of an ordinary run: one rank; every reduction is the value itself."""

    rank, size, local_size = 0, 1, 1

    def sum(self, array):
        return np.asarray(array)

    def abort(self, code):
        raise SystemExit(code)


class MPIWorld:
    """The ranks of an ``mpiexec`` job, through mpi4py's COMM_WORLD."""

    def __init__(self):
        try:
            from mpi4py import MPI
        except ImportError:
            raise SystemExit(
                "minimask: started by mpiexec, but mpi4py is not installed; install the "
                'distributed extra: pip install -e ".[distributed]"'
            ) from None
        self._mpi = MPI
        self.comm = MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.local_size = self.comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size()

    def sum(self, array):
        """The elementwise sum of ``array`` over every rank (a new array, on every rank)."""
        array = np.ascontiguousarray(array)
        if array.dtype == np.bool_:  # MPI has no sum of booleans: count them
            array = array.astype(np.int64)
        out = np.empty_like(array)
        self.comm.Allreduce(array, out, op=self._mpi.SUM)
        return out

    def abort(self, code):
        self.comm.Abort(code)


def world():
    """The MPI world when this process was started by mpiexec with more than one rank,
    else SingleProcess (without importing mpi4py)."""
    sizes = [os.environ.get(name) for name in _WORLD_SIZE_VARIABLES]
    if not any(size not in (None, "", "1") for size in sizes):
        return SingleProcess()
    return MPIWorld()


def share(batch_size, world):
    """The positions of a global batch that ``world.rank`` computes: contiguous, the first
    ``batch_size % size`` ranks one more. Every rank needs at least one image."""
    if batch_size < world.size:
        raise ValueError(
            f"--batch-size {batch_size} is the global batch, split across the {world.size} "
            f"processes: it must be at least {world.size}"
        )
    return np.array_split(np.arange(batch_size), world.size)[world.rank].tolist()


def threads_per_rank(world, cpu_count=None):
    """Numba and BLAS threads for each rank: the machine's cores over its ranks, >= 1."""
    cores = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    return max(1, cores // max(1, world.local_size))


def set_threads(count):
    """Use ``count`` threads in Numba's parallel kernels and in BLAS (threadpoolctl)."""
    import numba
    from threadpoolctl import threadpool_limits

    numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))
    threadpool_limits(limits=count, user_api="blas")


def sum_gradients(parameters, world):
    """Replace each parameter's .grad by its sum over the ranks: one Allreduce of one flat
    buffer per dtype (with a flag per parameter, so a gradient that exists on some ranks
    only, such as the mask head's on a rank with no positive RoI, is summed with zeros
    elsewhere, and one that exists on no rank stays None, as in one process)."""
    parameters = list(parameters)
    present = world.sum(np.array([p.grad is not None for p in parameters], dtype=np.int64))
    by_dtype = {}
    for p, flag in zip(parameters, present):
        if flag:
            by_dtype.setdefault(np.dtype(p.dtype), []).append(p)
    for dtype, group in by_dtype.items():
        flat = np.concatenate(
            [
                (p.grad.numpy() if p.grad is not None else np.zeros(p.shape, dtype)).ravel()
                for p in group
            ]
        )
        total, start = world.sum(flat), 0
        for p in group:
            part = total[start : start + p.numel()].reshape(p.shape)
            start += p.numel()
            p.grad = tensor(part)


def run_on_every_rank(command, world, every_rank_stops=()):
    """``command()`` on this rank; an exception it raises is printed with the rank and,
    in a job of several ranks, stops every rank (MPI Abort) instead of leaving them
    waiting. SystemExit and the exception types in ``every_rank_stops`` (stops that every
    rank reaches at the same step: a non-finite loss, Ctrl-C) pass through."""
    try:
        return command()
    except (SystemExit, *every_rank_stops):
        raise
    except BaseException as error:
        if world.size == 1:
            raise
        print(
            f"minimask: rank {world.rank} of {world.size} failed: "
            f"{type(error).__name__}: {error}; stopping every rank",
            file=sys.stderr,
            flush=True,
        )
        time.sleep(ABORT_GRACE_S)
        world.abort(1)
