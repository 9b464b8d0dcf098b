"""``is_real_number``: which values read from a JSON file count as numbers.

JSON has one number type, but Python's ``json`` gives ``int`` or ``float`` (NaN and
Infinity included, which Python accepts), and ``True`` / ``False`` are ``int`` subclasses
that must not pass for 1 and 0. Records built in memory may also hold NumPy scalars. The
COCO reader (``minimask.data.coco``: a box or polygon coordinate) and the loss-curve
drawing (``minimask.viz.draw_loss_curves``: a logged value) ask the same question, with one
difference, hence the ``finite`` flag:

- a coordinate must be finite (``finite=True``): a NaN box cannot be drawn or matched;
- a logged loss may be NaN or inf (``finite=False``): the step where training diverged is
  exactly what the curve must show.
"""

import math
import numbers


def is_real_number(value, finite=False) -> bool:
    """True if ``value`` is a real number: an int, float or NumPy integer/float scalar (any
    ``numbers.Real``), but not a bool; with ``finite``, also not NaN or +-inf, nor an int
    too large for a float."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    if not finite:
        return True
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float's range: JSON integers may have any length
        return False
