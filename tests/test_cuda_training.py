"""Moving tensors and modules to "cuda", and training steps that match the CPU's.

A small conv net (Conv2d-GroupNorm-ReLU-MaxPool2d-Flatten-Linear) takes one SGD step with
momentum and weight decay on "cuda" and on "cpu" from the same initial weights; the
loss, every parameter after the step and the momentum buffers must agree. A two-step Adam
run with gradient clipping covers the other optimizer path (backend zeros / sqrt and
in-place updates of 0-d norms).

Tolerances: float64 rtol 1e-10 (the backends differ only in summation order); float32
rtol 1e-5 and atol 1e-5 times the largest |value| (a few float32 roundings, carried
through GroupNorm's division by a data-dependent standard deviation).
No GPU: numba's simulator runs the kernels (tests/conftest.py); the shapes are tiny.
"""

import numpy as np
import pytest

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
