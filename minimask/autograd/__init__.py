"""Reverse-mode automatic differentiation on backend arrays.

Tensor (tensor.py) -> Function (function.py) -> the backward engine (engine.py);
every operation is a Function in ops/; gradcheck.py compares a Function's backward with
central differences.
"""

from minimask.autograd.function import Context, Function
from minimask.autograd.grad_mode import enable_grad, is_grad_enabled, no_grad
from minimask.autograd.gradcheck import gradcheck
from minimask.autograd.tensor import Tensor

__all__ = [
    "Context",
    "Function",
    "Tensor",
    "enable_grad",
    "gradcheck",
    "is_grad_enabled",
    "no_grad",
]
