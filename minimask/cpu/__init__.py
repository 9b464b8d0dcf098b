"""The CPU backend: NumPy arrays and Numba ``@njit`` kernels.

A backend is a module that offers the array functions the autograd Functions call as
``ctx.xp.<name>``. The CPU backend's arrays are plain NumPy arrays, so most names are
NumPy's own functions; ``minimask/cuda/`` offers the same names for device arrays.
Heavy kernels (im2col/col2im, pooling, ...) live in their own files beside this one, and
each file has a twin of the same name in ``minimask/cuda/`` (its docstring says how to
read the two side by side).

Threading: ``minimask/threading_layer.py`` (imported first by ``import minimask``) chooses
numba's threading layer and makes the entry points that launch parallel kernels safe to
call from several Python threads.
"""

from numpy import (  # noqa: F401  (re-exported: these names are the backend's interface)
    abs,
    arange,
    argmax,
    argmin,
    argsort,
    broadcast_to,
    concatenate,
    empty,
    equal,
    exp,
    expand_dims,
    full,
    greater,
    greater_equal,
    less,
    less_equal,
    log,
    log1p,
    logical_and,
    logical_not,
    logical_or,
    matmul,
    maximum,
    minimum,
    not_equal,
    ones,
    sign,
    sqrt,
    take_along_axis,
    tanh,
    where,
    zeros,
)

from minimask.cpu.array_ops import (  # noqa: F401
    asarray,
    astype,
    index_add,
    scatter_add_along_axis,
    shares_memory,
    sigmoid,
    to_numpy,
)
from minimask.cpu.conv import (  # noqa: F401
    conv2d_backward,
    conv2d_forward,
    conv_transpose2d_backward,
    conv_transpose2d_forward,
)
from minimask.cpu.interpolate import (  # noqa: F401
    interpolate_bilinear2d,
    interpolate_bilinear2d_backward,
    interpolate_nearest2d,
    interpolate_nearest2d_backward,
)
from minimask.cpu.nms import nms  # noqa: F401
from minimask.cpu.pooling import max_pool2d_backward, max_pool2d_forward  # noqa: F401
from minimask.cpu.roi_align import roi_align_backward, roi_align_forward  # noqa: F401
from minimask.cpu.roi_pool import roi_pool_backward, roi_pool_forward  # noqa: F401
