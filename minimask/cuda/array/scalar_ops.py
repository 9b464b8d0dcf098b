"""The scalar operations of the elementwise kernels, as plain Python functions.

``_add(a, b): return a + b`` is all an operation is: ``elementwise.py`` compiles it as a
CUDA device function and builds a kernel around it, one thread per output element. Each
name maps to its function and to the NumPy ufunc whose dtype rule the result follows
(``UNARY``, ``BINARY``). NaN rules are NumPy's (``maximum`` lets a NaN win, ``sign`` keeps
it). The math functions come from ``device_math`` (IEEE results on a GPU and in the
simulator alike).

They live apart from the kernels so that the kernel file reads as the three kernel shapes
and their launch, and apart from ``functions.py`` (the backend names ``abs``, ``exp``, ...),
whose ``abs`` would shadow the builtin that ``_absolute`` calls.
"""

import numpy as np

from minimask.cuda.array import device_math


def _identity(a):
    return a


def _negative(a):
    return -a


def _absolute(a):
    return abs(a)


def _sign(a):
    if a > 0:
        return 1
    if a < 0:
        return -1
    return a  # 0 stays 0, NaN stays NaN


def _exp(a):
    return device_math.exp(a)


def _log(a):
    return device_math.log(a)


def _log1p(a):
    return device_math.log1p(a)


def _sqrt(a):
    return device_math.sqrt(a)


def _tanh(a):
    return device_math.tanh(a)


def _sigmoid(a):
    # with e = exp(-|a|) <= 1, neither branch can overflow. A float32 one: numba types
    # the literal 1 as int64, and int64 + float32 as float64, which would run the add and
    # the division of a float32 sigmoid in float64 (1/32 to 1/64 of float32's rate on
    # consumer GPUs); a float32 one with a float64 e is float64, as a float64 input needs.
    e = device_math.exp(-abs(a))
    one = np.float32(1)
    if a >= 0:
        return one / (one + e)
    return e / (one + e)


def _logical_not(a):
    return not a


def _invert(a):
    return ~a


def _add(a, b):
    return a + b


def _subtract(a, b):
    return a - b


def _multiply(a, b):
    return a * b


def _true_divide(a, b):
    return a / b


def _floor_divide(a, b):
    return a // b


def _remainder(a, b):
    return a % b


def _power(a, b):
    return a**b


def _maximum(a, b):
    return a if (a > b or a != a) else b  # a NaN on either side wins


def _minimum(a, b):
    return a if (a < b or a != a) else b


def _equal(a, b):
    return a == b


def _not_equal(a, b):
    return a != b


def _less(a, b):
    return a < b


def _less_equal(a, b):
    return a <= b


def _greater(a, b):
    return a > b


def _greater_equal(a, b):
    return a >= b


def _logical_and(a, b):
    return bool(a) and bool(b)


def _logical_or(a, b):
    return bool(a) or bool(b)


def _bitwise_and(a, b):
    return a & b


def _bitwise_or(a, b):
    return a | b


def _bitwise_xor(a, b):
    return a ^ b


# name -> (function, the NumPy ufunc whose dtype rule it follows)
UNARY = {
    "copy": (_identity, np.positive),
    "negative": (_negative, np.negative),
    "absolute": (_absolute, np.absolute),
    "sign": (_sign, np.sign),
    "exp": (_exp, np.exp),
    "log": (_log, np.log),
    "log1p": (_log1p, np.log1p),
    "sqrt": (_sqrt, np.sqrt),
    "tanh": (_tanh, np.tanh),
    "sigmoid": (_sigmoid, np.exp),
    "logical_not": (_logical_not, np.logical_not),
    "invert": (_invert, np.invert),
}
BINARY = {
    "add": (_add, np.add),
    "subtract": (_subtract, np.subtract),
    "multiply": (_multiply, np.multiply),
    "true_divide": (_true_divide, np.true_divide),
    "floor_divide": (_floor_divide, np.floor_divide),
    "remainder": (_remainder, np.remainder),
    "power": (_power, np.power),
    "maximum": (_maximum, np.maximum),
    "minimum": (_minimum, np.minimum),
    "equal": (_equal, np.equal),
    "not_equal": (_not_equal, np.not_equal),
    "less": (_less, np.less),
    "less_equal": (_less_equal, np.less_equal),
    "greater": (_greater, np.greater),
    "greater_equal": (_greater_equal, np.greater_equal),
    "logical_and": (_logical_and, np.logical_and),
    "logical_or": (_logical_or, np.logical_or),
    "bitwise_and": (_bitwise_and, np.bitwise_and),
    "bitwise_or": (_bitwise_or, np.bitwise_or),
    "bitwise_xor": (_bitwise_xor, np.bitwise_xor),
}
