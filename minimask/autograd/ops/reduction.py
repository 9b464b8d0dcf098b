"""Reductions over ``dim`` (None = all dims) with ``keepdim``, as in PyTorch.

    sum:        dx = g broadcast back over the reduced dims
    mean:       sum / (number of reduced elements)
    amax/amin:  dx = g * [x == max] / (number of elements equal to the max)
    max/min with a dim: (values, indices); the gradient goes to the index argmax chose

Tie rule. ``amax``, ``amin`` and ``max()``/``min()`` over all elements split the gradient
evenly among the elements that reach the extreme (PyTorch's rule for these). ``max(dim)``
and ``min(dim)`` return indices, and their values are gathered at those indices, so the
gradient goes to the one element the index names: the first one, as argmax picks it.
"""

from collections import namedtuple

from minimask.autograd.device import backend_for
from minimask.autograd.function import Function
from minimask.autograd.ops.dims import normalize_dim, normalize_dims
from minimask.autograd.ops.indexing import gather
from minimask.autograd.tensor import Tensor

ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])


def _restore_reduced_dims(xp, grad_out, dims, keepdim):
    """``grad_out`` with the reduced dims put back as size 1 (if keepdim dropped them)."""
    return grad_out if keepdim else xp.expand_dims(grad_out, dims)


class Sum(Function):
    @staticmethod
    def forward(ctx, x, dims, keepdim):
        ctx.input_shape, ctx.dims, ctx.keepdim = x.shape, dims, keepdim
        return x.sum(axis=dims, keepdims=keepdim)

    @staticmethod
    def backward(ctx, grad_out):
        grad = _restore_reduced_dims(ctx.xp, grad_out, ctx.dims, ctx.keepdim)
        return ctx.xp.broadcast_to(grad, ctx.input_shape)


class Extreme(Function):
    """amax (largest=True) or amin (largest=False) over ``dims``."""

    @staticmethod
    def forward(ctx, x, dims, keepdim, largest):
        if 0 in x.shape:
            raise RuntimeError(f"{'amax' if largest else 'amin'} of an empty tensor {x.shape}")
        extreme = x.max(axis=dims, keepdims=True) if largest else x.min(axis=dims, keepdims=True)
        ctx.save_for_backward(x, extreme)
        ctx.dims, ctx.keepdim = dims, keepdim
        return (
            extreme
            if keepdim
            else extreme.reshape(tuple(n for i, n in enumerate(x.shape) if i not in dims))
        )

    @staticmethod
    def backward(ctx, grad_out):
        x, extreme = ctx.saved_arrays
        grad = _restore_reduced_dims(ctx.xp, grad_out, ctx.dims, ctx.keepdim)
        reaches = x == extreme
        ties = reaches.sum(axis=ctx.dims, keepdims=True)
        return (grad * reaches / ties).astype(x.dtype, copy=False)


def sum(x, dim=None, keepdim=False):
    return Sum.apply(x, dims=normalize_dims(dim, x.ndim), keepdim=keepdim)


def mean(x, dim=None, keepdim=False):
    if x.dtype.kind != "f":
        raise TypeError(f"mean needs a floating point tensor, got {x.dtype}")
    dims = normalize_dims(dim, x.ndim)
    count = 1
    for d in dims:
        count *= x.shape[d]
    return sum(x, dim, keepdim) / count


def amax(x, dim=None, keepdim=False):
    return Extreme.apply(x, dims=normalize_dims(dim, x.ndim), keepdim=keepdim, largest=True)


def amin(x, dim=None, keepdim=False):
    return Extreme.apply(x, dims=normalize_dims(dim, x.ndim), keepdim=keepdim, largest=False)


def _arg_extreme(x, dim, keepdim, largest):
    """int64 index of the first extreme along ``dim``; with dim=None, of the flattened tensor
    (shaped all ones with keepdim, as in PyTorch). A 0-d tensor's one element has index 0."""
    xp_name = "argmax" if largest else "argmin"
    xp = backend_for(x.device)
    if dim is not None:
        axis = normalize_dim(dim, x.ndim)
    reduced_sizes = x.shape if dim is None or x.ndim == 0 else (x.shape[axis],)
    if 0 in reduced_sizes:
        raise RuntimeError(f"{xp_name} of an empty tensor {x.shape} (along dim {dim})")
    if dim is None or x.ndim == 0:
        flat_index = getattr(xp, xp_name)(x.data.reshape(-1)).astype("int64")
        return Tensor(flat_index.reshape((1,) * x.ndim if keepdim else ()), x.device)
    return Tensor(getattr(xp, xp_name)(x.data, axis=axis, keepdims=keepdim), x.device)


def argmax(x, dim=None, keepdim=False):
    """Index of the first maximum along ``dim`` (of the flattened tensor when dim is None)."""
    return _arg_extreme(x, dim, keepdim, largest=True)


def argmin(x, dim=None, keepdim=False):
    return _arg_extreme(x, dim, keepdim, largest=False)


def _max_or_min(x, dim, keepdim, largest):
    if dim is None:
        return amax(x) if largest else amin(x)
    indices = _arg_extreme(x, dim, keepdim=True, largest=largest)
    values = gather(x, dim, indices)
    if not keepdim:
        values, indices = values.squeeze(dim), indices.squeeze(dim)
    return ValuesIndices(values, indices)


def max(x, dim=None, keepdim=False):
    """``max()``: the largest element; ``max(dim)``: (values, indices) along dim."""
    return _max_or_min(x, dim, keepdim, largest=True)


def min(x, dim=None, keepdim=False):
    return _max_or_min(x, dim, keepdim, largest=False)
