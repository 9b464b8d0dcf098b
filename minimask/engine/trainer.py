"""The training loop: SGD with momentum and weight decay, linear warm-up, step decay.

    for step in start .. max_iters - 1:
        images, targets = batches[step]              (batches.py: a function of seed, step)
        losses = model(images, targets)              the five loss terms
        stop if a term is NaN or inf                 (checkpoint saved first, see below)
        sum(losses).backward(); optimizer.step(); optimizer.zero_grad(); scheduler.step()
        append {"step", "lr", "loss", terms, "seconds"} to RUN/metrics.jsonl
        every checkpoint_period steps and at the end: RUN/checkpoint.npz (atomic)
    RUN/loss_curve.png from the log

Data-parallel training (``mpiexec -n N minimask train``, engine/distributed.py): each
process computes its share of every batch with the counts of the whole batch, the loss
values and the gradients are summed over the processes before the NaN check and the
optimizer step, and rank 0 alone writes the log, the curve and the checkpoints. With one
process none of this runs.

Weight decay applies to every parameter, GroupNorm's and the biases included (PyTorch's
and torchvision's reference scripts do the same; detectron2 exempts the norm layers).

Resuming (``resume=True``) loads RUN/checkpoint.npz: weights, momentum buffers, scheduler
counter, the global generator (the samplers' draws) and the step, drops log lines of later
steps, and continues; the losses are then the same as in one uninterrupted run with the
same seed (tested). A non-finite loss raises ``NonFiniteLossError`` naming the step and
every term, after saving RUN/checkpoint_nonfinite.npz with the state that produced it.

Ctrl-C (SIGINT) does not cut a step in half: the step that is running finishes, its log
line is written, RUN/checkpoint.npz is saved after it, and ``TrainingInterrupted`` says
where; ``--resume`` then continues exactly. A second Ctrl-C stops at once. A process
killed outright (SIGKILL, a power cut) loses at most the steps since the last checkpoint:
checkpoints are written atomically, so the previous one is always whole.
"""

import json
import math
import os
import signal
import sys
import threading
import time

from tqdm import tqdm

import minimask
from minimask.engine.batches import TrainingBatches
from minimask.engine.checkpoint import read_checkpoint, restore_generator, save_checkpoint
from minimask.engine.distributed import SingleProcess, share, sum_gradients
from minimask.io.loss_log import read_loss_log
from minimask.models.config import MaskRCNNConfig
from minimask.models.mask_rcnn import LOSS_NAMES, MaskRCNN
from minimask.optim import SGD
from minimask.optim.lr_scheduler import WarmupMultiStepLR

CHECKPOINT_NAME = "checkpoint.npz"
NONFINITE_CHECKPOINT_NAME = "checkpoint_nonfinite.npz"
LOG_NAME = "metrics.jsonl"
LOSS_CURVE_NAME = "loss_curve.png"


class TrainingInterrupted(Exception):
    """Training stopped on Ctrl-C after ``step`` steps, saved in ``checkpoint``."""

    def __init__(self, step, checkpoint):
        self.step, self.checkpoint = step, checkpoint
        super().__init__(
            f"interrupted after step {step}; {checkpoint} holds the run up to there. "
            "Continue it with the same command and --resume."
        )


