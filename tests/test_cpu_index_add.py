"""``index_add`` (the backward of ``x[index]`` on the CPU) takes a plain assignment where no
position can repeat and ``np.add.at`` elsewhere. Reference: ``np.add.at`` itself, which adds
every repeat; exact equality (both paths only add the same float64 values once per slot
when there are no repeats, and in index order when there are)."""

import numpy as np
import pytest

from minimask.cpu.array_ops import index_add

SHAPE = (6, 3)


def _reference(index, values):
    out = np.zeros(SHAPE)
    np.add.at(out, index, values)
    return out


@pytest.mark.parametrize(
    "index",
    [
        np.array([4, 0, 2]),  # unique rows: the assignment path
        np.array([1, 3, 1, 1]),  # repeats: each adds
        np.array([5, -1]),  # -1 is row 5: a repeat in disguise
        np.array([True, False, True, False, False, True]),  # a mask selects once
        (np.array([0, 0, 2]), np.array([1, 1, 2])),  # two arrays with a repeated pair
        (slice(1, 3),),  # basic indexing
        np.array([[0, 1], [1, 2]]),  # a 2-D index with repeats
    ],
)
def test_index_add_equals_np_add_at(index):
    selected = np.zeros(SHAPE)[index]
    values = np.random.default_rng(0).normal(size=selected.shape)
    np.testing.assert_array_equal(
        index_add(SHAPE, np.float64, index, values), _reference(index, values)
    )
