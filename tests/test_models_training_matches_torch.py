"""Five training steps of two small networks in minimask and in PyTorch, from the same weights.

Each network is built in minimask (which initialises it), its twin in torch.nn gets the
same weights through ``load_state_dict`` (the parameter names are the same), and both
train with SGD(lr=0.05, momentum=0.9, weight_decay=1e-4) on the same batch with
cross_entropy. After every step the loss and every parameter must agree. This exercises
everything between them: forward, backward through every layer, gradient accumulation,
zero_grad, weight decay and momentum.

Tolerances.
- float64, rtol 1e-9 (atol 1e-12): each value is a sum of at most a few hundred O(1)
  products, computed in a different order by the two libraries (u = 1.1e-16); measured
  differences after five steps are below 1e-14 relative, so 1e-9 leaves a wide margin,
  while a formula error (a wrong gradient, a dropped weight decay: 6e-5 of the largest
  weight here) is far above it.
- float32, rtol 1e-4 and atol 1e-4 times the largest |value| of the tensor: u = 6e-8.
  Measured differences are about one rounding of the largest value (6e-8 of it); entries
  near zero differ by that same absolute amount, which is large relative to them (up to
  1e-5), because they are computed from larger terms. GroupNorm's division by a
  data-dependent standard deviation and momentum, which carries each step's difference
  into the next ones, amplify this. 1e-4 is ~1000x the measured differences and still
  catches any error of 1e-3 or more; finer errors such as a dropped weight decay are the
  float64 run's job (the last test checks that it sees one).
"""

import numpy as np
import pytest
import torch

import minimask as mm
from minimask import nn
from minimask.nn import functional as F
from minimask.optim import SGD

STEPS = 5
OPTIONS = dict(lr=0.05, momentum=0.9, weight_decay=1e-4)
TOLERANCE = {np.float64: (1e-9, 1e-12), np.float32: (1e-4, 1e-4)}


def mlp(lib):
    return lib.Sequential(lib.Linear(8, 16), lib.ReLU(), lib.Linear(16, 5))


def convnet(lib):
    return lib.Sequential(
        lib.Conv2d(3, 8, 3, padding=1),
        lib.GroupNorm(2, 8),
        lib.ReLU(),
        lib.MaxPool2d(2),
        lib.Conv2d(8, 4, 3, padding=1),
        lib.Flatten(),
        lib.Linear(4 * 4 * 4, 5),
    )


NETWORKS = {"mlp": (mlp, (12, 8)), "convnet": (convnet, (6, 3, 8, 8))}


def assert_close(ours, theirs, dtype, what):
    rtol, atol = TOLERANCE[dtype]
    theirs = theirs.detach().numpy()
    scale = max(1.0, float(np.abs(theirs).max()))
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=rtol, atol=atol * scale, err_msg=what)


def train_both(name, dtype, weight_decay=OPTIONS["weight_decay"]):
    """Train the minimask network and its torch twin; yield (step, ours, theirs, losses)."""
    build, input_shape = NETWORKS[name]
    mm.manual_seed(0)
    ours = build(nn).to(dtype)
    theirs = build(torch.nn).to(torch.float64 if dtype == np.float64 else torch.float32)
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})

    rng = np.random.default_rng(0)
    x = rng.normal(size=input_shape).astype(dtype)
    target = rng.integers(0, 5, size=input_shape[0])
    options = {**OPTIONS, "weight_decay": weight_decay}
    our_opt, torch_opt = (
        SGD(ours.parameters(), **options),
        torch.optim.SGD(theirs.parameters(), **options),
    )
    for step in range(STEPS):
        our_opt.zero_grad()
        torch_opt.zero_grad()
        our_loss = F.cross_entropy(ours(mm.tensor(x)), mm.tensor(target))
        torch_loss = torch.nn.functional.cross_entropy(
            theirs(torch.tensor(x)), torch.tensor(target)
        )
        our_loss.backward()
        torch_loss.backward()
        our_opt.step()
        torch_opt.step()
        yield step, ours, theirs, (our_loss, torch_loss)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", NETWORKS)
def test_training_matches_torch(name, dtype):
    """Loss and every parameter after each of 5 SGD steps (momentum 0.9, weight decay
    1e-4) equal PyTorch's: rtol 1e-9 in float64, 1e-4 in float32 (see the module
    docstring for why)."""
    for step, ours, theirs, (our_loss, torch_loss) in train_both(name, dtype):
        assert_close(our_loss, torch_loss, dtype, f"loss at step {step}")
        theirs_params = dict(theirs.named_parameters())
        for param_name, p in ours.named_parameters():
            assert p.dtype == np.dtype(dtype)
            assert_close(p, theirs_params[param_name], dtype, f"{param_name} after step {step}")
    assert our_loss.item() < np.log(5)  # below chance level (5 classes): it learns


def test_weight_decay_is_visible_at_float64_tolerance():
    """A check of the check: five steps with weight decay 1e-4 and five without end ~6e-5
    (relative to the largest weight) apart, in torch and in minimask alike, so the float64
    comparison above (rtol 1e-9) sees a weight decay that is dropped or applied wrongly,
    and minimask's SGD does apply it (both > 1e-7, 1000x the tolerance)."""

    def final_weights(weight_decay):
        *_, (_, ours, theirs, _) = train_both("mlp", np.float64, weight_decay=weight_decay)
        return (
            {k: p.numpy().copy() for k, p in ours.named_parameters()},
            {k: p.detach().numpy().copy() for k, p in theirs.named_parameters()},
        )

    (ours_decay, theirs_decay), (ours_plain, theirs_plain) = final_weights(1e-4), final_weights(0)

    def largest_relative_difference(a, b):
        return max(np.max(np.abs(a[k] - b[k])) / np.abs(b[k]).max() for k in b)

    assert largest_relative_difference(theirs_decay, theirs_plain) > 1e-7
    assert largest_relative_difference(ours_decay, ours_plain) > 1e-7
