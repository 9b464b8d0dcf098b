"""The whole MaskRCNN on "cuda" against the same model on "cpu": a training step (the five
losses and every parameter's gradient) and an inference (boxes, labels, scores, masks),
from the same weights and the same random draws, in float64 with deterministic
algorithms on.

The model and batch are tests/cuda_model_case.py's: the tiny preset shrunk so that numba's
simulator runs every stage in minutes (two images, one of them padded; positives in both;
detections in both). The CPU run is the reference; the test checks first that it reaches
every stage (positive samples, so nonzero box and mask losses; detections to compare),
so that agreement cannot come from empty results.

Tolerance: float64, rtol 1e-10 on norms, ||cuda - cpu|| <= 1e-10 ||cpu|| for every loss,
gradient and detection array. The two backends evaluate the same formulas in float64 and
differ only in the order of sums (the tiled matmul adds in k order, BLAS in blocks; the
GPU reductions add sequentially, NumPy pairwise; atomic adds land in any order): each sum
of n terms carries a relative error of order n * 2**-53, about 1e-13 for the sums here,
and the network (GroupNorm's division by a standard deviation, the sums of the losses)
amplifies it by a modest factor. 1e-10 leaves three orders of magnitude for that, while a
wrong index or formula gives an error of order 1. The norm, not each element: one element
of a gradient can be a cancellation near 0, whose relative error says nothing.
The discrete decisions (top-k, NMS, matching, sampling, score thresholds) must come out the
same: the same labels and the same number of detections, exactly.

Runs alone with ``python -m pytest -p no:xdist -q -m cuda_model tests/test_cuda_mask_rcnn.py``
(the ``cuda_model`` marker, pyproject.toml).
"""

import numpy as np
import pytest
from cuda_model_case import batch, model

import minimask

cuda = pytest.importorskip("minimask.cuda")
pytestmark = [
    pytest.mark.cuda_model,
    pytest.mark.skipif(not cuda.is_available(), reason="no CUDA GPU or simulator"),
]

RTOL = 1e-10
SAMPLING_SEED = 1  # the RPN's and the RoI heads' samplers draw from minimask's generator


@pytest.fixture(autouse=True)
def deterministic():
    previous = minimask.are_deterministic_algorithms_enabled()
    minimask.use_deterministic_algorithms(True)
    yield
    minimask.use_deterministic_algorithms(previous)


def assert_norm_close(ours, reference, what):
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    assert ours.shape == reference.shape, (what, ours.shape, reference.shape)
    error = np.linalg.norm(ours - reference)
    assert error <= RTOL * np.linalg.norm(reference), (
        f"{what}: ||cuda - cpu|| = {error:.3g}, ||cpu|| = {np.linalg.norm(reference):.3g}"
    )


def training_step(device):
    """(losses {name: float}, gradients {parameter name: array}) of one forward and
    backward on ``device``."""
    net = model(minimask.float64, device)
    net.train()
    images, targets = batch(minimask.float64, device)
    minimask.manual_seed(SAMPLING_SEED)
    losses = net(images, targets)
    sum(losses.values()).backward()
    gradients = {
        name: None if p.grad is None else p.grad.numpy() for name, p in net.named_parameters()
    }
    return {name: value.item() for name, value in losses.items()}, gradients


def inference(device):
    """Per image {"boxes", "labels", "scores", "masks"} as host arrays."""
    net = model(minimask.float64, device)
    net.eval()
    images, _ = batch(minimask.float64, device)
    minimask.manual_seed(SAMPLING_SEED)
    return [{k: v.numpy() for k, v in d.items()} for d in net(images)]


def test_a_training_step_on_cuda_gives_the_cpu_losses_and_gradients():
    cpu_losses, cpu_gradients = training_step("cpu")
    assert cpu_losses["loss_box_reg"] > 0 and cpu_losses["loss_mask"] > 0  # positives
    assert all(g is not None for g in cpu_gradients.values())

    cuda_losses, cuda_gradients = training_step("cuda")
    assert cuda_losses.keys() == cpu_losses.keys()
    for name, value in cpu_losses.items():
        assert_norm_close(cuda_losses[name], value, name)
    assert cuda_gradients.keys() == cpu_gradients.keys()
    missing = [name for name, g in cuda_gradients.items() if g is None]
    assert missing == []
    for name, gradient in cpu_gradients.items():
        assert_norm_close(cuda_gradients[name], gradient, f"gradient of {name}")


def test_inference_on_cuda_gives_the_cpu_detections():
    cpu_detections = inference("cpu")
    assert all(len(d["labels"]) > 0 for d in cpu_detections)  # masks pasted in both images

    cuda_detections = inference("cuda")
    assert len(cuda_detections) == len(cpu_detections)
    for image, (ours, reference) in enumerate(zip(cuda_detections, cpu_detections)):
        np.testing.assert_array_equal(ours["labels"], reference["labels"])
        for key in ("boxes", "scores", "masks"):
            assert_norm_close(ours[key], reference[key], f"image {image} {key}")
