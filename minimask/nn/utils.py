"""``clip_grad_norm_``: scale gradients down so that their total norm is at most ``max_norm``.

The total norm treats all the gradients as one long vector:

    total = ( sum over parameters of ||grad||_p ^ p ) ^ (1/p)      (max |grad| for p = inf)

and every gradient is multiplied, in place, by ``min(max_norm / (total + 1e-6), 1)``, as
PyTorch's ``torch.nn.utils.clip_grad_norm_`` does (the 1e-6 keeps a zero norm from
dividing by zero). A large step from one unlucky batch is then shortened, not taken.
"""

import math

from minimask.autograd.device import backend_for
from minimask.autograd.factories import tensor as make_tensor
from minimask.autograd.tensor import Tensor


def _vector_norm(array, norm_type):
    """The p-norm of all the entries of ``array`` (a 0-d array of its dtype)."""
    if norm_type == math.inf:
        return abs(array).max()
    if norm_type == 2:
        return (array * array).sum() ** 0.5
    return (abs(array) ** norm_type).sum() ** (1 / norm_type)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Clip the gradients of ``parameters`` (an iterable of Tensors, or one) in place.

    Returns the total norm *before* clipping, as a 0-d Tensor (useful to log). Parameters
    whose ``.grad`` is None are skipped. ``norm_type`` is a positive number or ``math.inf``.
    With ``error_if_nonfinite=True`` a NaN or infinite total norm raises instead of
    turning every gradient into NaN (PyTorch's default, False, is kept).
    """
    parameters = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    grads = [p.grad for p in parameters if p.grad is not None]
    norm_type = float(norm_type)
    if not norm_type > 0:
        raise ValueError(f"clip_grad_norm_: norm_type must be positive or inf, got {norm_type}")
    if not grads:
        return make_tensor(0.0)
    norms = [_vector_norm(g.data, norm_type) for g in grads]
    if norm_type == math.inf:
        total = max(norms)
    else:
        total = sum(n**norm_type for n in norms) ** (1 / norm_type)
    if error_if_nonfinite and not math.isfinite(float(total)):
        raise RuntimeError(
            f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is "
            f"{float(total)}, so they cannot be clipped; set error_if_nonfinite=False to "
            f"scale them by it anyway"
        )
    coefficient = min(max_norm / (total + 1e-6), 1.0)
    for g in grads:
        g.data *= coefficient
    device = grads[0].device
    return Tensor(backend_for(device).asarray(total), device)
