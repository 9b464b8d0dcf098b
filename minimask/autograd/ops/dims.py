"""Checking and normalising ``dim`` arguments (negative dims count from the end)."""


def normalize_dim(dim, ndim):
    """One dim as a non-negative int, or an IndexError naming the valid range."""
    low, high = -max(ndim, 1), max(ndim, 1) - 1
    if not low <= dim <= high:
        raise IndexError(f"dim {dim} is out of range [{low}, {high}] for a {ndim}-d tensor")
    return dim % max(ndim, 1)


def normalize_dims(dim, ndim):
    """``None`` (all dims), an int or a non-empty sequence of ints, as a sorted tuple of dims.

    A 0-d tensor has no dims: dim 0 or -1 names the tensor itself (as in PyTorch) and
    gives ``()``. An empty sequence is refused: PyTorch reads ``dim=()`` as "all dims",
    NumPy as "no dims", and a student should not have to guess which one is meant.
    """
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, int):
        dim = (dim,)
    if len(dim) == 0:
        raise ValueError("dim=() is ambiguous (all dims in PyTorch, none in NumPy): pass dim=None")
    dims = tuple(sorted(normalize_dim(d, ndim) for d in dim))
    if len(set(dims)) != len(dims):
        raise ValueError(f"dim {dim} names a dimension twice")
    return dims if ndim else ()
