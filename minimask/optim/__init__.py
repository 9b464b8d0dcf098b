"""Optimizers (``SGD``, ``Adam``) and learning-rate schedules (``lr_scheduler``), with
PyTorch's names and update rules. Gradient clipping is ``minimask.nn.utils.clip_grad_norm_``,
where PyTorch keeps it."""

from minimask.optim import lr_scheduler
from minimask.optim.adam import Adam
from minimask.optim.optimizer import Optimizer
from minimask.optim.sgd import SGD

__all__ = ["SGD", "Adam", "Optimizer", "lr_scheduler"]
