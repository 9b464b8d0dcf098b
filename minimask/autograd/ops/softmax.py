"""softmax and log_softmax along a dim, computed after subtracting the max (so exp never
overflows), with their backward (y the output, g = dL/dy):

    softmax:      dx = y * (g - sum(g * y, dim))
    log_softmax:  dx = g - exp(y) * sum(g, dim)
"""

from minimask.autograd.function import Function
from minimask.autograd.ops.dims import normalize_dim


class Softmax(Function):
    @staticmethod
    def forward(ctx, x, dim):
        exps = ctx.xp.exp(x - x.max(axis=dim, keepdims=True))
        y = exps / exps.sum(axis=dim, keepdims=True)
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, grad_out):
        (y,) = ctx.saved_arrays
        return y * (grad_out - (grad_out * y).sum(axis=ctx.dim, keepdims=True))


class LogSoftmax(Function):
    @staticmethod
    def forward(ctx, x, dim):
        shifted = x - x.max(axis=dim, keepdims=True)
        y = shifted - ctx.xp.log(ctx.xp.exp(shifted).sum(axis=dim, keepdims=True))
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, grad_out):
        (y,) = ctx.saved_arrays
        return grad_out - ctx.xp.exp(y) * grad_out.sum(axis=ctx.dim, keepdims=True)


def softmax(x, dim):
    """A 0-d tensor is one element along its only "dim": its softmax is 1."""
    dim = normalize_dim(dim, x.ndim)
    if x.ndim == 0:
        return softmax(x.reshape(1), 0).reshape(())
    return Softmax.apply(x, dim=dim)


def log_softmax(x, dim):
    dim = normalize_dim(dim, x.ndim)
    if x.ndim == 0:
        return log_softmax(x.reshape(1), 0).reshape(())
    return LogSoftmax.apply(x, dim=dim)
