"""The whole Mask R-CNN training loss of minimask against a PyTorch mirror, in float64.

Reference: ``tests/torch_mirror.py``, plain torch modules with minimask's structure and
parameter names (ResNetGN, FPN, RPN head, 2-fc box head and predictor, GN mask head) and
torch functions for the differentiable steps (RPN head flattening, RPN losses, aligned
multi-scale RoIAlign written with torch indexing, box losses, mask loss). The tiny model
(``MaskRCNNConfig.tiny``) is built in minimask, cast to float64, its weights randomised
(``randomize_weights``: every stage with an O(1) effect) and copied into the mirror.

The target assignment is minimask's and is given to the mirror as data: the transformed
batch, the RPN labels and regression targets, the RPN sampler's draws, the sampled
proposals with their labels, regression targets and FPN levels, and the mask targets.
To get them, ``minimask_training_steps`` calls the model's pieces in the model's own order
under the same ``minimask.manual_seed``, recording the RPN sampler's draws; the test first
checks that this piecewise path IS the model's path: its five losses and every parameter
gradient are bit-identical to ``model(images, targets)``'s.

The last test checks the RoI heads' part of that assignment itself: ``torch_assignment.py``
computes it from the original targets by torchvision's rules, in torch, and the losses the
mirror gets from it must agree too.

Tolerances (float64, u = 1.1e-16):
- each loss: relative 1e-10;
- each parameter's gradient (of the sum of the five losses): norm-relative,
  ||g_minimask - g_torch|| <= 1e-10 ||g_torch||, and every gradient norm > 1e-5 so the
  comparison is never vacuous;
- intermediate outputs (P2..P6, RPN outputs, class logits, deltas, mask logits): the same
  norm-relative 1e-10, to say where a failure starts.
Measured differences are <= 6e-15 (norm-relative): the two libraries sum the same products
in different orders. 1e-10 (stricter than the 1e-6 a float64 comparison needs) leaves a
margin of 10^4 and still catches a float32 round trip anywhere in the float64 path (~1e-8)
as well as any formula error. Norm-relative rather than elementwise because single entries
that are sums of cancelling terms differ by up to ~1e-10 of their own size (2e-10 measured).
"""

import numpy as np
import pytest
import torch
import torch_mirror as tm

import minimask as mm
from minimask.models import MaskRCNN
from minimask.models.config import MaskRCNNConfig
from minimask.ops import roi_align

RTOL = 1e-10
SEED = 3  # minimask.manual_seed before the forward: the samplers' draws

# (seed, height, width, boxes, labels) per image. The objects span all four RoI levels of
# the tiny model (canonical size 28 at level 4): ~8 px -> P2, ~18 px -> P3, ~38 px -> P4,
# ~60 px (after the 60 x 72 image is resized to 64 x 77) -> P5, so that every level of the
# box and mask poolers is compared; boxes touch the image border (RoIAlign's clamping).
SCENES = {
    "two_images": [
        (0, 64, 64, [(4, 6, 12, 14), (30, 36, 48, 54), (20, 4, 60, 40)], [1, 2, 3]),
        (1, 60, 72, [(0, 2, 70, 58), (40, 44, 56, 60)], [2, 1]),
    ],
    "second_image_empty": [
        (2, 64, 64, [(0, 0, 30, 26), (36, 30, 60, 64)], [3, 1]),
        (3, 64, 64, [], []),
    ],
}


