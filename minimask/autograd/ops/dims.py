"""Checking and normalising ``dim`` arguments (negative dims count from the end)."""


def normalize_dim(dim, ndim):
    """One dim as a non-negative int, or an IndexError naming the valid range."""
    low, high = -max(ndim, 1), max(ndim, 1) - 1
    if not low <= dim <= high:
        raise IndexError(f"dim {dim} is out of range [{low}, {high}] for a {ndim}-d tensor")
    return dim % max(ndim, 1)


def normalize_dims(dim, ndim):
    """``None`` (all dims), an int or a sequence of ints, as a sorted tuple of dims."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, int):
        dim = (dim,)
    dims = tuple(sorted(normalize_dim(d, ndim) for d in dim))
    if len(set(dims)) != len(dims):
        raise ValueError(f"dim {dim} names a dimension twice")
    return dims
