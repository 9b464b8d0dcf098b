"""The training loop: SGD with momentum and weight decay, linear warm-up, step decay.

    for step in start .. max_iters - 1:
        images, targets = batches[step]              (batches.py: a function of seed, step)
        losses = model(images, targets)              the five loss terms
        stop if a term is NaN or inf                 (checkpoint saved first, see below)
        sum(losses).backward(); optimizer.step(); optimizer.zero_grad(); scheduler.step()
        append {"step", "lr", "loss", terms, "seconds"} to RUN/metrics.jsonl
        every checkpoint_period steps and at the end: RUN/checkpoint.npz (atomic)
    RUN/loss_curve.png from the log

Weight decay applies to every parameter, GroupNorm's and the biases included (PyTorch's
and torchvision's reference scripts do the same; detectron2 exempts the norm layers).

Resuming (``resume=True``) loads RUN/checkpoint.npz: weights, momentum buffers, scheduler
counter, the global generator (the samplers' draws) and the step, drops log lines of later
steps, and continues; the losses are then the same as in one uninterrupted run with the
same seed (tested). A non-finite loss raises ``NonFiniteLossError`` naming the step and
every term, after saving RUN/checkpoint_nonfinite.npz with the state that produced it.
"""

import json
import math
import os
import time

from tqdm import tqdm

import minimask
from minimask.engine.batches import TrainingBatches
from minimask.engine.checkpoint import read_checkpoint, restore_generator, save_checkpoint
from minimask.models.mask_rcnn import LOSS_NAMES, MaskRCNN
from minimask.optim import SGD
from minimask.optim.lr_scheduler import WarmupMultiStepLR

CHECKPOINT_NAME = "checkpoint.npz"
NONFINITE_CHECKPOINT_NAME = "checkpoint_nonfinite.npz"
LOG_NAME = "metrics.jsonl"
LOSS_CURVE_NAME = "loss_curve.png"


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
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [r for r in rows if r["step"] < before_step]


def train(cfg, dataset, out_dir, device="cpu", resume=False, progress=True):
    """Train a MaskRCNN(cfg) on ``dataset`` into the folder ``out_dir``; returns a summary
    dict (steps, seconds, last losses, paths). See the module docstring."""
    os.makedirs(out_dir, exist_ok=True)
    checkpoint_path = os.path.join(out_dir, CHECKPOINT_NAME)
    log_path = os.path.join(out_dir, LOG_NAME)
    minimask.manual_seed(cfg.seed)
    model = MaskRCNN(cfg).to(device)
    optimizer, scheduler = make_optimizer(model, cfg)
    meta = dataset_meta(dataset)
    start = 0
    if resume:
        if not os.path.exists(checkpoint_path):
            raise FileNotFoundError(f"--resume: no checkpoint at {checkpoint_path}")
        saved, parts = read_checkpoint(checkpoint_path)
        current = json.loads(json.dumps(cfg.to_dict()))  # tuples as the saved JSON has them
        if saved["config"] != current:
            changed = sorted(k for k, v in current.items() if saved["config"].get(k) != v)
            raise ValueError(f"--resume: the run in {out_dir} used other settings: {changed}")
        model.load_state_dict(parts["model"])
        optimizer.load_state_dict(parts["optimizer"])
        scheduler.load_state_dict(parts["scheduler"])
        restore_generator(saved)
        start = int(saved["step"])
    rows = _read_log(log_path, start)
    with open(log_path, "w", encoding="utf-8") as log:
        log.writelines(json.dumps(r) + "\n" for r in rows)

    batches = TrainingBatches(dataset, cfg.batch_size, cfg.seed, cfg.horizontal_flip_prob)
    model.train()
    began = time.perf_counter()
    last = {}
    bar = tqdm(
        range(start, cfg.max_iters),
        initial=start,
        total=cfg.max_iters,
        desc="train",
        disable=not progress,
        dynamic_ncols=True,
    )
    with open(log_path, "a", encoding="utf-8") as log:
        for step in bar:
            tic = time.perf_counter()
            images, targets = batches[step]
            done = step + 1
            save_now = done % cfg.checkpoint_period == 0 or done == cfg.max_iters
            if not images:  # every image of this batch failed to load (warned already)
                scheduler.step()
                if save_now:
                    save_checkpoint(checkpoint_path, model, done, meta, optimizer, scheduler)
                continue
            images = [image.to(device) for image in images]
            targets = [_to_device(t, device) for t in targets]
            losses = model(images, targets)
            values = {k: losses[k].item() for k in LOSS_NAMES}
            if not all(math.isfinite(v) for v in values.values()):
                path = os.path.join(out_dir, NONFINITE_CHECKPOINT_NAME)
                save_checkpoint(path, model, step, meta, optimizer, scheduler)
                raise NonFiniteLossError(step, values, path)
            total = sum(losses[k] for k in LOSS_NAMES)
            lr = optimizer.param_groups[0]["lr"]
            total.backward()
            optimizer.step()
            optimizer.zero_grad()
            scheduler.step()
            last = {"step": step, "lr": lr, "loss": sum(values.values()), **values}
            last["seconds"] = time.perf_counter() - tic
            log.write(json.dumps(last) + "\n")
            log.flush()
            terms = {k.removeprefix("loss_"): f"{v:.3f}" for k, v in values.items()}
            bar.set_postfix(terms, refresh=False)  # redrawn at tqdm's own interval
            if save_now:
                save_checkpoint(checkpoint_path, model, done, meta, optimizer, scheduler)
    bar.close()
    curve = os.path.join(out_dir, LOSS_CURVE_NAME)
    _save_loss_curve(log_path, curve)
    return {
        "steps": cfg.max_iters - start,
        "seconds": time.perf_counter() - began,
        "last": last,
        "checkpoint": checkpoint_path,
        "log": log_path,
        "loss_curve": curve,
    }


def _to_device(target, device):
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in target.items()}


def _save_loss_curve(log_path, png_path):
    from minimask.viz import draw_loss_curves, save_figure

    save_figure(draw_loss_curves(log_path), png_path)
