"""sort and topk: the indices come from a stable argsort (no gradient); the values are
gathered at those indices, so the gradient flows back to the elements that were chosen.
Equal values keep their original order (lower index first) in both directions."""

from minimask.autograd.device import backend_for
from minimask.autograd.ops.dims import normalize_dim
from minimask.autograd.ops.indexing import gather
from minimask.autograd.ops.reduction import ValuesIndices
from minimask.autograd.tensor import Tensor


def _stable_order(x, dim, descending):
    xp = backend_for(x.device)
    keys = -x.data if descending else x.data
    return xp.argsort(keys, axis=dim, kind="stable")


def sort(x, dim=-1, descending=False):
    dim = normalize_dim(dim, x.ndim)
    indices = Tensor(_stable_order(x, dim, descending), x.device)
    return ValuesIndices(gather(x, dim, indices), indices)


def topk(x, k, dim=-1, largest=True, sorted=True):
    """The k largest (or smallest) elements along ``dim``, in order, and their indices."""
    dim = normalize_dim(dim, x.ndim)
    if not 0 <= k <= x.shape[dim]:
        raise RuntimeError(f"topk: k={k} is out of range for dim {dim} of size {x.shape[dim]}")
    order = _stable_order(x, dim, descending=largest)
    first_k = [slice(None)] * x.ndim
    first_k[dim] = slice(0, k)
    indices = Tensor(order[tuple(first_k)], x.device)
    return ValuesIndices(gather(x, dim, indices), indices)
