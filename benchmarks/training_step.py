"""The one training step the benchmarks time and count: the trainer's step for one process
(``minimask.engine.trainer``), without its log, checks and checkpoints."""

from minimask.models.mask_rcnn import LOSS_NAMES


def sgd_step(model, optimizer, images, targets, scheduler=None):
    """Forward, the five loss values read as the trainer's log reads them, backward of their
    sum, one optimizer step (and one scheduler step); returns the loss values."""
    losses = model(images, targets)
    values = [losses[k].item() for k in LOSS_NAMES]
    sum(losses[k] for k in LOSS_NAMES).backward()
    optimizer.step()
    optimizer.zero_grad()
    if scheduler is not None:
        scheduler.step()
    return values
