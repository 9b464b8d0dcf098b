"""cat and stack: join tensors along a dim; the backward cuts the gradient back apart.

cat([a, b], dim):  da = g[..., :len_a, ...],  db = g[..., len_a:, ...]   (along dim)
stack(ts, dim):    cat of the tensors each unsqueezed at dim
"""

from minimask.autograd.function import Function
from minimask.autograd.ops.dims import normalize_dim
from minimask.autograd.ops.operands import common_operands


class Cat(Function):
    @staticmethod
    def forward(ctx, *arrays, dim):
        ctx.dim = dim
        ctx.sizes = [a.shape[dim] for a in arrays]
        return ctx.xp.concatenate(arrays, axis=dim)

    @staticmethod
    def backward(ctx, grad_out):
        grads, start = [], 0
        for size in ctx.sizes:
            piece = [slice(None)] * grad_out.ndim
            piece[ctx.dim] = slice(start, start + size)
            grads.append(grad_out[tuple(piece)])
            start += size
        return tuple(grads)


def cat(tensors, dim=0):
    tensors = common_operands(*tensors) if tensors else ()
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    for position, t in enumerate(tensors):
        if t.ndim == 0:
            raise RuntimeError(
                f"cat: tensor {position} is 0-d and has no dim to join along (use stack)"
            )
    dim = normalize_dim(dim, tensors[0].ndim)
    first = tensors[0].shape
    for position, t in enumerate(tensors):
        if t.ndim != len(first) or any(
            n != m for i, (n, m) in enumerate(zip(t.shape, first)) if i != dim
        ):
            raise RuntimeError(
                f"cat: tensor {position} has shape {t.shape}, which does not match tensor 0's "
                f"shape {first} outside dim {dim}"
            )
    return Cat.apply(*tensors, dim=dim)


def stack(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty list of tensors")
    for position, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise RuntimeError(
                f"stack: tensor {position} has shape {t.shape}, tensor 0 has {tensors[0].shape}"
            )
    dim = normalize_dim(dim, tensors[0].ndim + 1)
    return cat([t.unsqueeze(dim) for t in tensors], dim)
