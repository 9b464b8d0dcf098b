"""Reference solutions of lesson 01's exercises (lessons/exercises/lesson01.py checks them)."""

import numpy as np

from minimask.autograd import Function


class Tanh(Function):
    """y = tanh(x); dy/dx = 1 - y^2, so the backward needs only the output."""

    @staticmethod
    def forward(ctx, x):
        y = ctx.xp.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        (y,) = ctx.saved_arrays
        return grad_out * (1 - y * y)


def unbroadcast(grad, shape):
    """Sum the dims broadcasting added in front, then the dims where ``shape`` has 1."""
    grad = grad.sum(axis=tuple(range(grad.ndim - len(shape))))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=stretched, keepdims=True)


def topological_order(root):
    """Depth-first: a tensor is appended after all its inputs, then the list is reversed."""
    order, seen = [], set()

    def visit(tensor):
        if id(tensor) in seen:
            return
        seen.add(id(tensor))
        for parent in tensor.grad_fn.inputs if tensor.grad_fn is not None else ():
            if parent.requires_grad:
                visit(parent)
        order.append(tensor)

    visit(root)
    return order[::-1]


def numerical_gradient(f, x, eps):
    """(f(x + eps e_i) - f(x - eps e_i)) / (2 eps) for every element i of x."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        saved = x[i]
        x[i] = saved + eps
        above = f(x)
        x[i] = saved - eps
        below = f(x)
        x[i] = saved
        grad[i] = (above - below) / (2 * eps)
    return grad
