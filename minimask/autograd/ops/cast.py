"""Cast: a change of dtype. Its gradient is the incoming gradient cast back."""

from minimask.autograd.function import Function


class Cast(Function):
    @staticmethod
    def forward(ctx, x, dtype):
        ctx.input_dtype = x.dtype
        return ctx.xp.astype(x, dtype)

    @staticmethod
    def backward(ctx, grad_out):
        return ctx.xp.astype(grad_out, ctx.input_dtype)


def cast(x, dtype):
    return Cast.apply(x, dtype=dtype)
