"""Checkers of lesson 01 (tensors and autograd). References: NumPy's functions and
minimask's own ops (float64, 1e-12 where the formula is the same, gradcheck's central
differences for backwards), and the graph's edges for the topological order."""

import numpy as np

import minimask
from exercises import Wrong, exercise
from minimask.autograd import engine


@exercise("01.1", "tanh as a Function", "Tanh")
def check_tanh(Tanh):
    """Forward against np.tanh (1e-12, float64); backward against gradcheck's central
    differences and against minimask.tanh's gradient (1e-12)."""
    rng = np.random.default_rng(1)
    values = rng.uniform(-3, 3, 7)
    x = minimask.tensor(values, requires_grad=True)
    y = Tanh.apply(x)
    if not np.allclose(y.numpy(), np.tanh(values), rtol=0, atol=1e-12):
        raise Wrong(f"forward: tanh({values[:3].round(3)}) gave {y.numpy()[:3].round(6)}")
    weights = rng.standard_normal(7)
    (y * minimask.tensor(weights)).sum().backward()
    reference = minimask.tensor(values, requires_grad=True)
    (minimask.tanh(reference) * minimask.tensor(weights)).sum().backward()
    if x.grad is None:
        raise Wrong("backward: x.grad is None (does backward return the input's gradient?)")
    if not np.allclose(x.grad.numpy(), reference.grad.numpy(), rtol=0, atol=1e-12):
        got, want = x.grad.numpy()[:3].round(6), reference.grad.numpy()[:3].round(6)
        raise Wrong(f"backward: gradient {got} where 1 - tanh(x)^2 gives {want}")
    try:
        minimask.gradcheck(Tanh.apply, (minimask.tensor(values, requires_grad=True),))
    except Exception as error:
        raise Wrong(f"gradcheck: {error}") from None


@exercise("01.2", "unbroadcast: a gradient summed back to its input's shape", "unbroadcast")
def check_unbroadcast(unbroadcast):
    """For each (gradient shape, input shape) pair, against the sum written out with
    np.sum over the broadcast dims (exact: integer-valued float64) and the engine's own."""
    rng = np.random.default_rng(2)
    cases = [((2, 3), (3,)), ((2, 3), (1, 3)), ((2, 3), (2, 1)), ((4, 2, 3), (2, 1)),
             ((4, 2, 3), ()), ((2, 3), (2, 3))]  # fmt: skip
    for grad_shape, shape in cases:
        grad = rng.integers(-5, 5, grad_shape).astype(np.float64)
        extra = len(grad_shape) - len(shape)
        want = grad.sum(axis=tuple(range(extra)))
        stretched = tuple(i for i, n in enumerate(shape) if n == 1 and want.shape[i] != 1)
        want = want.sum(axis=stretched, keepdims=True)
        got = np.asarray(unbroadcast(grad, shape))
        if got.shape != tuple(shape) or not np.array_equal(got, want):
            raise Wrong(
                f"a gradient of shape {grad_shape} for an input of shape {shape}: got shape "
                f"{got.shape}, want {tuple(shape)} (sum over the broadcast dims)"
            )
        assert np.array_equal(engine.unbroadcast(grad, shape), want)


def _graph():
    """L = log(x y + exp(x)) with a diamond (x is used twice), and the names of its nodes."""
    x = minimask.tensor(0.5, dtype=minimask.float64, requires_grad=True)
    y = minimask.tensor(2.0, dtype=minimask.float64, requires_grad=True)
    u, v = x * y, minimask.exp(x)
    s = u + v
    loss = minimask.log(s)
    return loss, {id(x): "x", id(y): "y", id(u): "u", id(v): "v", id(s): "s", id(loss): "L"}


@exercise("01.3", "the backward's topological order", "topological_order")
def check_topological_order(topological_order):
    """On lesson 01's graph: every node once, the root first, and for every edge of the
    graph the tensor before the inputs it was computed from (the engine's order is one of
    several correct ones, so the edges are the reference, not its list)."""
    loss, names = _graph()
    order = list(topological_order(loss))
    got = [names.get(id(t), "?") for t in order]
    if sorted(got) != sorted(names.values()):
        raise Wrong(f"the order holds {got}; want each of {sorted(names.values())} once")
    if order[0] is not loss:
        raise Wrong(f"the root L must come first, got {got}")
    position = {id(t): i for i, t in enumerate(order)}
    for t in order:
        for parent in t.grad_fn.inputs if t.grad_fn is not None else ():
            if position[id(parent)] < position[id(t)]:
                raise Wrong(
                    f"{names[id(parent)]} comes before {names[id(t)]}, which was computed "
                    f"from it: {' -> '.join(got)}"
                )
    assert len(engine.topological_order(loss)) == len(order)


@exercise("01.4", "a numerical gradient by central differences", "numerical_gradient")
def check_numerical_gradient(numerical_gradient):
    """d/dx of sum(sin(x) * x^2) at 5 points against the hand derivative
    cos(x) x^2 + 2 x sin(x) (1e-6: central differences with eps 1e-6 err by ~eps^2 and
    by rounding ~1e-16 / eps = 1e-10), and the input left unchanged."""
    x = np.random.default_rng(3).uniform(-2, 2, 5)
    before = x.copy()
    got = np.asarray(numerical_gradient(lambda v: np.sum(np.sin(v) * v**2), x, 1e-6))
    if not np.array_equal(x, before):
        raise Wrong("numerical_gradient changed its input x: perturb a copy, or put it back")
    want = np.cos(x) * x**2 + 2 * x * np.sin(x)
    if got.shape != x.shape or not np.allclose(got, want, rtol=0, atol=1e-6):
        raise Wrong(f"at x = {x[:3].round(3)} got {got.ravel()[:3]}, the derivative is {want[:3]}")
