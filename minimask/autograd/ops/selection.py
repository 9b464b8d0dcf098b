"""Elementwise choices between two tensors: maximum, minimum and where.

    maximum(a, b): da = g * ([a > b] + [a == b] / 2),  db = g * ([b > a] + [a == b] / 2)
    minimum(a, b): the same with < in place of >
    where(c, a, b): da = g * c,  db = g * (not c);  the condition gets no gradient

At a tie, maximum and minimum split the gradient evenly between the two inputs, as PyTorch
does: the derivative is not defined there, and the even split is the symmetric choice.
"""

from minimask.autograd.function import Function
from minimask.autograd.ops.operands import as_tensor, check_broadcast, common_operands


def _split_at_ties(ctx, grad_out, a_wins):
    a, b = ctx.saved_arrays
    half = grad_out * (a == b) * 0.5
    grad_a = grad_out * a_wins + half
    grad_b = grad_out * ctx.xp.logical_not(a_wins) * (a != b) + half
    return grad_a.astype(a.dtype, copy=False), grad_b.astype(b.dtype, copy=False)


class Maximum(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return ctx.xp.maximum(a, b)

    @staticmethod
    def backward(ctx, grad_out):
        a, b = ctx.saved_arrays
        return _split_at_ties(ctx, grad_out, a > b)


class Minimum(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return ctx.xp.minimum(a, b)

    @staticmethod
    def backward(ctx, grad_out):
        a, b = ctx.saved_arrays
        return _split_at_ties(ctx, grad_out, a < b)


class Where(Function):
    @staticmethod
    def forward(ctx, condition, a, b):
        ctx.save_for_backward(condition)
        return ctx.xp.where(condition, a, b)

    @staticmethod
    def backward(ctx, grad_out):
        (condition,) = ctx.saved_arrays
        return None, grad_out * condition, grad_out * ctx.xp.logical_not(condition)


def maximum(a, b):
    return Maximum.apply(*check_broadcast("maximum", *common_operands(a, b)))


def minimum(a, b):
    return Minimum.apply(*check_broadcast("minimum", *common_operands(a, b)))


def where(condition, a, b):
    """Elements of ``a`` where ``condition`` holds, else of ``b`` (all three broadcast)."""
    a, b = common_operands(a, b)
    condition = as_tensor(condition, a.device)
    if condition.dtype.kind != "b":
        raise TypeError(f"where: condition must be a bool tensor, got {condition.dtype}")
    return Where.apply(*check_broadcast("where", condition, a, b))
