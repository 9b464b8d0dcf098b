"""save / load a state dict (name -> Tensor or array) as a NumPy ``.npz`` file.

The file is written with ``minimask.io.atomic.atomic_write`` (a temporary file in the same
folder, fsynced, then renamed over the target), so a crash mid-write never leaves a
half-written checkpoint behind: the old file stays whole until the new one is complete.
"""

import os
import zipfile
import zlib

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
    """Read a file written by ``save``: a dict of str -> Tensor (on the CPU).

    Every member of the archive is read in full and checked against the CRC-32 that the
    zip format stores for it, so a truncated or corrupted file is refused with a
    ValueError that names the file and the damaged entry, never loaded half right."""
    from minimask.autograd.factories import tensor

    path = os.fspath(path)
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
        if damaged is not None:
            raise ValueError(f"entry {damaged!r} fails its CRC-32 check (the file is damaged)")
        with np.load(path, allow_pickle=False) as archive:
            return {key: tensor(archive[key]) for key in archive.files}
    except FileNotFoundError:
        raise FileNotFoundError(f"load: no such file {path!r}") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise ValueError(
            f"load: {path!r} is not a whole minimask .npz file (truncated, damaged or of "
            f"another kind): {error}"
        ) from None
