"""minimask: an educational Mask R-CNN built from scratch on NumPy and Numba.

The public names follow PyTorch: ``minimask.tensor``, ``minimask.zeros``, ``minimask.no_grad``,
``minimask.nn``, ``minimask.optim``, ...
"""

__version__ = "0.1.0"

# First: numba picks its threading layer when its threads start (the first parallel kernel,
# or numba.set_num_threads), and minimask's choice must come before either.
import minimask.threading_layer  # noqa: F401, I001
from minimask import nn, ops, optim
from minimask.autograd import Tensor, enable_grad, gradcheck, is_grad_enabled, no_grad
from minimask.autograd.dtypes import bool_, float16, float32, float64, int32, int64, uint8
from minimask.autograd.factories import (
    arange,
    full,
    ones,
    ones_like,
    rand,
    randn,
    tensor,
    zeros,
    zeros_like,
)
from minimask.autograd.ops import (
    abs,
    amax,
    amin,
    argmax,
    argmin,
    cat,
    clamp,
    exp,
    flatten,
    gather,
    log,
    log_softmax,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    permute,
    relu,
    reshape,
    sigmoid,
    softmax,
    sort,
    sqrt,
    stack,
    sum,
    tanh,
    topk,
    transpose,
    where,
)
from minimask.autograd.random import manual_seed
from minimask.determinism import are_deterministic_algorithms_enabled, use_deterministic_algorithms
from minimask.serialization import load, save


def __getattr__(name):
    """``minimask.cuda`` on first use, as ``torch.cuda`` is there after ``import torch``:
    ``minimask.cuda.is_available()`` works without importing it by hand, and a plain
    ``import minimask`` does not pay for loading numba's CUDA target."""
    if name == "cuda":
        import importlib

        return importlib.import_module("minimask.cuda")
    raise AttributeError(f"module 'minimask' has no attribute {name!r}")


__all__ = [
    "Tensor",
    "abs",
    "amax",
    "are_deterministic_algorithms_enabled",
    "amin",
    "arange",
    "argmax",
    "argmin",
    "bool_",
    "cat",
    "clamp",
    "enable_grad",
    "exp",
    "flatten",
    "float16",
    "float32",
    "float64",
    "full",
    "gather",
    "gradcheck",
    "int32",
    "int64",
    "is_grad_enabled",
    "load",
    "log",
    "log_softmax",
    "manual_seed",
    "matmul",
    "max",
    "maximum",
    "mean",
    "min",
    "minimum",
    "nn",
    "no_grad",
    "ones",
    "ones_like",
    "ops",
    "optim",
    "permute",
    "rand",
    "randn",
    "relu",
    "reshape",
    "save",
    "sigmoid",
    "softmax",
    "sort",
    "sqrt",
    "stack",
    "sum",
    "tanh",
    "tensor",
    "topk",
    "transpose",
    "uint8",
    "use_deterministic_algorithms",
    "where",
    "zeros",
    "zeros_like",
]