@pytest.fixture(autouse=True, scope="module")
def single_threaded_torch():
    """One torch thread (tests/conftest.py: torch's OpenMP workers starve Numba's)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def norm_relative(ours, theirs):
    ours = np.asarray(ours.numpy() if isinstance(ours, mm.Tensor) else ours)
    theirs = theirs.detach().numpy()
    return np.linalg.norm(ours - theirs) / np.linalg.norm(theirs)


def build(num_classes=3, weight_seed=1):
    mm.manual_seed(0)
    model = MaskRCNN(MaskRCNNConfig.tiny(num_classes)).to(mm.float64)
    tm.randomize_weights(model, weight_seed)
    model.train()
    return model


def gradients(model):
    return {name: p.grad.numpy().copy() for name, p in model.named_parameters()}


# ------------------------------------------------------------------ the RoIAlign mirror
def test_roi_align_mirror_matches_minimask():
    """The mirror's torch RoIAlign (aligned=True, sampling_ratio 2) equals
    minimask.ops.roi_align, forward and gradient w.r.t. the features, to rtol 1e-12 with
    atol 1e-12 (float64; each value is a sum of 16 weighted reads): boxes inside, across
    the border, in the band within one cell outside (clamped onto the edge), entirely
    outside beyond -1 / H (zero), degenerate, and on two feature maps of one batch."""
    rng = np.random.default_rng(0)
    feature = rng.standard_normal((2, 3, 9, 11))
    rois = np.array(
        [
            [0, 3.0, 4.0, 20.0, 18.0],
            [1, -6.0, -5.0, 10.0, 9.0],  # across the top-left border
            [0, 30.0, 22.0, 47.0, 40.0],  # across the bottom-right border (9 x 11 cells)
            [1, -7.0, 1.0, -1.0, 30.0],  # within one cell left of the map: clamped
            [0, -30.0, -30.0, -12.0, -10.0],  # beyond -1: every sample zero
            [1, 12.5, 12.5, 12.5, 12.5],  # degenerate
            [0, 0.0, 0.0, 44.0, 36.0],  # the whole map
        ]
    )
    for scale in (0.25, 1.0):
        ours_in = mm.tensor(feature, requires_grad=True)
        ours = roi_align(
            ours_in, mm.tensor(rois), 5, spatial_scale=scale, sampling_ratio=2, aligned=True
        )
        theirs_in = torch.tensor(feature, requires_grad=True)
        theirs = tm.roi_align(theirs_in, rois, 5, scale, 2)
        np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-12, atol=1e-12)
        upstream = rng.standard_normal(theirs.shape)
        (ours * mm.tensor(upstream)).sum().backward()
        (theirs * torch.tensor(upstream)).sum().backward()
        np.testing.assert_allclose(
            ours_in.grad.numpy(), theirs_in.grad.numpy(), rtol=1e-12, atol=1e-12
        )
    assert np.all(theirs.detach().numpy()[4] == 0)  # the box beyond -1 reads nothing


# ------------------------------------------------------------------ the whole loss
@pytest.mark.parametrize("scene", SCENES)
def test_losses_and_gradients_match_torch_mirror(scene):
    """float64, tiny model, 2 images (SCENES; in "second_image_empty" the second image has
    no object, so all its anchors and proposals are background). Against the PyTorch
    mirror (tests/torch_mirror.py) given minimask's target assignment: each of the five
    losses to relative 1e-10, each parameter's gradient of their sum to norm-relative
    1e-10 (see the module docstring). First, the piecewise path that exposes the
    assignment is checked to be exactly the model's path (bit-identical losses and
    gradients)."""
    model = build()
    examples = [tm.synthetic_example(*spec) for spec in SCENES[scene]]
    images = [image for image, _ in examples]
    targets = [target for _, target in examples]

    # The model's own forward and backward.
    mm.manual_seed(SEED)
    model_losses = model(images, targets)
    sum(model_losses.values()).backward()
    model_grads = gradients(model)
    model.zero_grad()

    # The same, piece by piece: identical to the bit.
    losses, assignment, internals = tm.minimask_training_steps(model, images, targets, SEED)
    for name, value in model_losses.items():
        assert losses[name].item() == value.item(), name
    sum(losses.values()).backward()
    for name, p in model.named_parameters():
        assert np.array_equal(p.grad.numpy(), model_grads[name]), name

    # The assignment exercises what it should.
    num_anchors = assignment["rpn_labels"].shape[1]
    assert len(assignment["rpn_positive_rows"]) > 0
    assert len(assignment["mask_labels"]) > 0
    if scene == "two_images":
        assert set(assignment["box_levels"]) == {2, 3, 4, 5}
        assert set(assignment["mask_levels"]) == {2, 3, 4, 5}
    else:
        assert not np.any(assignment["rpn_labels"][1] == 1)
        second_image = assignment["rpn_sampled_rows"] >= num_anchors
        assert second_image.any() and not (assignment["rpn_positive_rows"] >= num_anchors).any()
        assert np.all(assignment["box_labels"][assignment["box_rois"][:, 0] == 1] == 0)
        assert np.all(assignment["mask_rois"][:, 0] == 0)

    # The mirror, from the same batch and weights.
    theirs = tm.copy_weights(model, tm.TorchMaskRCNN(model.cfg).double())
    their_internals = {}
    their_losses = theirs.losses(
        torch.tensor(internals["batch"].numpy()), assignment, their_internals
    )
    sum(their_losses.values()).backward()

    for level, (ours, their) in enumerate(zip(internals["features"], their_internals["features"])):
        assert norm_relative(ours, their) <= RTOL, f"P{level + 2}"
    for name in ("objectness", "box_deltas", "class_logits", "box_regression", "mask_logits"):
        assert norm_relative(internals[name], their_internals[name]) <= RTOL, name
    for name, value in losses.items():
        their_value = their_losses[name].item()
        assert abs(value.item() - their_value) <= RTOL * abs(their_value), name
    their_params = dict(theirs.named_parameters())
    assert set(their_params) == set(model_grads)
    for name, p in model.named_parameters():
        their_grad = their_params[name].grad
        assert np.linalg.norm(their_grad.numpy()) > 1e-5, name
        assert norm_relative(p.grad, their_grad) <= RTOL, name


# ------------------------------------------------------------------ an assignment of its own
# (seed, height, width, boxes, labels, crowd boxes) per image, in original pixels. Both
# images are resized by the tiny preset (64 / 60 and 64 / 48); the crowd box covers the
# second object of the first image entirely, so positives lie in it.
ASSIGNMENT_SCENE = [
    (5, 60, 72, [(6, 8, 30, 34), (40, 20, 66, 50)], [1, 2], [(34, 14, 72, 56)]),
    (6, 48, 64, [(10, 6, 40, 40)], [3], []),
]


def _jittered_proposals(boxes, ratio, rng, per_box=12, background=24, size=(64, 77)):
    """Proposals in resized pixels: per_box jittered copies of each (resized) box, most of
    them IoU >= 0.5 with it, and random boxes, most of them background."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * np.tile(ratio, 2)
    near = np.repeat(boxes, per_box, axis=0) + rng.uniform(-2.5, 2.5, (len(boxes) * per_box, 4))
    corner = rng.uniform(0, 0.7, (background, 2)) * size[::-1]
    far = np.concatenate([corner, corner + rng.uniform(4, 20, (background, 2))], axis=1)
    return np.concatenate([near, far])


