"""sort and topk: the indices come from a stable argsort (no gradient); the values are
gathered at those indices, so the gradient flows back to the elements that were chosen.
Equal values keep their original order (lower index first) in both directions.

The values are gathered by the ``Gather`` Function itself, not ``gather``, whose check of
the index values (their min and max, copied to the host from a GPU) these indices do not
need: an argsort's are in range by construction."""

from minimask.autograd.device import backend_for
from minimask.autograd.ops.dims import normalize_dim
from minimask.autograd.ops.indexing import Gather
from minimask.autograd.ops.reduction import ValuesIndices
from minimask.autograd.tensor import Tensor


def _stable_order(x, dim, descending):
    """Indices that sort ``x`` along ``dim``, equal values in their original order.

    Descending: sort the reversed array ascending, reverse that order and map its positions
    back (p -> n - 1 - p). Sorting ``-x`` instead would be wrong for unsigned integers and
    bools, where negation wraps around or is not defined.
    """
    xp = backend_for(x.device)
    if not descending:
        return xp.argsort(x.data, axis=dim, kind="stable")
    reverse = tuple(slice(None, None, -1) if d == dim else slice(None) for d in range(x.ndim))
    return x.shape[dim] - 1 - xp.argsort(x.data[reverse], axis=dim, kind="stable")[reverse]


def sort(x, dim=-1, descending=False):
    """Values along ``dim`` in ascending (or descending) order, and where each came from."""
    dim = normalize_dim(dim, x.ndim)
    if x.ndim == 0:  # one element: itself, at index 0
        values, indices = sort(x.reshape(1), 0, descending)
        return ValuesIndices(values.reshape(()), indices.reshape(()))
    indices = Tensor(_stable_order(x, dim, descending), x.device)
    return ValuesIndices(Gather.apply(x, indices, dim=dim), indices)


def topk(x, k, dim=-1, largest=True, sorted=True):
    """The k largest (or smallest) elements along ``dim``, in order, and their indices."""
    dim = normalize_dim(dim, x.ndim)
    if x.ndim == 0:  # one element, as in sort
        values, indices = topk(x.reshape(1), k, 0, largest, sorted)
        return ValuesIndices(values.reshape(()), indices.reshape(()))
    if not 0 <= k <= x.shape[dim]:
        raise RuntimeError(f"topk: k={k} is out of range for dim {dim} of size {x.shape[dim]}")
    order = _stable_order(x, dim, descending=largest)
    first_k = [slice(None)] * x.ndim
    first_k[dim] = slice(0, k)
    indices = Tensor(order[tuple(first_k)], x.device)
    return ValuesIndices(Gather.apply(x, indices, dim=dim), indices)
