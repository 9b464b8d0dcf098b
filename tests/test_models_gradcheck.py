"""float64 finite-difference check of the whole Mask R-CNN training loss.

The function checked is L = sum of the five losses of the tiny model
(``MaskRCNNConfig.tiny(2)``, float64, weights randomised by ``randomize_weights`` so that
every stage has an O(1) effect) on one 64 x 64 image with 2 objects, as a function of the
parameters of every stage: backbone convs (stem, a 3x3, a shortcut), GroupNorm weight and
bias, FPN lateral and output convs, the RPN head's three convs, the box head's fcs, the box
predictor, the mask head's conv and GN, the deconvolution and the mask logits.

What is held fixed. The loss is piecewise smooth in the parameters:
- the samplers' draws: ``minimask.manual_seed(SEED)`` before every evaluation;
- the proposals: NOT fixed by reseeding. Their coordinates are decoded from the RPN's
  outputs, so they move with every backbone / FPN / RPN parameter, while autograd treats
  them as constants (they are detached, as in torchvision). A difference quotient would
  include that path and the gradient does not: for the stem conv's largest entry they
  differ by 3%. So the proposals of the unperturbed model are computed once and passed to
  every evaluation (``minimask_training_steps(..., proposals=...)``); the matching,
  sampling, levels and targets are then constant too, and the loss is exactly the function
  that backward differentiates. Its value at the base point is checked to equal
  ``model(images, targets)``'s, bit for bit;
- what is left: ReLU kinks (and the smooth-L1 switch at |d| = 1/9, where the loss is C^1).
  A step of 1e-6 crosses a kink only if a pre-activation is within ~1e-6 of 0; with the
  seeds below none does (if a change made one do so, pick another SEED, do not loosen the
  tolerance).

Tolerances. Central differences with eps = 1e-6: the truncation error is
eps^2 / 6 * |L'''| ~ 1e-13 for O(1) derivatives; rounding gives ~ u * |L| / eps ~ 3e-10
absolute (L ~ 2.4); measured, the relative errors are <= 3e-7 on entries with gradients
>= 3e-4. An entry passes if |analytic - numerical| <= 1e-4 |numerical| + 1e-9: rtol 1e-4 is
~1000x the measured error, and far below what a wrong gradient gives (a dropped term, a
wrong scale or a transposed weight changes entries by O(1) relative); atol 1e-9 is a few
times the rounding floor. The entries are drawn at random among those whose gradient is at
least 0.1 of the parameter's largest, so that the relative comparison is meaningful.
"""

import contextlib

import numpy as np
import pytest
import torch_mirror as tm

import minimask as mm
from minimask.models import MaskRCNN
from minimask.models.config import MaskRCNNConfig

SEED = 4  # minimask.manual_seed before every evaluation: the samplers' draws
EPS = 1e-6
RTOL, ATOL = 1e-4, 1e-9
ENTRIES_PER_PARAMETER = 3

CHECKED = [
    "backbone.conv1.weight",
    "backbone.layer1.0.gn1.weight",
    "backbone.layer3.0.conv2.weight",
    "backbone.layer2.0.downsample.0.weight",
    "backbone.layer4.0.downsample.1.bias",
    "fpn.lateral_convs.2.weight",
    "fpn.output_convs.0.weight",
    "fpn.output_convs.1.bias",
    "rpn.head.conv.weight",
    "rpn.head.cls_logits.weight",
    "rpn.head.bbox_pred.bias",
    "roi_heads.box_head.fc6.weight",
    "roi_heads.box_head.fc7.bias",
    "roi_heads.box_predictor.cls_score.weight",
    "roi_heads.box_predictor.bbox_pred.weight",
    "roi_heads.mask_head.convs.0.weight",
    "roi_heads.mask_head.convs.4.weight",
    "roi_heads.mask_head.deconv.weight",
    "roi_heads.mask_head.mask_logits.weight",
    "roi_heads.mask_head.mask_logits.bias",
]


