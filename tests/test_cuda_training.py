"""Moving tensors and modules to "cuda", and training steps that match the CPU's.

A small conv net (Conv2d-GroupNorm-ReLU-MaxPool2d-Flatten-Linear) takes one SGD step with
momentum and weight decay on "cuda" and on "cpu" from the same initial weights; the
loss, every parameter after the step and the momentum buffers must agree. A two-step Adam
run with gradient clipping covers the other optimizer path (backend zeros / sqrt and
in-place updates of 0-d norms). A net of max_pool2d and interpolate trains on "cuda"
bit-identically from run to run, and a run saved and resumed continues exactly.

Tolerances: float64 rtol 1e-10 (the backends differ only in summation order); float32
rtol 1e-5 and atol 1e-5 times the largest |value| (a few float32 roundings, carried
through GroupNorm's division by a data-dependent standard deviation).
No GPU: numba's simulator runs the kernels (tests/conftest.py); the shapes are tiny.
"""

import numpy as np
import pytest
from kernel_launches import record_backward_launches

import minimask as mm
from minimask import nn
from minimask.nn import functional as F
from minimask.nn.utils import clip_grad_norm_
from minimask.optim import SGD, Adam

cuda = pytest.importorskip("minimask.cuda")
pytestmark = pytest.mark.skipif(not cuda.is_available(), reason="no CUDA GPU or simulator")

from minimask.cuda.array import CudaArray  # noqa: E402

TOLERANCE = {np.float64: (1e-10, 1e-12), np.float32: (1e-5, 1e-5)}


def assert_close(ours, reference, dtype, what):
    rtol, atol = TOLERANCE[dtype]
    scale = max(float(np.max(np.abs(reference), initial=0.0)), 1.0)
    np.testing.assert_allclose(ours, reference, rtol=rtol, atol=atol * scale, err_msg=what)


def test_is_available():
    assert cuda.is_available()


def test_tensor_to_cuda_and_back():
    host = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = mm.tensor(host, requires_grad=True)
    on_gpu = t.to("cuda")
    assert on_gpu.device == "cuda" and isinstance(on_gpu.data, CudaArray)
    assert on_gpu.requires_grad and on_gpu.is_leaf and on_gpu.dtype == np.float32
    back = on_gpu.to("cpu")
    assert back.device == "cpu" and isinstance(back.data, np.ndarray)
    np.testing.assert_array_equal(back.numpy(), host)
    double = t.cuda().double()
    assert double.device == "cuda" and double.dtype == np.float64
    np.testing.assert_array_equal(mm.zeros(2, 2, device="cuda:0").cpu().numpy(), np.zeros((2, 2)))
    assert "device='cuda'" in repr(on_gpu)


def test_tensor_in_place_and_item_on_cuda():
    t = mm.zeros(2, 3, device="cuda")
    t[0, 1:] = 5.0
    t[mm.tensor([1, 1], device="cuda")] = mm.tensor([1.0, 2.0, 3.0], device="cuda")
    np.testing.assert_array_equal(t.numpy(), [[0, 5, 5], [1, 2, 3]])
    assert t.sum().item() == 16.0 and t.max().item() == 5.0
    t.zero_()
    assert not t.numpy().any()


def test_module_to_cuda_keeps_the_parameter_objects():
    mm.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.GroupNorm(1, 2))
    parameters = list(model.parameters())
    model(mm.randn(4, 3)).sum().backward()
    model.to("cuda")
    assert [id(p) for p in model.parameters()] == [id(p) for p in parameters]
    for p in model.parameters():
        assert p.device == "cuda" and isinstance(p.data, CudaArray)
        assert p.grad.device == "cuda" and isinstance(p.grad.data, CudaArray)
    out = model(mm.randn(4, 3, device="cuda"))
    assert out.device == "cuda" and out.shape == (4, 2)
    model.to("cpu", mm.float64)
    assert all(p.device == "cpu" and p.dtype == np.float64 for p in model.parameters())


def small_convnet():
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.GroupNorm(2, 4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 2 * 2, 3),
    )


