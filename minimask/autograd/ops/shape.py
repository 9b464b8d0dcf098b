"""Operations that rearrange elements without changing them.

reshape / view / flatten / squeeze / unsqueeze:  dx = g reshaped to x's shape
permute / transpose:                             dx = g permuted by the inverse order
expand:                                          dx = g summed over the expanded dims
                                                 (done by the engine's unbroadcast)
"""

from minimask.autograd.function import Function
from minimask.autograd.ops.dims import normalize_dim, normalize_dims


class Reshape(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.input_shape = x.shape
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out.reshape(ctx.input_shape)


class Permute(Function):
    @staticmethod
    def forward(ctx, x, dims):
        ctx.dims = dims
        return x.transpose(dims)

    @staticmethod
    def backward(ctx, grad_out):
        inverse = sorted(range(len(ctx.dims)), key=lambda i: ctx.dims[i])
        return grad_out.transpose(inverse)


class Expand(Function):
    @staticmethod
    def forward(ctx, x, shape):
        return ctx.xp.broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out


def _shape_argument(shape):
    """Accept both ``f(2, 3)`` and ``f((2, 3))``."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def reshape(x, *shape):
    shape = _shape_argument(shape)
    known = 1
    for n in shape:
        known *= n if n != -1 else 1
    numel = x.numel()
    fits = (
        all(n >= -1 for n in shape)
        and shape.count(-1) <= 1
        and (known == numel if -1 not in shape else known > 0 and numel % known == 0)
    )
    if not fits:
        raise RuntimeError(
            f"shape {shape} is invalid for a tensor of shape {x.shape} ({numel} elements)"
        )
    return Reshape.apply(x, shape=shape)


def permute(x, *dims):
    dims = _shape_argument(dims)
    if sorted(normalize_dim(d, x.ndim) for d in dims) != list(range(x.ndim)):
        raise RuntimeError(
            f"permute: dims {dims} are not a permutation of a {x.ndim}-d tensor's dims"
        )
    return Permute.apply(x, dims=tuple(normalize_dim(d, x.ndim) for d in dims))


def transpose(x, dim0, dim1):
    dims = list(range(x.ndim))
    dim0, dim1 = normalize_dim(dim0, x.ndim), normalize_dim(dim1, x.ndim)
    if x.ndim:  # a 0-d tensor has nothing to swap (dims 0 and -1 name the tensor itself)
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
    return Permute.apply(x, dims=tuple(dims))


def flatten(x, start_dim=0, end_dim=-1):
    if x.ndim == 0:
        return reshape(x, 1)
    start, end = normalize_dim(start_dim, x.ndim), normalize_dim(end_dim, x.ndim)
    if start > end:
        raise RuntimeError(
            f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for a {x.ndim}-d tensor"
        )
    merged = 1
    for n in x.shape[start : end + 1]:
        merged *= n
    return reshape(x, x.shape[:start] + (merged,) + x.shape[end + 1 :])


def squeeze(x, dim=None):
    """Drop dims of size 1 (only those in ``dim`` when given; others are left, as in PyTorch)."""
    dims = normalize_dims(dim, x.ndim) if x.ndim else ()
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if not (i in dims and n == 1)))


def unsqueeze(x, dim):
    dim = normalize_dim(dim, x.ndim + 1)
    return reshape(x, x.shape[:dim] + (1,) + x.shape[dim:])


def expand(x, *sizes):
    """Broadcast to ``sizes`` without copying; -1 keeps a dim's size."""
    sizes = _shape_argument(sizes)
    if len(sizes) < x.ndim:
        raise RuntimeError(f"expand: {len(sizes)} sizes for a {x.ndim}-d tensor {x.shape}")
    offset = len(sizes) - x.ndim
    if -1 in sizes[:offset]:
        raise RuntimeError(
            f"expand: size -1 (keep the size) is not allowed for a new leading dim, "
            f"got sizes {sizes} for shape {x.shape}"
        )
    shape = tuple(
        x.shape[i - offset] if n == -1 and i >= offset else n for i, n in enumerate(sizes)
    )
    for i, n in enumerate(x.shape):
        if n != 1 and n != shape[i + offset]:
            raise RuntimeError(f"expand: cannot expand shape {x.shape} to {shape}")
    return Expand.apply(x, shape=shape)
