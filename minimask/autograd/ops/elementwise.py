"""Elementwise functions of one tensor and their derivatives (y = f(x), g = dL/dy):

exp:      dx = g * y
log:      dx = g / x
sqrt:     dx = g / (2 y)
abs:      dx = g * sign(x)            (sign(0) = 0, so abs'(0) = 0 as in PyTorch)
relu:     dx = g * (x > 0)            (relu'(0) = 0, as in PyTorch)
sigmoid:  dx = g * y * (1 - y)
tanh:     dx = g * (1 - y**2)
clamp:    dx = g * (min <= x <= max)  (the bounds themselves pass the gradient)
"""

import numbers

from minimask.autograd.function import Function


class Exp(Function):
    @staticmethod
    def forward(ctx, x):
        y = ctx.xp.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        (y,) = ctx.saved_arrays
        return grad_out * y


class Log(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.log(x)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_arrays
        return grad_out / x


class Sqrt(Function):
    @staticmethod
    def forward(ctx, x):
        y = ctx.xp.sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        (y,) = ctx.saved_arrays
        return grad_out / (2 * y)


class Abs(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.abs(x)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_arrays
        return grad_out * ctx.xp.sign(x)


class Relu(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.maximum(x, 0)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_arrays
        return grad_out * (x > 0)


class Sigmoid(Function):
    @staticmethod
    def forward(ctx, x):
        y = ctx.xp.sigmoid(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        (y,) = ctx.saved_arrays
        return grad_out * y * (1 - y)


class Tanh(Function):
    @staticmethod
    def forward(ctx, x):
        y = ctx.xp.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        (y,) = ctx.saved_arrays
        return grad_out * (1 - y * y)


class Clamp(Function):
    @staticmethod
    def forward(ctx, x, min, max):
        ctx.save_for_backward(x)
        ctx.min, ctx.max = min, max
        y = x
        if min is not None:
            y = ctx.xp.maximum(y, min)
        if max is not None:
            y = ctx.xp.minimum(y, max)
        return y.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_arrays
        inside = ctx.xp.ones(x.shape, dtype=bool)
        if ctx.min is not None:
            inside = ctx.xp.logical_and(inside, x >= ctx.min)
        if ctx.max is not None:
            inside = ctx.xp.logical_and(inside, x <= ctx.max)
        return grad_out * inside


def exp(x):
    return Exp.apply(x)


def log(x):
    return Log.apply(x)


def sqrt(x):
    return Sqrt.apply(x)


def abs(x):
    return Abs.apply(x)


def relu(x):
    return Relu.apply(x)


def sigmoid(x):
    return Sigmoid.apply(x)


def tanh(x):
    return Tanh.apply(x)


def clamp(x, min=None, max=None):
    """Limit ``x`` to [min, max] (either bound may be None), as torch.clamp."""
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    if not all(bound is None or isinstance(bound, numbers.Real) for bound in (min, max)):
        raise TypeError(
            "clamp: min and max must be numbers; for tensor bounds use "
            "minimask.maximum / minimask.minimum"
        )
    return Clamp.apply(x, min=min, max=max)