class _StopOnInterrupt:
    """While training, the first SIGINT only asks the loop to stop at the end of the step
    (``requested``); a second one raises KeyboardInterrupt at once. Outside the main thread
    (where Python delivers no signals) it does nothing."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_interrupt)
        return self

    def _on_interrupt(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after this step (Ctrl-C again to stop at once)", file=sys.stderr)

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


class NonFiniteLossError(FloatingPointError):
    """Training stopped on a NaN or inf loss; ``step``, ``losses`` and ``checkpoint`` say
    where, which terms, and where the state was saved."""

    def __init__(self, step, losses, checkpoint):
        self.step, self.losses, self.checkpoint = step, losses, checkpoint
        terms = ", ".join(f"{k}={v}" for k, v in losses.items())
        super().__init__(
            f"non-finite loss at step {step}: {terms}; the model and optimizer state that "
            f"produced it are saved in {checkpoint}"
        )


def dataset_meta(dataset):
    """The category map a checkpoint keeps, so predictions can be named and mapped back."""
    return {
        "category_ids": [int(c) for c in dataset.category_ids],
        "class_names": list(dataset.class_names),
    }


def make_optimizer(model, cfg):
    """SGD(momentum, weight decay) and WarmupMultiStepLR with milestones at the fractions
    cfg.lr_steps of cfg.max_iters (detectron2's schedule)."""
    optimizer = SGD(
        model.parameters(), lr=cfg.base_lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    milestones = sorted({max(1, int(f * cfg.max_iters)) for f in cfg.lr_steps})
    scheduler = WarmupMultiStepLR(
        optimizer,
        milestones,
        gamma=cfg.lr_gamma,
        warmup_factor=cfg.warmup_factor,
        warmup_iters=cfg.warmup_iters,
    )
    return optimizer, scheduler


def _read_log(path, before_step):
    """The log records of the steps before ``before_step`` (none if there is no log)."""
    if not os.path.exists(path):
        return []
    return [r for r in read_loss_log(path) if r["step"] < before_step]


def _resume(checkpoint_path, cfg, model, optimizer, scheduler):
    """Load RUN/checkpoint.npz into the model, optimizer, scheduler and the global
    generator; returns the step to continue from. A checkpoint of other settings is
    refused with the differing fields; a field the checkpoint does not have (one added to
    the config after it was written) counts as its default, the value the run had."""
    if not os.path.exists(checkpoint_path):
        raise FileNotFoundError(f"--resume: no checkpoint at {checkpoint_path}")
    saved, parts = read_checkpoint(checkpoint_path)
    try:
        saved_config = MaskRCNNConfig.from_dict(saved["config"]).to_dict()
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"--resume: {checkpoint_path} holds a config minimask cannot read: {error}"
        ) from None
    # Both through JSON, so that tuples compare as the lists the file has.
    saved_config, current = (json.loads(json.dumps(c)) for c in (saved_config, cfg.to_dict()))
    if saved_config != current:
        changed = sorted(k for k, v in current.items() if saved_config.get(k) != v)
        run = os.path.dirname(checkpoint_path)
        raise ValueError(
            f"--resume: {checkpoint_path} is a checkpoint of another configuration; the run "
            f"in {run} used other settings: {changed}"
        )
    model.load_state_dict(parts["model"])
    optimizer.load_state_dict(parts["optimizer"])
    scheduler.load_state_dict(parts["scheduler"])
    restore_generator(saved)
    return int(saved["step"])


class _Run:
    """What one training run writes to: the model, its optimizer and schedule, the run
    folder's paths and the dataset's category map; ``world``, the processes it runs on
    (engine/distributed.py), of which rank 0 alone writes files."""

    def __init__(self, cfg, model, optimizer, scheduler, out_dir, meta, world):
        self.cfg, self.model = cfg, model
        self.optimizer, self.scheduler = optimizer, scheduler
        self.out_dir, self.meta = out_dir, meta
        self.world = world
        self.writes = world.rank == 0
        self.checkpoint_path = os.path.join(out_dir, CHECKPOINT_NAME)

    def save(self, done, path=None):
        """Checkpoint after ``done`` steps (atomic) at ``path`` (RUN/checkpoint.npz)."""
        if not self.writes:
            return
        path = self.checkpoint_path if path is None else path
        save_checkpoint(path, self.model, done, self.meta, self.optimizer, self.scheduler)

    def step(self, step, images, targets, device):
        """One SGD step on this process's share of a batch; returns the log record (without
        its time) of the whole batch. A NaN or inf loss term saves
        RUN/checkpoint_nonfinite.npz (the state that produced it) and raises. A process
        whose share is empty (its images failed to load) still takes part in every sum."""
        losses = None
        if images:
            images = [image.to(device) for image in images]
            targets = [to_device(t, device) for t in targets]
            losses = self.model(images, targets)
            values = {k: losses[k].item() for k in LOSS_NAMES}
        else:
            self.model.loss_normalizer.skip_step()
            values = dict.fromkeys(LOSS_NAMES, 0.0)
        if self.world.size > 1:
            totals = self.world.sum([values[k] for k in LOSS_NAMES])
            values = {k: float(v) for k, v in zip(LOSS_NAMES, totals)}
        if not all(math.isfinite(v) for v in values.values()):
            path = os.path.join(self.out_dir, NONFINITE_CHECKPOINT_NAME)
            self.save(step, path)
            raise NonFiniteLossError(step, values, path)
        lr = self.optimizer.param_groups[0]["lr"]
        if losses is not None:
            sum(losses[k] for k in LOSS_NAMES).backward()
        if self.world.size > 1:
            sum_gradients(self.model.parameters(), self.world)
        self.optimizer.step()
        self.optimizer.zero_grad()
        self.scheduler.step()
        return {"step": step, "lr": lr, "loss": sum(values.values()), **values}


def _progress_bar(start, total, progress):
    return tqdm(
        range(start, total),
        initial=start,
        total=total,
        desc="train",
        disable=not progress,
        dynamic_ncols=True,
    )


def _open_log(path, mode, writes):
    """The log file of rank 0; elsewhere a sink (only rank 0 writes files)."""
    return open(path, mode, encoding="utf-8") if writes else open(os.devnull, mode)


def train(cfg, dataset, out_dir, device="cpu", resume=False, progress=True, world=None):
    """Train a MaskRCNN(cfg) on ``dataset`` into the folder ``out_dir``; returns a summary
    dict (steps, seconds, last losses, paths). See the module docstring. ``world``: the
    processes of a data-parallel run (engine/distributed.py), one process by default."""
    world = SingleProcess() if world is None else world
    if world.size > 1 and device != "cpu":
        raise ValueError("data-parallel training (mpiexec) runs on the CPU; drop --device")
    positions = share(cfg.batch_size, world)
    os.makedirs(out_dir, exist_ok=True)
    log_path = os.path.join(out_dir, LOG_NAME)
    minimask.manual_seed(cfg.seed)
    model = MaskRCNN(cfg).to(device)
    if world.size > 1:
        model.loss_normalizer.reduce = lambda count: world.sum([count])[0]
    optimizer, scheduler = make_optimizer(model, cfg)
    run = _Run(cfg, model, optimizer, scheduler, out_dir, dataset_meta(dataset), world)
    start = _resume(run.checkpoint_path, cfg, model, optimizer, scheduler) if resume else 0
    rows = _read_log(log_path, start)
    with _open_log(log_path, "w", run.writes) as log:
        log.writelines(json.dumps(r) + "\n" for r in rows)

    batches = TrainingBatches(
        dataset, cfg.batch_size, cfg.seed, cfg.horizontal_flip_prob, cfg.min_size_train
    )
    model.train()
    began = time.perf_counter()
    last = {}
    bar = _progress_bar(start, cfg.max_iters, progress and run.writes)
    log = _open_log(log_path, "a", run.writes)
    with log, _StopOnInterrupt() as stop:
        for step in bar:
            tic = time.perf_counter()
            images, targets = batches.examples(step, positions)
            done = step + 1
            loaded = len(images) if world.size == 1 else world.sum([len(images)])[0]
            if loaded:
                last = run.step(step, images, targets, device)
                last["seconds"] = time.perf_counter() - tic  # loading included
                log.write(json.dumps(last) + "\n")
                log.flush()
                terms = {k.removeprefix("loss_"): f"{last[k]:.3f}" for k in LOSS_NAMES}
                bar.set_postfix(terms, refresh=False)  # redrawn at tqdm's own interval
            else:  # every image of this batch failed to load (warned already)
                scheduler.step()
            stopping = stop.requested if world.size == 1 else world.sum([stop.requested])[0] > 0
            if done % cfg.checkpoint_period == 0 or done == cfg.max_iters or stopping:
                run.save(done)
            if stopping and done < cfg.max_iters:
                bar.close()
                raise TrainingInterrupted(done, run.checkpoint_path)
    bar.close()
    curve = os.path.join(out_dir, LOSS_CURVE_NAME)
    if run.writes:
        _save_loss_curve(log_path, curve)
    return {
        "steps": cfg.max_iters - start,
        "seconds": time.perf_counter() - began,
        "last": last,
        "checkpoint": run.checkpoint_path,
        "log": log_path,
        "loss_curve": curve,
    }


def to_device(target, device):
    """A target dict with its tensors moved to ``device`` (other values as they are)."""
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in target.items()}


def _save_loss_curve(log_path, png_path):
    from minimask.viz import draw_loss_curves, save_figure

    save_figure(draw_loss_curves(log_path), png_path)
