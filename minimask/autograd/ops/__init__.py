"""Every differentiable operation on Tensors, one family a file."""

from minimask.autograd.ops import indexing  # noqa: F401  (Tensor.__setitem__ uses its index rules)
from minimask.autograd.ops.arithmetic import add, div, mul, neg, pow, sub
from minimask.autograd.ops.cast import cast
from minimask.autograd.ops.comparison import (
    eq,
    ge,
    gt,
    le,
    logical_and,
    logical_not,
    logical_or,
    lt,
    ne,
)
from minimask.autograd.ops.elementwise import abs, clamp, exp, log, relu, sigmoid, sqrt, tanh
from minimask.autograd.ops.indexing import gather, getitem
from minimask.autograd.ops.join import cat, stack
from minimask.autograd.ops.matmul import matmul
from minimask.autograd.ops.reduction import amax, amin, argmax, argmin, max, mean, min, sum
from minimask.autograd.ops.selection import maximum, minimum, where
from minimask.autograd.ops.shape import (
    expand,
    flatten,
    permute,
    reshape,
    squeeze,
    transpose,
    unsqueeze,
)
from minimask.autograd.ops.softmax import log_softmax, softmax
from minimask.autograd.ops.sorting import sort, topk

__all__ = [
    "abs",
    "add",
    "amax",
    "amin",
    "argmax",
    "argmin",
    "cast",
    "cat",
    "clamp",
    "div",
    "eq",
    "exp",
    "expand",
    "flatten",
    "gather",
    "ge",
    "getitem",
    "gt",
    "le",
    "log",
    "log_softmax",
    "logical_and",
    "logical_not",
    "logical_or",
    "lt",
    "matmul",
    "max",
    "maximum",
    "mean",
    "min",
    "minimum",
    "mul",
    "ne",
    "neg",
    "permute",
    "pow",
    "relu",
    "reshape",
    "sigmoid",
    "softmax",
    "sort",
    "sqrt",
    "squeeze",
    "stack",
    "sub",
    "sum",
    "tanh",
    "topk",
    "transpose",
    "unsqueeze",
    "where",
]
