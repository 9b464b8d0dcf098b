"""Learning-rate schedules: ``MultiStepLR`` and ``WarmupMultiStepLR`` (detectron2's).

A scheduler sets ``group["lr"]`` of every param group of an optimizer from the group's
base learning rate (the lr the group had when the scheduler was made, kept as
``group["initial_lr"]``) and an iteration counter ``last_epoch``:

    lr = base_lr * factor(last_epoch)      (``get_lr()``)

Call ``scheduler.step()`` once per iteration, after ``optimizer.step()``. As in PyTorch,
making the scheduler already counts iteration 0 (``last_epoch = 0``), so the first
optimizer step uses ``base_lr * factor(0)``. The lr is computed from ``base_lr`` each time
(the closed form), so a change made to group["lr"] by hand lasts until the next step().

    MultiStepLR:        factor(i) = gamma ** (number of milestones <= i)
    WarmupMultiStepLR:  the same, times a warm-up factor during the first warmup_iters:
                          linear:   warmup_factor * (1 - i / warmup_iters) + i / warmup_iters
                          constant: warmup_factor
                        (1 from iteration warmup_iters on), so the lr ramps from
                        base_lr * warmup_factor up to base_lr. Detectron2's defaults.

``state_dict()`` holds the counter and the base lrs (str -> number or tuple), which
``minimask.save`` writes; ``load_state_dict`` accepts it back, also after
``minimask.load``, and sets the optimizer's lrs to those of the restored iteration.
"""

from bisect import bisect_right

from minimask.optim.optimizer import _as_python


class LRScheduler:
    """Base class: subclasses define ``get_lr()``."""

    def __init__(self, optimizer, last_epoch=-1):
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for g, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"param group {g} has no 'initial_lr': resuming with last_epoch="
                        f"{last_epoch} needs the optimizer state of a scheduled run"
                    )
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def get_lr(self):
        """The learning rate of each group at iteration ``last_epoch``."""
        raise NotImplementedError

    def step(self):
        """Advance one iteration and set every group's lr."""
        self.last_epoch += 1
        self._set_lrs()

    def _set_lrs(self):
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self):
        """The learning rates the last step() set (one per param group)."""
        return list(self._last_lr)

    def state_dict(self):
        """The scheduler's state: the iteration counter and the base lrs. Its settings
        (milestones, gamma, warm-up) are not included: like a model's architecture,
        they come from the constructor (PyTorch saves them too; leaving them out lets a
        resumed run change its schedule)."""
        return {"last_epoch": self.last_epoch, "base_lrs": tuple(self.base_lrs)}

    def load_state_dict(self, state_dict):
        """Restore the counter and the base lrs, and set the optimizer's lrs to those of
        the restored iteration (so the order of loading optimizer and scheduler does not
        matter: resuming continues exactly)."""
        unexpected = set(state_dict) - {"last_epoch", "base_lrs"}
        if unexpected or "last_epoch" not in state_dict:
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: expected keys 'last_epoch' and "
                f"'base_lrs', got {sorted(state_dict)}"
            )
        self.last_epoch = int(_as_python(state_dict["last_epoch"]))
        if "base_lrs" in state_dict:
            base_lrs = _as_python(state_dict["base_lrs"], as_list=True)
            if len(base_lrs) != len(self.optimizer.param_groups):
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: {len(base_lrs)} base lrs for "
                    f"{len(self.optimizer.param_groups)} param groups"
                )
            self.base_lrs = [float(lr) for lr in base_lrs]
        self._set_lrs()


def _check_milestones(milestones):
    milestones = list(milestones)
    if milestones != sorted(milestones):
        raise ValueError(f"milestones must be increasing, got {milestones}")
    return milestones


class MultiStepLR(LRScheduler):
    """lr = base_lr * gamma ** (number of milestones reached)."""

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        self.milestones = _check_milestones(milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        decay = self.gamma ** bisect_right(self.milestones, self.last_epoch)
        return [base_lr * decay for base_lr in self.base_lrs]


class WarmupMultiStepLR(LRScheduler):
    """Detectron2's schedule: a warm-up ramp over ``warmup_iters``, then MultiStepLR."""

    def __init__(
        self,
        optimizer,
        milestones,
        gamma=0.1,
        warmup_factor=0.001,
        warmup_iters=1000,
        warmup_method="linear",
        last_epoch=-1,
    ):
        if warmup_method not in ("linear", "constant"):
            raise ValueError(f"warmup_method must be 'linear' or 'constant', got {warmup_method!r}")
        self.milestones = _check_milestones(milestones)
        self.gamma = gamma
        self.warmup_factor = warmup_factor
        self.warmup_iters = warmup_iters
        self.warmup_method = warmup_method
        super().__init__(optimizer, last_epoch)

    def warmup(self, iteration):
        if iteration >= self.warmup_iters:
            return 1.0
        if self.warmup_method == "constant":
            return self.warmup_factor
        alpha = iteration / self.warmup_iters
        return self.warmup_factor * (1 - alpha) + alpha

    def get_lr(self):
        # base_lr * warmup * decay, multiplied in detectron2's order (same rounding)
        warmup = self.warmup(self.last_epoch)
        decay = self.gamma ** bisect_right(self.milestones, self.last_epoch)
        return [base_lr * warmup * decay for base_lr in self.base_lrs]