def sgd_step(device, dtype):
    """(loss, parameters, momentum buffers) after one SGD step from seeded weights."""
    mm.manual_seed(0)
    model = small_convnet().to(dtype).to(device)
    rng = np.random.default_rng(1)
    x = mm.tensor(rng.standard_normal((2, 2, 4, 4)), dtype=dtype, device=device)
    target = mm.tensor(np.array([2, 0]), device=device)
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x), target)
    loss.backward()
    optimizer.step()
    buffers = [optimizer.state[p]["momentum_buffer"] for p in model.parameters()]
    return (
        loss.item(),
        [p.numpy() for p in model.parameters()],
        [cuda.to_numpy(b) if isinstance(b, CudaArray) else b for b in buffers],
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_one_sgd_training_step_on_cuda_equals_cpu(dtype):
    cpu_loss, cpu_params, cpu_buffers = sgd_step("cpu", dtype)
    cuda_loss, cuda_params, cuda_buffers = sgd_step("cuda", dtype)
    assert_close(cuda_loss, cpu_loss, dtype, "loss")
    for i, (ours, reference) in enumerate(zip(cuda_params, cpu_params)):
        assert ours.dtype == dtype
        assert_close(ours, reference, dtype, f"parameter {i}")
    for i, (ours, reference) in enumerate(zip(cuda_buffers, cpu_buffers)):
        assert_close(ours, reference, dtype, f"momentum buffer {i}")


def adam_steps(device):
    mm.manual_seed(3)
    layer = nn.Linear(3, 2).double().to(device)
    optimizer = Adam(layer.parameters(), lr=0.05, weight_decay=1e-2)
    x = mm.randn(5, 3, dtype=mm.float64, device=device)
    norms = []
    for _ in range(2):
        optimizer.zero_grad()
        (layer(x) ** 2).mean().backward()
        norms.append(clip_grad_norm_(layer.parameters(), max_norm=0.1).item())
        optimizer.step()
    return norms, [p.numpy() for p in layer.parameters()]


def test_adam_with_gradient_clipping_on_cuda_equals_cpu():
    cpu_norms, cpu_params = adam_steps("cpu")
    cuda_norms, cuda_params = adam_steps("cuda")
    assert_close(np.array(cuda_norms), np.array(cpu_norms), np.float64, "norms")
    for ours, reference in zip(cuda_params, cpu_params):
        assert_close(ours, reference, np.float64, "parameter")


class PoolAndResize(nn.Module):
    """A gain per pixel, relu, max_pool2d with overlapping windows (6 x 6 -> 3 x 3), back to
    6 x 6 by "nearest" plus "bilinear" interpolation, a gain per pixel and a bias: every
    backward kernel with a deterministic and an atomic CUDA variant, with sums of several
    terms per element. (Elementwise gains rather than convolutions: a convolution's
    matmul is the slowest kernel to simulate, and its backward has no atomic variant.)"""

    def __init__(self):
        super().__init__()
        self.gain_in = nn.Parameter(mm.randn(1, 1, 6, 6))
        self.gain_out = nn.Parameter(mm.randn(1, 1, 6, 6))
        self.bias = nn.Parameter(mm.zeros(1))

    def forward(self, x):
        pooled = F.max_pool2d(F.relu(x * self.gain_in), 3, stride=2, padding=1)
        up = F.interpolate(pooled, scale_factor=2) + F.interpolate(
            pooled, size=(6, 6), mode="bilinear"
        )
        return up * self.gain_out + self.bias


def pool_and_resize_batch(step):
    """The batch of ``step``: a function of the step alone, as the trainer's batches are."""
    rng = np.random.default_rng(100 + step)
    x = rng.integers(0, 4, (2, 1, 6, 6)).astype(np.float32)  # ties for the max pool
    target = rng.standard_normal((2, 1, 6, 6)).astype(np.float32)
    return mm.tensor(x, device="cuda"), mm.tensor(target, device="cuda")


def new_pool_and_resize(seed):
    """(model, SGD with momentum and weight decay) on "cuda", weights drawn from ``seed``."""
    mm.manual_seed(seed)
    model = PoolAndResize().to("cuda")
    return model, SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)


def train_steps(model, optimizer, steps):
    """Train on the batches of ``steps``; the losses as Python floats."""
    losses = []
    for step in steps:
        x, target = pool_and_resize_batch(step)
        optimizer.zero_grad()
        loss = ((model(x) - target) ** 2).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def weight_bytes(model):
    return [p.numpy().tobytes() for p in model.parameters()]


def test_cuda_training_is_bit_identical_run_to_run_and_resumes_exactly(tmp_path, monkeypatch):
    """Three SGD steps (float32) from one seed, twice: the same losses and weights, bit for
    bit. The second run is saved after 2 steps (model and optimizer state through
    minimask.save, as minimask/engine/checkpoint.py stores them); loaded into a fresh model
    and optimizer (other initial weights, no momentum), step 3 gives the loss and the
    weights of the uninterrupted runs, bit for bit. Reference: the first run; exact. The
    backward kernels recorded (tests/kernel_launches.py) are the deterministic ones only:
    in the simulator the atomic adds might land in one fixed order too, so equal runs
    alone would not show that the deterministic kernels make them equal."""
    launched = record_backward_launches(monkeypatch)
    model, optimizer = new_pool_and_resize(seed=0)
    losses = train_steps(model, optimizer, range(3))
    weights = weight_bytes(model)
    assert set(launched) == {"_scatter_to_argmax", "_nearest_scatter", "_bilinear_scatter"}

    model, optimizer = new_pool_and_resize(seed=0)
    assert train_steps(model, optimizer, range(2)) == losses[:2]
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    state.update({f"optimizer.{k}": v for k, v in optimizer.state_dict().items()})
    mm.save(state, tmp_path / "checkpoint.npz")
    assert train_steps(model, optimizer, [2]) == losses[2:]
    assert weight_bytes(model) == weights

    saved = mm.load(tmp_path / "checkpoint.npz")
    resumed, resumed_optimizer = new_pool_and_resize(seed=1)  # other weights, overwritten
    resumed.load_state_dict({k[6:]: v for k, v in saved.items() if k.startswith("model.")})
    resumed_optimizer.load_state_dict(
        {k[10:]: v for k, v in saved.items() if k.startswith("optimizer.")}
    )
    assert train_steps(resumed, resumed_optimizer, [2]) == losses[2:]
    assert weight_bytes(resumed) == weights
    assert set(launched) == {"_scatter_to_argmax", "_nearest_scatter", "_bilinear_scatter"}