def test_roi_head_assignment_matches_torchvision_rules_written_in_torch():
    """minimask's RoI-head target assignment against tests/torch_assignment.py (torchvision's
    rules in torch, computed from the original targets; the sampler's permutations drawn
    from the same generator state). Two resized images, more positives than the sampler
    takes (tiny preset: 32 per image, a quarter positive), a crowd box over positives.
    Compared: the sampled rois and their FPN levels and labels (exact), the regression
    targets (float64, rtol 1e-12), the mask targets (minimask's are float32: atol 1e-6), and
    the losses the mirror computes from its own assignment (loss_mask to relative 1e-6,
    the float32 targets; the others to RTOL). A changed positive fraction, an inverted
    mask scale or a crowd rule that ignores positives each fails here."""
    import torch_assignment as ta

    model = build()
    rng = np.random.default_rng(7)
    images, targets, proposals = [], [], []
    for seed, height, width, boxes, labels, crowd in ASSIGNMENT_SCENE:
        image, target = tm.synthetic_example(seed, height, width, boxes, labels)
        target["boxes"] = mm.tensor(target["boxes"].numpy().astype(np.float64))
        target["crowd_boxes"] = mm.tensor(np.asarray(crowd, np.float64).reshape(-1, 4))
        new_h, new_w = ta.resized_size(height, width, model.cfg.min_size, model.cfg.max_size)
        ratio = np.array([new_w / width, new_h / height])
        proposals.append(_jittered_proposals(boxes, ratio, rng, size=(new_h, new_w)))
        images.append(image)
        targets.append(target)

    losses, ours, internals = tm.minimask_training_steps(
        model, images, targets, SEED, proposals=[mm.tensor(p) for p in proposals]
    )
    theirs = ta.roi_head_assignment(
        proposals, images, targets, model.cfg, internals["roi_sampler_state"]
    )

    # The scene exercises what it should: the cap binds, positives lie in the crowd box.
    labels = theirs["box_labels"]
    first = theirs["box_rois"][:, 0] == 0
    cap = int(model.cfg.box_batch_size_per_image * ta.POSITIVE_FRACTION)
    assert (labels[first] > 0).sum() == cap and (labels[~first] > 0).sum() == cap
    crowd = torch.tensor(ASSIGNMENT_SCENE[0][5], dtype=torch.float64) * 64 / 60
    in_crowd = ta.crowd_covered(torch.tensor(theirs["mask_rois"][:, 1:]), crowd).numpy()
    assert in_crowd[theirs["mask_rois"][:, 0] == 0].any()

    for key in ("box_rois", "box_levels", "box_labels", "mask_rois", "mask_levels", "mask_labels"):
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)
    np.testing.assert_allclose(
        ours["box_regression_targets"], theirs["box_regression_targets"], rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(ours["mask_goal"], theirs["mask_goal"], rtol=0, atol=1e-6)

    mirror = tm.copy_weights(model, tm.TorchMaskRCNN(model.cfg).double())
    their_losses = mirror.losses(torch.tensor(internals["batch"].numpy()), {**ours, **theirs})
    for name, value in losses.items():
        tolerance = 1e-6 if name == "loss_mask" else RTOL
        their_value = their_losses[name].item()
        assert abs(value.item() - their_value) <= tolerance * abs(their_value), name