@pytest.fixture(scope="module")
def problem():
    """(model, images, targets, fixed proposals, analytic gradients of L)."""
    mm.manual_seed(0)
    model = MaskRCNN(MaskRCNNConfig.tiny(2)).to(mm.float64)
    tm.randomize_weights(model, 1)
    model.train()
    image, target = tm.synthetic_example(5, 64, 64, [(6, 8, 26, 30), (28, 22, 60, 58)], [1, 2])
    images, targets = [image], [target]

    mm.manual_seed(SEED)
    model_losses = model(images, targets)
    _, _, internals = tm.minimask_training_steps(model, images, targets, SEED)
    proposals = internals["proposals"]
    losses, assignment, _ = tm.minimask_training_steps(model, images, targets, SEED, proposals)
    for name, value in model_losses.items():  # the fixed-proposal path is the model's path
        assert losses[name].item() == value.item(), name
    assert len(assignment["rpn_positive_rows"]) > 0 and len(assignment["mask_labels"]) > 0
    model.zero_grad()
    sum(losses.values()).backward()
    grads = {name: p.grad.numpy().copy() for name, p in model.named_parameters()}
    model.zero_grad()
    return model, images, targets, proposals, grads


def total_loss(model, images, targets, proposals):
    """L with the samplers reseeded and the proposals fixed, without a graph."""
    with mm.no_grad():
        losses, _, _ = tm.minimask_training_steps(model, images, targets, SEED, proposals)
    return sum(value.item() for value in losses.values())


def test_every_checked_stage_has_a_gradient(problem):
    """A check of the check: each checked parameter's gradient is far from zero (largest
    entry > 1e-4), so the differences below test something."""
    *_, grads = problem
    for name in CHECKED:
        assert np.abs(grads[name]).max() > 1e-4, name


def test_loss_gradient_matches_central_differences(problem):
    """d L / d theta of ENTRIES_PER_PARAMETER random entries of each CHECKED parameter
    equals the central difference (eps 1e-6) to rtol 1e-4, atol 1e-9 (module docstring),
    in float64, with the samplers reseeded and the proposals fixed."""
    model, images, targets, proposals, grads = problem
    params = dict(model.named_parameters())
    rng = np.random.default_rng(0)
    failures = []
    for name in CHECKED:
        grad, data = grads[name], params[name].data
        candidates = np.flatnonzero(np.abs(grad).ravel() >= 0.1 * np.abs(grad).max())
        for flat in rng.choice(candidates, min(ENTRIES_PER_PARAMETER, candidates.size), False):
            index = np.unravel_index(flat, grad.shape)
            original = data[index]
            try:
                data[index] = original + EPS
                plus = total_loss(model, images, targets, proposals)
                data[index] = original - EPS
                minus = total_loss(model, images, targets, proposals)
            finally:
                data[index] = original
            numerical = (plus - minus) / (2 * EPS)
            analytic = grad[index]
            if not abs(analytic - numerical) <= RTOL * abs(numerical) + ATOL:
                failures.append(
                    f"{name}{[int(i) for i in index]}: analytic {analytic}, numerical {numerical}"
                )
    assert not failures, "\n".join(failures)


@contextlib.contextmanager
def substituted(model, names, tensors):
    """Within the block, the parameters ``names`` of ``model`` are the Tensors ``tensors``
    (as in tests/test_models_backbone.py: gradcheck differentiates w.r.t. fresh leaves)."""
    modules = dict(model.named_modules())
    saved = []
    for name, tensor in zip(names, tensors):
        owner, attribute = name.rsplit(".", 1)
        registry = modules[owner]._parameters
        saved.append((registry, attribute, registry[attribute]))
        registry[attribute] = tensor
    try:
        yield
    finally:
        for registry, attribute, original in saved:
            registry[attribute] = original


def test_minimask_gradcheck_on_whole_parameters(problem):
    """``minimask.gradcheck`` of L w.r.t. every CHECKED parameter as a whole: random
    projections (one random unit direction over all entries of each parameter, 2 trials),
    eps 1e-6, rtol 1e-4, atol 1e-9 (module docstring); proposals fixed and samplers
    reseeded inside the function. This covers every entry of those parameters, where the
    test above looks at a few entries one at a time."""
    model, images, targets, proposals, grads = problem
    params = dict(model.named_parameters())
    leaves = [mm.tensor(params[n].numpy().copy(), requires_grad=True) for n in CHECKED]

    def loss(*weights):
        with substituted(model, CHECKED, weights):
            losses, _, _ = tm.minimask_training_steps(model, images, targets, SEED, proposals)
        return sum(losses.values())

    # A check of the check: the leaves do stand in for the parameters (their gradients are
    # the model's, bit for bit), so the gradcheck below is not comparing zeros with zeros.
    loss(*leaves).backward()
    for name, leaf in zip(CHECKED, leaves):
        assert np.array_equal(leaf.grad.numpy(), grads[name]), name
    assert mm.gradcheck(loss, tuple(leaves), eps=EPS, atol=ATOL, rtol=RTOL, projections=2)
