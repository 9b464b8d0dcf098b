"""save / load a state dict (name -> Tensor or array) as a NumPy ``.npz`` file.

The file is written with ``minimask.io.atomic.atomic_write`` (a temporary file in the same
folder, fsynced, then renamed over the target), so a crash mid-write never leaves a
half-written checkpoint behind: the old file stays whole until the new one is complete.
"""

import os

import numpy as np

from minimask.io.atomic import atomic_write


def save(state_dict, path):
    """Write ``state_dict`` (str -> Tensor, NumPy array or number) to ``path`` atomically."""
    from minimask.autograd.tensor import Tensor

    arrays = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"save: keys must be strings, got {key!r}")
        arrays[key] = value.numpy() if isinstance(value, Tensor) else np.asarray(value)
        if arrays[key].dtype.kind not in "biuf":
            raise TypeError(
                f"save: value of {key!r} is not a number or numeric array "
                f"({type(value).__name__} of dtype {arrays[key].dtype})"
            )
    with atomic_write(path, "wb") as file:
        np.savez(file, **arrays)


def load(path):
    """Read a file written by ``save``: a dict of str -> Tensor (on the CPU)."""
    from minimask.autograd.factories import tensor

    try:
        with np.load(os.fspath(path), allow_pickle=False) as archive:
            return {key: tensor(archive[key]) for key in archive.files}
    except FileNotFoundError:
        raise FileNotFoundError(f"load: no such file {os.fspath(path)!r}") from None
    except (ValueError, OSError) as error:
        raise ValueError(
            f"load: {os.fspath(path)!r} is not a minimask .npz file: {error}"
        ) from None
