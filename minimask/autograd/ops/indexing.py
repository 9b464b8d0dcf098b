"""Indexing: ``x[index]`` and ``gather``. Both pick elements; their backward puts the
gradient back where each element came from, adding where an element was picked twice.

    x[index]:              dx = zeros_like(x); dx[index] += g   (a scatter-add)
    gather(x, dim, idx):   out[i, j, k] = x[i, idx[i, j, k], k]         (for dim=1)
                           dx = zeros_like(x); dx[i, idx[i, j, k], k] += g[i, j, k]
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
        # take_along_axis would broadcast a smaller index over x's other dims; torch.gather
        # reads only the leading index.shape[d] entries there, so cut x down to those first
        read = tuple(slice(None) if d == dim else slice(0, n) for d, n in enumerate(index.shape))
        return ctx.xp.take_along_axis(x[read], index, axis=dim)

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
    """torch.gather: values of ``x`` along ``dim`` at ``index``, an integer tensor with as
    many dims as ``x`` and, in every other dim, at most x's size (only that leading part of
    ``x`` is read, as in PyTorch). Index values must lie in [0, x.shape[dim]): a negative one
    is an error, not a count from the end."""
    dim = normalize_dim(dim, x.ndim)
    if index.dtype.kind not in "iu":
        raise TypeError(f"gather: index must be an integer tensor, got {index.dtype}")
    if index.ndim != x.ndim:
        raise RuntimeError(f"gather: index has {index.ndim} dims, input has {x.ndim}")
    if x.ndim == 0:
        return gather(x.reshape(1), 0, index.reshape(1)).reshape(())
    for d, (n_index, n_input) in enumerate(zip(index.shape, x.shape)):
        if d != dim and n_index > n_input:
            raise RuntimeError(
                f"gather: index of shape {index.shape} is larger than the input {x.shape} "
                f"in dim {d} (only dim {dim} may be larger)"
            )
    if index.numel():
        # two numbers cross to the host, not the whole index (it may live on the GPU)
        lowest, highest = int(index.data.min()), int(index.data.max())
        if lowest < 0 or highest >= x.shape[dim]:
            raise IndexError(
                f"gather: index values must lie in [0, {x.shape[dim]}) for dim {dim} of an "
                f"input of shape {x.shape}, got values from {lowest} to {highest}"
            )
    return Gather.apply(x, index, dim=dim)
