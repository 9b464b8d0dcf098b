"""+ - * / ** and negation, with broadcasting.

Each backward returns gradients in the broadcast (output) shape; the engine sums them down
to each input's shape. With y = f(a, b):

    a + b:  da = g          db = g
    a - b:  da = g          db = -g
    a * b:  da = g * b      db = g * a
    a / b:  da = g / b      db = -g * a / b**2
    a ** b: da = g * b * a**(b-1)    (0 where b == 0, even at a == 0, as in PyTorch)
            db = g * a**b * log(a)   (0 where a == 0 and b >= 0, as in PyTorch)
"""

from minimask.autograd.dtypes import default_float
from minimask.autograd.function import Function
from minimask.autograd.ops.cast import cast
from minimask.autograd.ops.operands import check_broadcast, common_operands


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out, grad_out


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a - b

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out, -grad_out


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad_out):
        a, b = ctx.saved_arrays
        grad_a = grad_out * b if ctx.needs_input_grad[0] else None
        grad_b = grad_out * a if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx, grad_out):
        a, b = ctx.saved_arrays
        grad_a = grad_out / b
        grad_b = -grad_a * a / b if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


class Pow(Function):
    @staticmethod
    def forward(ctx, a, b):
        out = a**b
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        xp = ctx.xp
        a, b, out = ctx.saved_arrays
        grad_a = None
        if ctx.needs_input_grad[0]:
            # where b == 0 the factor b makes da 0; exponent 1 there keeps a**(b-1) finite at
            # a == 0 (0 * inf would be NaN)
            exponent = xp.where(b == 0, 1, b - 1).astype(b.dtype)
            grad_a = grad_out * b * a**exponent
        grad_b = None
        if ctx.needs_input_grad[1]:
            zero_base = xp.logical_and(a == 0, b >= 0)
            safe_a = xp.where(zero_base, 1, a).astype(a.dtype)
            grad_b = xp.where(zero_base, 0, grad_out * out * xp.log(safe_a)).astype(a.dtype)
        return grad_a, grad_b


class Neg(Function):
    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, grad_out):
        return -grad_out


def add(a, b):
    return Add.apply(*check_broadcast("add", *common_operands(a, b)))


def sub(a, b):
    return Sub.apply(*check_broadcast("sub", *common_operands(a, b)))


def mul(a, b):
    return Mul.apply(*check_broadcast("mul", *common_operands(a, b)))


def div(a, b):
    """True division; integer tensors give the default float dtype, as in PyTorch."""
    a, b = check_broadcast("div", *common_operands(a, b))
    if a.dtype.kind in "iub":
        a, b = cast(a, default_float), cast(b, default_float)
    return Div.apply(a, b)


def pow(a, b):
    return Pow.apply(*check_broadcast("pow", *common_operands(a, b)))


def neg(x):
    return Neg.apply(x)
