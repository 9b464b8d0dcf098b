"""Reference solutions of lesson 09's exercises (lessons/exercises/lesson09.py checks them)."""

import math

import numpy as np


def sgd_step(param, grad, buffer, lr, momentum, weight_decay):
    """One step of SGD with momentum and L2 weight decay, PyTorch's order (dampening 0):
    the decay is added to the gradient, the first buffer is that gradient itself, and the
    learning rate multiplies the buffer. Returns new arrays; the inputs are left as they are."""
    grad = grad + weight_decay * param
    buffer = grad.copy() if buffer is None else momentum * buffer + grad
    return param - lr * buffer, buffer


def learning_rate(cfg, step):
    """The lr of optimizer step ``step`` (0, 1, ...) of a run of ``cfg``: base_lr times the
    linear warm-up factor times gamma to the number of milestones reached."""
    milestones = sorted({max(1, int(f * cfg.max_iters)) for f in cfg.lr_steps})
    if step < cfg.warmup_iters:
        alpha = step / cfg.warmup_iters
        warmup = cfg.warmup_factor * (1 - alpha) + alpha
    else:
        warmup = 1.0
    reached = sum(1 for m in milestones if m <= step)
    return cfg.base_lr * warmup * cfg.lr_gamma**reached


def clip_grad_norm(grads, max_norm):
    """(the total 2-norm of all the gradients as one vector, the gradients scaled by
    min(max_norm / (total + 1e-6), 1)); new arrays, the inputs are left as they are."""
    total = math.sqrt(sum(float(np.sum(g * g)) for g in grads))
    coefficient = min(max_norm / (total + 1e-6), 1.0)
    return total, [g * coefficient for g in grads]


def rank_gradients(w, X, y, world_size):
    """The gradient each of ``world_size`` processes computes for the least-squares loss
    sum_i (x_i . w - y_i)^2 / N: rank r holds a contiguous share of the rows (the first
    N % world_size ranks one more) and divides its sum by N, the whole batch's count."""
    n = len(X)
    grads = []
    for rows in np.array_split(np.arange(n), world_size):
        residual = X[rows] @ w - y[rows]
        grads.append(2.0 * X[rows].T @ residual / n)
    return grads
