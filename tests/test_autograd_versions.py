"""Version counters (minimask/autograd/version.py): an in-place write into a tensor that a
Function saved for backward makes that backward raise, naming the operation and the
tensor's shape, instead of giving a silently wrong gradient.

Reference: PyTorch raises in the same situations ("one of the variables needed for
gradient computation has been modified by an inplace operation"); the first test runs the
same program in both. Every other test names the in-place path it exercises.
"""

import numpy as np
import pytest
import torch

import minimask
from minimask import nn
from minimask.optim import SGD

MODIFIED = "modified by an in-place operation"


def _saved_product():
    """(x, w, z): z = sum(w * x), where Mul saved the no-grad tensor x."""
    x = (minimask.tensor([1.0, 2.0, 3.0]) * 2).detach()
    w = minimask.tensor([1.0, 1.0, 1.0], requires_grad=True)
    return x, w, (w * x).sum()


def test_the_silently_wrong_gradient_now_raises_as_in_pytorch():
    """Reference: PyTorch. x[0] = 100 after z = sum(w * x) was built: both libraries refuse
    the backward (minimask used to return w.grad = [100, 4, 6])."""
    tx = (torch.tensor([1.0, 2.0, 3.0]) * 2).detach()
    tw = torch.ones(3, requires_grad=True)
    tz = (tw * tx).sum()
    tx[0] = 100.0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        tz.backward()
    x, w, z = _saved_product()
    x[0] = 100.0
    with pytest.raises(RuntimeError, match=rf"Mul: .*input 1, shape \(3,\)\) .*{MODIFIED}"):
        z.backward()
    assert w.grad is None


def test_without_a_write_the_gradient_is_the_hand_computed_one():
    """By hand: d/dw sum(w * x) = x = [2, 4, 6]. Exact."""
    x, w, z = _saved_product()
    z.backward()
    assert w.grad.tolist() == [2.0, 4.0, 6.0]


def _scale_data_in_place(x):
    x.data *= 1.0  # what an optimizer's `p.data -= lr * g` does: numpy in place, then set


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(lambda x: x.__setitem__(slice(None), 0.0), id="setitem"),
        pytest.param(lambda x: x.zero_(), id="zero_"),
        pytest.param(lambda x: setattr(x, "data", x.data * 3), id="data assignment"),
        pytest.param(lambda x: _scale_data_in_place(x), id="data *="),
        pytest.param(lambda x: nn.init.constant_(x, 5.0), id="nn.init.constant_"),
        pytest.param(lambda x: nn.init.normal_(x), id="nn.init.normal_"),
    ],
)
def test_every_in_place_path_bumps_the_version(write):
    """Each in-place path (Tensor.__setitem__, zero_, .data assignment, `.data op=`, the
    nn.init fills) raises at backward; the version moved by at least one."""
    x, _, z = _saved_product()
    before = x._version.value
    write(x)
    assert x._version.value > before
    with pytest.raises(RuntimeError, match=MODIFIED):
        z.backward()


def test_a_write_through_a_view_or_a_detached_alias_is_seen():
    """A reshape of x (a view of its memory) and x.detach() share x's counter: a write
    through either invalidates what a Function saved of x."""
    for alias in (lambda x: x.reshape(3, 1), lambda x: x.detach()):
        x, _, z = _saved_product()
        view = alias(x)
        assert np.shares_memory(view.data, x.data)
        view[0] = 7.0
        with pytest.raises(RuntimeError, match=MODIFIED):
            z.backward()


def test_a_saved_output_written_in_place_is_named_as_the_output():
    """Exp saves its output for the backward (d exp(a) = exp(a) da); writing into the
    output (detached, outside the graph) before backward raises and says "output"."""
    a = minimask.tensor([0.0, 1.0], requires_grad=True)
    y = a.exp()
    loss = y.sum()
    y.detach()[0] = 0.0
    with pytest.raises(RuntimeError, match=r"output, shape \(2,\)"):
        loss.backward()


def test_an_optimizer_step_between_forward_and_backward_is_refused():
    """Reference: PyTorch refuses the same (a step writes the weights the graph saved)."""
    minimask.manual_seed(0)
    layer = nn.Linear(3, 2)
    optimizer = SGD(layer.parameters(), lr=0.1)
    loss = (layer(minimask.randn(4, 3)) ** 2).sum()
    loss.backward(retain_graph=True)
    optimizer.step()
    with pytest.raises(RuntimeError, match=MODIFIED):
        loss.backward()


def test_the_optimizers_own_updates_do_not_trip_a_training_loop():
    """Five SGD steps with momentum and weight decay: each step's graph is built after the
    previous update, so nothing raises, and the loss falls (a least-squares fit)."""
    minimask.manual_seed(0)
    layer = nn.Linear(3, 1)
    optimizer = SGD(layer.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    x = minimask.randn(16, 3)
    y = x @ minimask.tensor([[1.0], [-2.0], [0.5]])
    losses = []
    for _ in range(5):
        loss = ((layer(x) - y) ** 2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_in_place_writes_on_a_tensor_that_requires_grad_need_no_grad():
    """zero_() and assignment on a leaf that requires grad raise while gradients are
    recorded (PyTorch: "a leaf Variable that requires grad is being used in an in-place
    operation"); under no_grad() they write, as an initialisation does."""
    w = minimask.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"zero_\(\).*requires grad \(a leaf, shape \(3,\)\)"):
        w.zero_()
    with pytest.raises(RuntimeError, match="in-place assignment to a tensor that requires grad"):
        w[1] = 2.0
    assert w.tolist() == [1.0, 1.0, 1.0]
    with minimask.no_grad():
        w.zero_()
        w[1] = 2.0
    assert w.tolist() == [0.0, 2.0, 0.0]


def test_plus_equals_rebinds_and_never_invalidates_a_graph():
    """minimask's `x += 1` builds x + 1 (not in place), so the graph that saved the old x
    still backwards; by hand d/dw sum(w * x) = x = [2, 4, 6]."""
    x, w, z = _saved_product()
    x += 1
    assert x.tolist() == [3.0, 5.0, 7.0]
    z.backward()
    assert w.grad.tolist() == [2.0, 4.0, 6.0]
