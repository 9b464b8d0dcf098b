"""The elementwise names of the backend interface: ``exp``, ``abs``, ``maximum``,
``less``, ``logical_and``, ``where``, ... Each is one call of ``elementwise.unary`` /
``binary`` / ``where``, that is one kernel launch (``minimask/cuda/array/elementwise.py``).

They live apart from the scalar operations because some of them have the names of Python
builtins (``abs``): a device function of scalar_ops.py that calls the builtin ``abs`` would
find this module's ``abs`` instead, if it were defined there. (``sigmoid``, a name NumPy
does not have, is ``minimask/cuda/array_ops.py``, the twin of the CPU's.)
"""

from minimask.cuda.array import elementwise
from minimask.cuda.array.elementwise import where  # noqa: F401


def exp(x):
    return elementwise.unary("exp", x)


def log(x):
    return elementwise.unary("log", x)


def log1p(x):
    return elementwise.unary("log1p", x)


def sqrt(x):
    return elementwise.unary("sqrt", x)


def tanh(x):
    return elementwise.unary("tanh", x)


def abs(x):
    return elementwise.unary("absolute", x)


def sign(x):
    return elementwise.unary("sign", x)


def maximum(a, b):
    return elementwise.binary("maximum", a, b)


def minimum(a, b):
    return elementwise.binary("minimum", a, b)


def equal(a, b):
    return elementwise.binary("equal", a, b)


def not_equal(a, b):
    return elementwise.binary("not_equal", a, b)


def less(a, b):
    return elementwise.binary("less", a, b)


def less_equal(a, b):
    return elementwise.binary("less_equal", a, b)


def greater(a, b):
    return elementwise.binary("greater", a, b)


def greater_equal(a, b):
    return elementwise.binary("greater_equal", a, b)


def logical_and(a, b):
    return elementwise.binary("logical_and", a, b)


def logical_or(a, b):
    return elementwise.binary("logical_or", a, b)


def logical_not(a):
    return elementwise.unary("logical_not", a)
