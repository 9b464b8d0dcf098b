"""gradcheck: compare the engine's gradients with central finite differences.

For f: inputs -> outputs, central differences estimate each directional derivative as

    J v ~ (f(x + eps v) - f(x - eps v)) / (2 eps)          (error O(eps^2))

in float64, where rounding error is about 1e-16 / eps. Two modes:

* full Jacobian (the inputs and outputs are small): column i of the numerical Jacobian is
  the difference quotient along input element i; row j of the analytic Jacobian is the
  backward of a one-hot gradient at output element j. Every entry is compared.
* random projections (large inputs or outputs): for random unit directions u (outputs)
  and v (inputs), compare u . (J v) from differences with (J^T u) . v from one backward.
  A wrong gradient in any entry changes this number unless u or v happens to miss it,
  which random Gaussian directions almost surely do not.

An entry passes when |analytic - numerical| <= atol + rtol * |numerical| (so a NaN on
either side fails).
"""

import numpy as np

from minimask.autograd.device import backend_for
from minimask.autograd.grad_mode import no_grad
from minimask.autograd.tensor import Tensor

FULL_JACOBIAN_LIMIT = 256  # input or output elements above which projections are used


class GradcheckError(AssertionError):
    """The analytic and numerical gradients disagree; the message names the worst entry."""


def _as_tuple(values):
    return values if isinstance(values, tuple) else (values,)


def _evaluate(fn, arrays, devices):
    """Outputs of fn on copies of ``arrays`` (no graph), flattened into one host vector."""
    with no_grad():
        inputs = [Tensor(a, d) for a, d in zip(arrays, devices)]
        outputs = _as_tuple(fn(*inputs))
    return np.concatenate([out.numpy().astype(np.float64).ravel() for out in outputs])


def _analytic_vjp(fn, inputs, output_grad):
    """(J^T output_grad) per differentiable input, from one backward pass."""
    leaves = [Tensor(t.data.copy(), t.device, requires_grad=t.requires_grad) for t in inputs]
    outputs = _as_tuple(fn(*leaves))
    start = 0
    total = None
    for out in outputs:
        n = out.numel()
        weight = Tensor(output_grad[start : start + n].reshape(out.shape).astype(out.dtype))
        if out.requires_grad:
            term = (out * weight.to(out.device)).sum()
            total = term if total is None else total + term
        start += n
    if total is not None:
        total.backward()
    return [
        (leaf.grad.numpy().ravel() if leaf.grad is not None else np.zeros(leaf.numel()))
        for leaf, t in zip(leaves, inputs)
        if t.requires_grad
    ]


def _numerical_jvp(fn, inputs, direction, eps):
    """(f(x + eps v) - f(x - eps v)) / (2 eps), with v split over the differentiable inputs."""
    plus, minus, start = [], [], 0
    for t in inputs:
        base = t.numpy()
        if t.requires_grad:
            step = direction[start : start + t.numel()].reshape(t.shape) * eps
            start += t.numel()
            plus.append(base + step)
            minus.append(base - step)
        else:
            plus.append(base)
            minus.append(base)
    devices = [t.device for t in inputs]
    plus = [backend_for(d).asarray(a) for a, d in zip(plus, devices)]
    minus = [backend_for(d).asarray(a) for a, d in zip(minus, devices)]
    return (_evaluate(fn, plus, devices) - _evaluate(fn, minus, devices)) / (2 * eps)


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, projections=4, seed=0):
    """True if fn's gradients match central differences; else GradcheckError.

    fn:      a function of Tensors returning a Tensor or a tuple of Tensors
    inputs:  a Tensor or tuple of Tensors; those with requires_grad=True are checked and
             must be float64
    """
    inputs = _as_tuple(inputs)
    checked = [t for t in inputs if t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True")
    for position, t in enumerate(inputs):
        if t.requires_grad and t.dtype != np.float64:
            raise TypeError(
                f"gradcheck: input {position} is {t.dtype}; central differences need float64"
            )
    n_in = sum(t.numel() for t in checked)
    n_out = _evaluate(fn, [t.data for t in inputs], [t.device for t in inputs]).size
    if n_in <= FULL_JACOBIAN_LIMIT and n_out <= FULL_JACOBIAN_LIMIT:
        _check_full_jacobian(fn, inputs, n_in, n_out, eps, atol, rtol)
    else:
        _check_projections(fn, inputs, n_in, n_out, eps, atol, rtol, projections, seed)
    return True


def _locate(inputs, flat_index):
    """(input position, element index) of a flat index into the differentiable inputs."""
    for position, t in enumerate(inputs):
        if not t.requires_grad:
            continue
        if flat_index < t.numel():
            return position, [int(i) for i in np.unravel_index(flat_index, t.shape)]
        flat_index -= t.numel()
    raise IndexError(flat_index)


def _check_full_jacobian(fn, inputs, n_in, n_out, eps, atol, rtol):
    numerical = np.stack(
        [_numerical_jvp(fn, inputs, np.eye(1, n_in, i).ravel(), eps) for i in range(n_in)], axis=1
    )
    analytic = np.stack(
        [
            np.concatenate(_analytic_vjp(fn, inputs, np.eye(1, n_out, j).ravel()))
            for j in range(n_out)
        ]
    )
    excess = np.abs(analytic - numerical) - (atol + rtol * np.abs(numerical))
    j, i = np.unravel_index(np.argmax(excess), excess.shape)  # argmax picks a NaN first
    if not excess[j, i] <= 0:  # written so that NaN fails too
        position, element = _locate(inputs, i)
        raise GradcheckError(
            f"gradcheck failed at d(output element {j}) / d(input {position}{element}): "
            f"analytic {analytic[j, i]:.8g}, numerical {numerical[j, i]:.8g} "
            f"(atol={atol}, rtol={rtol})"
        )


def _check_projections(fn, inputs, n_in, n_out, eps, atol, rtol, projections, seed):
    """Random projections, one differentiable input at a time so a failure names it."""
    rng = np.random.default_rng(seed)
    positions = [p for p, t in enumerate(inputs) if t.requires_grad]
    sizes = [inputs[p].numel() for p in positions]
    offsets = np.cumsum([0] + sizes)
    for trial in range(projections):
        u = rng.standard_normal(n_out)
        u /= np.linalg.norm(u)
        analytic_grad = np.concatenate(_analytic_vjp(fn, inputs, u))
        for k, position in enumerate(positions):
            v = np.zeros(n_in)
            v[offsets[k] : offsets[k + 1]] = rng.standard_normal(sizes[k])
            v /= np.linalg.norm(v)
            numerical = float(u @ _numerical_jvp(fn, inputs, v, eps))
            analytic = float(analytic_grad @ v)
            if not abs(analytic - numerical) <= atol + rtol * abs(numerical):  # NaN fails
                raise GradcheckError(
                    f"gradcheck failed for input {position} on random projection {trial}: "
                    f"u.(J v) analytic {analytic:.10g}, numerical {numerical:.10g} "
                    f"(atol={atol}, rtol={rtol})"
                )
