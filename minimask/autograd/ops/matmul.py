"""Matrix product with NumPy/PyTorch semantics (batched, broadcasting batch dims).

    y = a @ b:  da = g @ b^T,  db = a^T @ g   (^T swaps the last two dims; the engine sums
                                                away broadcast batch dims)
A 1-d operand is treated as a row (left) or column (right) vector and that dim is dropped
from the result, as in torch.matmul.
"""

import numpy as np

from minimask.autograd.function import Function
from minimask.autograd.ops.operands import common_operands


class Matmul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return ctx.xp.matmul(a, b)

    @staticmethod
    def backward(ctx, grad_out):
        a, b = ctx.saved_arrays
        matmul = ctx.xp.matmul
        grad_a = matmul(grad_out, b.swapaxes(-1, -2)) if ctx.needs_input_grad[0] else None
        grad_b = matmul(a.swapaxes(-1, -2), grad_out) if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


def matmul(a, b):
    a, b = common_operands(a, b)
    shapes = f"{a.shape} and {b.shape}"
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError(f"matmul: both operands need at least 1 dim, got shapes {shapes}")
    vector_a, vector_b = a.ndim == 1, b.ndim == 1
    if vector_a:
        a = a.unsqueeze(0)
    if vector_b:
        b = b.unsqueeze(-1)
    if a.shape[-1] != b.shape[-2]:
        raise RuntimeError(
            f"matmul: shapes {shapes} cannot be multiplied "
            f"({a.shape[-1]} columns against {b.shape[-2]} rows)"
        )
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise RuntimeError(
            f"matmul: shapes {shapes}: batch dims {a.shape[:-2]} and {b.shape[:-2]} "
            "do not broadcast"
        ) from None
    out = Matmul.apply(a, b)
    if vector_a:
        out = out.squeeze(-2)
    if vector_b:
        out = out.squeeze(-1)
    return out
