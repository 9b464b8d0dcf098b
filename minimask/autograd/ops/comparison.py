"""Comparisons and logical operations: bool results, no gradient (they are piecewise
constant: their derivative is zero almost everywhere, so nothing flows back)."""

from minimask.autograd.device import backend_for
from minimask.autograd.ops.operands import as_tensor, check_broadcast, common_operands
from minimask.autograd.tensor import Tensor


def _compare(name, a, b):
    a, b = check_broadcast(name.strip("_"), *common_operands(a, b))
    return Tensor(getattr(a.data, name)(b.data), a.device)


def eq(a, b):
    return _compare("__eq__", a, b)


def ne(a, b):
    return _compare("__ne__", a, b)


def lt(a, b):
    return _compare("__lt__", a, b)


def le(a, b):
    return _compare("__le__", a, b)


def gt(a, b):
    return _compare("__gt__", a, b)


def ge(a, b):
    return _compare("__ge__", a, b)


def _logical(name, *values):
    device = next(v.device for v in values if isinstance(v, Tensor))
    tensors = check_broadcast(name, *(as_tensor(v, device) for v in values))
    return Tensor(getattr(backend_for(device), name)(*(t.data for t in tensors)), device)


def logical_and(a, b):
    return _logical("logical_and", a, b)


def logical_or(a, b):
    return _logical("logical_or", a, b)


def logical_not(a):
    return _logical("logical_not", a)
