"""Indexing: ``x[index]`` and ``gather``. Both pick elements; their backward puts the
gradient back where each element came from, adding where an element was picked twice.

    x[index]:              dx = zeros_like(x); dx[index] += g   (a scatter-add)
    gather(x, dim, idx):   out[..., j, ...] = x[..., idx[..., j, ...], ...]  along dim
                           dx = zeros_like(x); dx[..., idx[..., j, ...], ...] += g[..., j, ...]
"""

import numpy as np

from minimask.autograd.function import Function
from minimask.autograd.ops.dims import normalize_dim


class Index(Function):
    @staticmethod
    def forward(ctx, x, index):
        ctx.input_shape, ctx.index = x.shape, index
        return x[index]

    @staticmethod
    def backward(ctx, grad_out):
        return ctx.xp.index_add(ctx.input_shape, grad_out.dtype, ctx.index, grad_out)


class Gather(Function):
    @staticmethod
    def forward(ctx, x, index, dim):
        ctx.input_shape, ctx.dim = x.shape, dim
        ctx.save_for_backward(index)
        return ctx.xp.take_along_axis(x, index, axis=dim)

    @staticmethod
    def backward(ctx, grad_out):
        (index,) = ctx.saved_arrays
        grad = ctx.xp.scatter_add_along_axis(ctx.input_shape, index, grad_out, ctx.dim)
        return grad, None


def _index_item(item, device):
    """One item of an index as NumPy/backend indexing understands it."""
    from minimask.autograd.tensor import Tensor

    if isinstance(item, Tensor):
        if item.device != device:
            raise RuntimeError(f"index tensor is on {item.device}, the indexed tensor on {device}")
        item = item.data
    elif isinstance(item, (list, tuple)):
        item = np.asarray(item)
    if hasattr(item, "dtype") and hasattr(item, "ndim") and not np.isscalar(item):
        if item.dtype.kind not in "iub":
            raise IndexError(f"tensors used as indices must be integer or bool, got {item.dtype}")
        if item.ndim == 0 and item.dtype.kind in "iu":
            return int(item)
    return item


def normalize_index(index, device):
    """``index`` as a tuple of ints, slices, None, Ellipsis and integer/bool arrays."""
    items = index if isinstance(index, tuple) else (index,)
    return tuple(_index_item(item, device) for item in items)


def getitem(x, index):
    index = normalize_index(index, x.device)
    try:
        return Index.apply(x, index=index)
    except IndexError as error:
        raise IndexError(f"invalid index for a tensor of shape {x.shape}: {error}") from None


def gather(x, dim, index):
    """torch.gather: values of ``x`` along ``dim`` at ``index`` (int64, same ndim as x)."""
    dim = normalize_dim(dim, x.ndim)
    if index.dtype.kind not in "iu":
        raise TypeError(f"gather: index must be an integer tensor, got {index.dtype}")
    if index.ndim != x.ndim:
        raise RuntimeError(f"gather: index has {index.ndim} dims, input has {x.ndim}")
    return Gather.apply(x, index, dim=dim)
