"""Loss functions with torch.nn.functional's names, arguments and semantics.

``reduction`` is "none" (one loss per element), "sum", or "mean". Mean is a plain mean
except in cross_entropy, where it is the *weighted* mean PyTorch uses:

    cross_entropy = sum_i w[t_i] * (-log softmax(x_i)[t_i]) / sum_i w[t_i]

over the samples i whose target t_i is not ``ignore_index`` (w = 1 without class weights),
so a batch with every target ignored gives 0 / 0 = nan, as in PyTorch.

How each loss is built, and why:

- cross_entropy, smooth_l1_loss, l1_loss are compositions of autograd ops (log_softmax,
  gather, where, abs, ...). Their gradients are then the ops' gradients, already checked,
  and the composition reads like the formula. At the kinks they follow the ops'
  conventions, which are PyTorch's: abs'(0) = 0, and smooth L1's derivative at
  |x - y| = beta is sign(x - y), the value both branches agree on.
- binary_cross_entropy_with_logits is a Function. Composing its stable form
  max(x, 0) - x t + log(1 + exp(-|x|)) from relu and abs would give the wrong gradient at
  x = 0 exactly: the kinks of max(x, 0) and |x| cancel in the sum, but the ops' conventions
  relu'(0) = abs'(0) = 0 give -t there instead of sigmoid(0) - t = 0.5 - t.

Unlike PyTorch, which only warns, l1_loss and smooth_l1_loss raise an error when input and
target shapes differ: broadcasting them silently is almost always a bug.
"""

import numpy as np

from minimask.autograd import ops
from minimask.autograd.function import Function
from minimask.autograd.ops.operands import common_operands

REDUCTIONS = ("none", "mean", "sum")


def _check_reduction(name, reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _reduce(loss, reduction):
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


def _check_same_shape(name, input, target):
    if input.shape != target.shape:
        raise ValueError(
            f"{name}: target shape {target.shape} must equal the input shape {input.shape}"
        )


def _check_class_targets(input, target, weight, ignore_index):
    """The argument checks of cross_entropy; returns the mask of non-ignored targets."""
    if input.ndim < 2:
        raise ValueError(
            f"cross_entropy: input must be (N, C) or (N, C, d1, ...), got shape {input.shape}"
        )
    if input.dtype.kind != "f":
        raise TypeError(f"cross_entropy: input must be floating point, got {input.dtype}")
    if target.dtype.kind not in "iu":
        raise TypeError(
            f"cross_entropy: target must be an integer tensor of class indices, got "
            f"{target.dtype} (class-probability targets are not supported)"
        )
    expected = (input.shape[0],) + input.shape[2:]
    if target.shape != expected:
        raise ValueError(
            f"cross_entropy: target shape {target.shape} does not fit input shape "
            f"{input.shape}: expected {expected}"
        )
    classes = input.shape[1]
    if weight is not None and weight.shape != (classes,):
        raise ValueError(f"cross_entropy: weight must have shape ({classes},), got {weight.shape}")
    kept = target != ignore_index
    labels = target.numpy()[kept.numpy()]
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        bad = labels[(labels < 0) | (labels >= classes)][0]
        raise IndexError(
            f"cross_entropy: target {bad} is out of bounds for {classes} classes "
            f"(and is not ignore_index={ignore_index})"
        )
    return kept


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """Softmax cross-entropy of logits ``input`` (N, C) or (N, C, d1, ...) against class
    indices ``target`` (N,) or (N, d1, ...), with optional class weights ``weight`` (C,)
    (constants: they receive no gradient, as in PyTorch)."""
    _check_reduction("cross_entropy", reduction)
    kept = _check_class_targets(input, target, weight, ignore_index)
    safe_target = ops.where(kept, target, 0)  # any valid class; ignored samples weigh 0
    log_probs = ops.log_softmax(input, dim=1)
    picked = ops.gather(log_probs, 1, safe_target.unsqueeze(1)).squeeze(1)
    sample_weight = kept.to(input.dtype)
    if weight is not None:
        sample_weight = weight.detach()[safe_target] * sample_weight
    losses = -picked * sample_weight
    if reduction == "mean":
        return losses.sum() / sample_weight.sum()
    return _reduce(losses, reduction)


class BinaryCrossEntropyWithLogits(Function):
    """Elementwise loss(x, t) = max(x, 0) - x t + log(1 + exp(-|x|)), which equals
    -t log sigmoid(x) - (1 - t) log(1 - sigmoid(x)) and never overflows.

        dx = g * (sigmoid(x) - t),     dt = -g * x
    """

    @staticmethod
    def forward(ctx, x, t):
        xp = ctx.xp
        ctx.save_for_backward(x, t)
        return xp.maximum(x, 0) - x * t + xp.log1p(xp.exp(-xp.abs(x)))

    @staticmethod
    def backward(ctx, grad_out):
        x, t = ctx.saved_arrays
        grad_x = grad_out * (ctx.xp.sigmoid(x) - t) if ctx.needs_input_grad[0] else None
        grad_t = -grad_out * x if ctx.needs_input_grad[1] else None
        return grad_x, grad_t


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean"):
    """Binary cross-entropy of logits ``input`` against probabilities ``target`` (same
    shape), each element times ``weight`` (broadcast to the input's shape) if given; the
    weight is a constant that receives no gradient, as in PyTorch."""
    name = "binary_cross_entropy_with_logits"
    _check_reduction(name, reduction)
    _check_same_shape(name, input, target)
    if input.dtype.kind != "f" or target.dtype.kind != "f":
        raise TypeError(
            f"{name}: input and target must be floating point, got {input.dtype} and {target.dtype}"
        )
    if weight is not None and _broadcast_shape(weight.shape, input.shape) != input.shape:
        raise ValueError(
            f"{name}: weight of shape {weight.shape} must broadcast to the input shape "
            f"{input.shape}"
        )
    loss = BinaryCrossEntropyWithLogits.apply(*common_operands(input, target))
    return _reduce(loss if weight is None else loss * weight.detach(), reduction)


def _broadcast_shape(a, b):
    """The shape a and b broadcast to, or None if they do not broadcast."""
    try:
        return np.broadcast_shapes(a, b)
    except ValueError:
        return None


def l1_loss(input, target, reduction="mean"):
    """|input - target| per element, reduced."""
    _check_reduction("l1_loss", reduction)
    _check_same_shape("l1_loss", input, target)
    return _reduce((input - target).abs(), reduction)


def smooth_l1_loss(input, target, beta=1.0, reduction="mean"):
    """Huber-like loss per element, with d = input - target:

        0.5 d^2 / beta   if |d| < beta
        |d| - 0.5 beta   otherwise

    quadratic near 0 (no kink), linear far away (robust to outliers). beta = 0 is l1_loss
    (computed as such: the quadratic branch would divide by 0).
    """
    _check_reduction("smooth_l1_loss", reduction)
    _check_same_shape("smooth_l1_loss", input, target)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta}")
    if beta == 0:
        return l1_loss(input, target, reduction)
    diff = input - target
    abs_diff = diff.abs()
    loss = ops.where(abs_diff < beta, 0.5 * diff * diff / beta, abs_diff - 0.5 * beta)
    return _reduce(loss, reduction)
