"""Module, Parameter, containers, layers and nn.init, against their PyTorch twins.

Structure (names, order, repr, fans, gains) must equal PyTorch's exactly. Layer outputs and
gradients are compared in float64 with the weights copied from minimask into torch:
each output is a sum of at most a few hundred products of O(1) numbers, so the two
libraries' different summation orders differ by far less than rtol 1e-9 (u = 1.1e-16),
while a wrong argument (stride and padding swapped, a transposed weight) is off by O(1).
Sampling statistics of nn.init use fixed seeds and 5-standard-error bounds stated in
each test.
"""

import math

import numpy as np
import pytest
import torch

import minimask as mm
from minimask import nn
from minimask.nn import init

# ------------------------------------------------------------------ twin models


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.norm = nn.GroupNorm(2, 4)
        self.register_buffer("scale", mm.ones(4))
        self.register_buffer("steps", mm.tensor(0))
        self.register_buffer("cache", mm.zeros(2), persistent=False)

    def forward(self, x):
        return self.norm(self.conv(x)) * self.scale.reshape(1, 4, 1, 1)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = Block()
        self.heads = nn.ModuleList([nn.Linear(4, 2), nn.Linear(4, 3, bias=False)])
        self.tail = nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(4, 2, 2, stride=2))
        self.extra = nn.Parameter(mm.zeros(2))


class TorchBlock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.norm = torch.nn.GroupNorm(2, 4)
        self.register_buffer("scale", torch.ones(4))
        self.register_buffer("steps", torch.tensor(0))
        self.register_buffer("cache", torch.zeros(2), persistent=False)


class TorchNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = TorchBlock()
        self.heads = torch.nn.ModuleList([torch.nn.Linear(4, 2), torch.nn.Linear(4, 3, bias=False)])
        self.tail = torch.nn.Sequential(
            torch.nn.ReLU(), torch.nn.ConvTranspose2d(4, 2, 2, stride=2)
        )
        self.extra = torch.nn.Parameter(torch.zeros(2))


def shapes(named):
    return [(name, tuple(t.shape)) for name, t in named]


def test_names_and_order_match_torch():
    """named_parameters, named_buffers, state_dict keys, named_modules and
    named_children: the same names, in the same order, with the same shapes as the
    PyTorch twin (a module's own parameters first, then its children's, depth first;
    non-persistent buffers not in the state_dict). Exact."""
    ours, theirs = Net(), TorchNet()
    assert shapes(ours.named_parameters()) == shapes(theirs.named_parameters())
    assert shapes(ours.named_buffers()) == shapes(theirs.named_buffers())
    assert shapes(ours.state_dict().items()) == shapes(theirs.state_dict().items())
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    assert [n for n, _ in ours.named_parameters(recurse=False)] == ["extra"]
    assert len(list(ours.parameters())) == len(list(theirs.parameters())) == 10
    assert len(list(ours.modules())) == 10 and len(list(ours.children())) == 3


def test_repr_matches_torch():
    """print(model) gives PyTorch's nested text, character for character. Exact."""
    assert repr(Net()) == repr(TorchNet()).replace("TorchBlock", "Block").replace("TorchNet", "Net")
    ours = nn.Sequential(nn.Conv2d(3, 8, (3, 5), stride=2, dilation=2, bias=False), nn.Flatten())
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, (3, 5), stride=2, dilation=2, bias=False), torch.nn.Flatten()
    )
    assert repr(ours) == repr(theirs)
    assert repr(nn.ConvTranspose2d(4, 2, 2, stride=2, output_padding=1)) == repr(
        torch.nn.ConvTranspose2d(4, 2, 2, stride=2, output_padding=1)
    )
    assert repr(nn.GroupNorm(4, 8, affine=False)) == repr(torch.nn.GroupNorm(4, 8, affine=False))
    assert repr(nn.GroupNorm(4, 8, bias=False)) == repr(torch.nn.GroupNorm(4, 8, bias=False))
    assert [n for n, _ in nn.GroupNorm(4, 8, bias=False).named_parameters()] == ["weight"]
    assert repr(nn.Identity()) == repr(torch.nn.Identity())
    # PyTorch also prints dilation and ceil_mode, which our MaxPool2d does not have
    assert repr(nn.MaxPool2d(3, 2, 1)) == "MaxPool2d(kernel_size=3, stride=2, padding=1)"


def test_shared_module_is_listed_once():
    """A module assigned under two names: its parameters are listed once by
    named_parameters (under the first name) but appear under both names in the
    state_dict, as in PyTorch. Exact."""
    ours, theirs = nn.Module(), torch.nn.Module()
    ours.a = ours.b = nn.Linear(2, 2)
    theirs.a = theirs.b = torch.nn.Linear(2, 2)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert list(ours.state_dict()) == list(theirs.state_dict())


# ------------------------------------------------------------------ registration rules
def test_attribute_registration_rules():
    """Parameters, modules and buffers go to their registries; re-assigning keeps the
    position; None is allowed for a parameter; a plain Tensor assigned to a parameter's
    name, or registration before super().__init__(), is an error naming the problem.
    Reference: torch.nn.Module's rules."""
    m = nn.Module()
    m.w = nn.Parameter(mm.zeros(2))
    m.child = nn.Linear(2, 2)
    m.v = nn.Parameter(mm.zeros(3))
    m.w = nn.Parameter(mm.ones(2))
    assert [n for n, _ in m.named_parameters(recurse=False)] == ["w", "v"]
    assert m.w.numpy().tolist() == [1.0, 1.0]
    m.v = None
    assert [n for n, _ in m.named_parameters(recurse=False)] == ["w"]
    with pytest.raises(TypeError, match="cannot assign Tensor to parameter 'w'"):
        m.w = mm.zeros(2)
    m.plain = 3
    assert "plain" in m.__dict__ and m.plain == 3
    m.plain = nn.Parameter(mm.zeros(1))  # a plain attribute turned parameter
    assert "plain" not in m.__dict__ and m.plain is m._parameters["plain"]
    del m.child
    assert not hasattr(m, "child") and list(m.children()) == []
    with pytest.raises(AttributeError, match="has no attribute 'missing'"):
        m.missing  # noqa: B018
    with pytest.raises(KeyError, match="attribute 'training' already exists"):
        m.register_buffer("training", mm.zeros(1))
    with pytest.raises(KeyError, match="'forward': it is an attribute of the class Module"):
        m.forward = nn.Parameter(mm.zeros(1))
    m.register_buffer("b", mm.zeros(1), persistent=False)
    m.register_buffer("b", mm.ones(1))
    assert list(m.state_dict()) == ["w", "plain", "b"]

    class Forgetful(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(mm.zeros(1))

    with pytest.raises(AttributeError, match=r"call super\(\).__init__\(\) first"):
        Forgetful()
    with pytest.raises(NotImplementedError, match="Module has no forward"):
        nn.Module()(mm.zeros(1))


def test_deepcopy():
    """copy.deepcopy of a model gives independent parameters with equal values and the
    same names (what an EMA or a best-checkpoint copy needs). Exact."""
    import copy

    model = Net()
    clone = copy.deepcopy(model)
    assert list(clone.state_dict()) == list(model.state_dict())
    assert clone.stem.conv.weight is not model.stem.conv.weight
    np.testing.assert_array_equal(clone.stem.conv.weight.numpy(), model.stem.conv.weight.numpy())
    clone.stem.conv.weight.data[...] = 0
    assert np.any(model.stem.conv.weight.numpy() != 0)


def test_parameter():
    """Parameter: a leaf that requires grad; from a Tensor it shares the array (as
    torch.nn.Parameter does), from a NumPy array it copies. Exact."""
    t = mm.zeros(3)
    p = nn.Parameter(t)
    assert isinstance(p, mm.Tensor) and p.requires_grad and p.is_leaf and p.data is t.data
    array = np.ones(2, np.float64)
    q = nn.Parameter(array, requires_grad=False)
    assert q.dtype == np.float64 and not q.requires_grad and q.data is not array
    assert repr(p).startswith("Parameter containing:\ntensor(")
    assert type(p * 2) is mm.Tensor
    with pytest.raises(RuntimeError, match="only floating point"):
        nn.Parameter(mm.tensor([1, 2]))


def test_containers():
    """Sequential and ModuleList: indexing (negative too), slicing, len, iteration,
    append, extend, setitem; names "0", "1", ...; out-of-range indices raise. Reference:
    torch.nn.Sequential / ModuleList."""
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    seq = nn.Sequential(a, b)
    seq.append(c)
    assert len(seq) == 3 and list(seq) == [a, b, c] and seq[-1] is c
    assert isinstance(seq[1:], nn.Sequential) and list(seq[1:]) == [b, c]
    assert [n for n, _ in seq[1:].named_children()] == ["1", "2"]  # keys kept, as in torch
    with pytest.raises(IndexError, match="index 3 is out of range for length 3"):
        seq[3]
    x = mm.randn(4, 2)
    np.testing.assert_array_equal(seq(x).numpy(), c(b(a(x))).numpy())

    layers = nn.ModuleList([a])
    layers.extend([b, c])
    layers[1] = nn.Identity()
    assert [type(m).__name__ for m in layers] == ["Linear", "Identity", "Linear"]
    assert [n for n, _ in layers.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert list(layers[::2]) == [a, c] and layers[-3] is a
    with pytest.raises(NotImplementedError, match="iterate over it"):
        layers(x)


def test_apply_train_eval():
    """apply visits children before their parent (PyTorch's order); train/eval set
    .training on every module and return the module. Exact."""
    ours, theirs = Net(), TorchNet()
    visited, torch_visited = [], []
    ours.apply(lambda m: visited.append(type(m).__name__))
    theirs.apply(lambda m: torch_visited.append(type(m).__name__.replace("Torch", "")))
    assert visited == torch_visited
    assert ours.eval() is ours and not any(m.training for m in ours.modules())
    assert ours.train() is ours and all(m.training for m in ours.modules())
    ours.stem.train(False)
    assert ours.training and not ours.stem.conv.training and ours.heads[0].training
    with pytest.raises(TypeError, match="mode must be a bool"):
        ours.train("no")


def test_zero_grad():
    """After backward every parameter that took part has a grad; zero_grad() sets them
    all to None; set_to_none=False gives zeros; a second backward without zero_grad
    accumulates (adds). Exact."""
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = mm.randn(5, 3)
    model(x).sum().backward()
    first = [p.grad.numpy() for p in model.parameters()]
    model(x).sum().backward()
    for g, p in zip(first, model.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), 2 * g, rtol=1e-6)
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    model(x).sum().backward()
    model.zero_grad(set_to_none=False)
    assert all(np.all(p.grad.numpy() == 0) for p in model.parameters())


# ------------------------------------------------------------------ state dict
def test_state_dict_round_trip_through_save_load(tmp_path):
    """minimask.save(model.state_dict()) and load_state_dict(minimask.load(...)) into a
    differently initialised model: every parameter and buffer equal, outputs equal,
    the same Parameter objects. Exact."""
    mm.manual_seed(1)
    source = Net()
    source.stem.scale.data[...] = 2.0
    source.stem.steps.data[...] = 7
    mm.manual_seed(2)
    target = Net()
    params_before = list(target.parameters())
    mm.save(source.state_dict(), tmp_path / "model.npz")
    result = target.load_state_dict(mm.load(tmp_path / "model.npz"))
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert all(p is q for p, q in zip(params_before, target.parameters()))
    for (name, a), (_, b) in zip(source.state_dict().items(), target.state_dict().items()):
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
    x = mm.randn(2, 3, 5, 5)
    np.testing.assert_array_equal(source.stem(x).numpy(), target.stem(x).numpy())


def test_state_dict_values_are_detached_views():
    """state_dict values are detached Tensors sharing memory with the parameters (as in
    PyTorch): no grad, and an in-place change of a parameter shows through. Exact."""
    model = nn.Linear(2, 2)
    state = model.state_dict()
    assert not state["weight"].requires_grad and state["weight"].is_leaf
    model.weight.data[...] = 5.0
    assert np.all(state["weight"].numpy() == 5.0)


def test_load_state_dict_reports_every_problem_at_once():
    """Missing, unexpected and mis-shaped keys are named in ONE error, and nothing is
    loaded; strict=False allows missing/unexpected (returned) but not a wrong shape.
    Reference: torch's load_state_dict messages (ours lists shapes both ways)."""
    model = Net()
    before = {k: v.numpy() for k, v in model.state_dict().items()}
    state = {k: v.numpy() for k, v in Net().state_dict().items()}
    del state["stem.conv.bias"], state["extra"]
    state["bogus"] = np.zeros(1)
    state["heads.0.weight"] = np.zeros((3, 4))
    with pytest.raises(
        RuntimeError,
        match=r"(?s)Error\(s\) in loading state_dict for Net:\n"
        r"  missing keys: 'extra', 'stem.conv.bias'\n"
        r"  unexpected keys: 'bogus'\n"
        r"  size mismatch for 'heads.0.weight': the module expects shape \(2, 4\), "
        r"the state_dict has shape \(3, 4\)",
    ):
        model.load_state_dict(state)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k], err_msg=k)

    with pytest.raises(RuntimeError, match="size mismatch for 'heads.0.weight'") as info:
        model.load_state_dict(state, strict=False)
    assert "missing keys" not in str(info.value)
    state["heads.0.weight"] = np.zeros((2, 4))
    result = model.load_state_dict(state, strict=False)
    assert result.missing_keys == ["extra", "stem.conv.bias"]
    assert result.unexpected_keys == ["bogus"]
    assert np.all(model.heads[0].weight.numpy() == 0)


def test_load_state_dict_casts_to_parameter_dtype():
    """float64 values loaded into a float32 model become float32 (the parameter's dtype),
    rounded as NumPy's astype rounds. Exact."""
    model = nn.Linear(3, 2)
    values = {"weight": np.full((2, 3), 1 / 3), "bias": mm.tensor(np.array([0.1, 0.2]))}
    model.load_state_dict(values)
    assert model.weight.dtype == np.float32 and model.bias.dtype == np.float32
    assert np.all(model.weight.numpy() == np.float32(1 / 3))


def test_to_float64():
    """to(float64) casts parameters, gradients and floating buffers in place (integer
    buffers keep their dtype), keeps the Parameter objects, and returns the module; a
    non-floating dtype is refused. Reference: torch.nn.Module.to."""
    model = Net()
    model.stem(mm.randn(1, 3, 4, 4)).sum().backward()
    params = list(model.parameters())
    assert model.to(mm.float64) is model
    assert all(p is q for p, q in zip(params, model.parameters()))
    assert all(p.dtype == np.float64 for p in model.parameters())
    assert all(p.grad.dtype == np.float64 for p in model.parameters() if p.grad is not None)
    assert model.stem.scale.dtype == np.float64 and model.stem.steps.dtype == np.int64
    assert model.stem(mm.randn(1, 3, 4, 4, dtype=mm.float64)).dtype == np.float64
    assert model.float().extra.dtype == np.float32
    model.to("cpu", mm.float64)
    assert model.extra.dtype == np.float64 and model.extra.device == "cpu"
    with pytest.raises(TypeError, match="floating point dtypes only"):
        model.to(mm.int64)


# ------------------------------------------------------------------ layers against torch
def torch_twin(ours, theirs):
    """The torch layer in float64 with our parameters copied in."""
    theirs = theirs.double()
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})
    return theirs


LAYERS = {
    "linear": (lambda: nn.Linear(6, 3), lambda: torch.nn.Linear(6, 3), (2, 5, 6)),
    "linear_no_bias": (
        lambda: nn.Linear(6, 3, False),
        lambda: torch.nn.Linear(6, 3, False),
        (4, 6),
    ),
    "conv": (
        lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1, dilation=2),
        lambda: torch.nn.Conv2d(3, 4, 3, stride=2, padding=1, dilation=2),
        (2, 3, 9, 8),
    ),
    "conv_rect": (
        lambda: nn.Conv2d(3, 4, (1, 3), stride=(2, 1), padding=(0, 1), bias=False),
        lambda: torch.nn.Conv2d(3, 4, (1, 3), stride=(2, 1), padding=(0, 1), bias=False),
        (1, 3, 5, 6),
    ),
    "deconv": (
        lambda: nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1),
        lambda: torch.nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1),
        (2, 4, 5, 4),
    ),
    "groupnorm": (lambda: nn.GroupNorm(3, 6), lambda: torch.nn.GroupNorm(3, 6), (2, 6, 4, 3)),
    "maxpool": (lambda: nn.MaxPool2d(3, 2, 1), lambda: torch.nn.MaxPool2d(3, 2, 1), (2, 3, 7, 6)),
    "relu": (lambda: nn.ReLU(), lambda: torch.nn.ReLU(), (3, 4)),
    "flatten": (lambda: nn.Flatten(), lambda: torch.nn.Flatten(), (2, 3, 4, 5)),
}


@pytest.mark.parametrize("name", LAYERS)
def test_layer_matches_torch(name):
    """Each layer's output and the gradients of its input and parameters for a random
    upstream gradient, float64, weights copied from minimask (the GroupNorm's affine
    parameters randomised first). Reference: the torch.nn layer; rtol 1e-9, atol 1e-12."""
    make_ours, make_theirs, shape = LAYERS[name]
    ours = make_ours().to(mm.float64)
    for p in ours.parameters():
        init.normal_(p)
    theirs = torch_twin(ours, make_theirs())
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape)
    x_ours = mm.tensor(x, requires_grad=True)
    x_theirs = torch.tensor(x, requires_grad=True)
    y_ours, y_theirs = ours(x_ours), theirs(x_theirs)
    assert y_ours.shape == tuple(y_theirs.shape)
    np.testing.assert_allclose(y_ours.numpy(), y_theirs.detach().numpy(), rtol=1e-9, atol=1e-12)
    upstream = rng.normal(size=y_ours.shape)
    y_ours.backward(mm.tensor(upstream))
    y_theirs.backward(torch.tensor(upstream))
    np.testing.assert_allclose(x_ours.grad.numpy(), x_theirs.grad.numpy(), rtol=1e-9, atol=1e-12)
    for (n, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=n)


def test_linear_wrong_in_features_names_both_shapes():
    """A Linear(4, 3) given inputs of last dim 5: the error names the input's shape and
    the weight's. Reference: torch's 'mat1 and mat2 shapes cannot be multiplied'."""
    with pytest.raises(ValueError, match=r"input of shape \(2, 5\).*weight has shape \(3, 4\)"):
        nn.Linear(4, 3)(mm.zeros(2, 5))


def test_layer_argument_errors():
    """GroupNorm with channels not divisible by groups; a non-int kernel size. Errors
    name the numbers. Reference: torch's constructor checks."""
    with pytest.raises(
        ValueError, match=r"num_channels \(6\) must be divisible by num_groups \(4\)"
    ):
        nn.GroupNorm(4, 6)
    with pytest.raises(ValueError, match="kernel_size must be an int or a pair"):
        nn.Conv2d(3, 4, 2.5)


# ------------------------------------------------------------------ init
@pytest.mark.parametrize("shape", [(5, 3), (8, 4, 3, 3), (4, 8, 2, 2), (6, 2, 5), (2, 3, 1, 2, 2)])
def test_fan_in_and_fan_out_matches_torch(shape):
    """fan_in_and_fan_out equals torch.nn.init._calculate_fan_in_and_fan_out. Exact."""
    expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert init.fan_in_and_fan_out(mm.zeros(*shape)) == expected


def test_fan_needs_two_dims_and_gains_match_torch():
    """Fewer than 2 dims is an error; calculate_gain equals torch's for every
    nonlinearity (rel 1e-15)."""
    with pytest.raises(ValueError, match="at least 2 dims"):
        init.fan_in_and_fan_out(mm.zeros(3))
    cases = [
        ("linear", None),
        ("conv2d", None),
        ("sigmoid", None),
        ("tanh", None),
        ("relu", None),
        ("leaky_relu", None),
        ("leaky_relu", 0.2),
        ("leaky_relu", 0),
        ("leaky_relu", math.sqrt(5)),
        ("selu", None),
    ]
    for nonlinearity, param in cases:
        expected = torch.nn.init.calculate_gain(nonlinearity, param)
        assert init.calculate_gain(nonlinearity, param) == pytest.approx(expected, rel=1e-15)
    with pytest.raises(ValueError, match="unsupported nonlinearity"):
        init.calculate_gain("swish")


N_SAMPLES = 256 * 512  # standard errors below use n = 131072


def check_std(values, std, spread):
    """Mean within 5 standard errors (std / sqrt(n)) of 0 and sample std within 5
    standard errors of ``std``; the relative standard error of a sample std is
    ``spread / sqrt(n)`` with spread 1/sqrt(2) = 0.707 for a normal and
    sqrt(1/5) = 0.447 for a uniform (from the fourth moment)."""
    n = values.size
    assert abs(values.mean()) < 5 * std / math.sqrt(n)
    assert abs(values.std() / std - 1) < 5 * spread / math.sqrt(n)


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_kaiming_normal_statistics(mode):
    """kaiming_normal_(a=0, leaky_relu) on (256, 512): std = sqrt(2) / sqrt(fan); mean and
    std within 5 standard errors (n = 131072: 0.0014 relative on the std)."""
    mm.manual_seed(0)
    w = init.kaiming_normal_(mm.zeros(256, 512), mode=mode)
    fan = 512 if mode == "fan_in" else 256
    check_std(w.numpy().astype(np.float64), math.sqrt(2 / fan), 1 / math.sqrt(2))


def test_kaiming_uniform_statistics():
    """kaiming_uniform_(a=sqrt(5)) on (256, 512): bound = 1/sqrt(512), every value inside
    [-bound, bound], the largest within 0.1% of it (probability of failure exp(-65)),
    std = bound / sqrt(3) within 5 standard errors (0.0006 relative)."""
    mm.manual_seed(0)
    w = init.kaiming_uniform_(mm.zeros(256, 512, dtype=mm.float64), a=math.sqrt(5)).numpy()
    bound = 1 / math.sqrt(512)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.999 * bound
    check_std(w, bound / math.sqrt(3), math.sqrt(1 / 5))


def test_normal_uniform_constant():
    """normal_(mean 3, std 2) statistics (5 standard errors); uniform_ within its
    bounds; constant_/zeros_/ones_ exact; the same seed draws the same numbers; every
    function returns its argument and works in place."""
    mm.manual_seed(3)
    t = mm.zeros(256, 512)
    data = t.data
    assert init.normal_(t, 3.0, 2.0) is t and t.data is data
    values = t.numpy().astype(np.float64)
    check_std(values - 3.0, 2.0, 1 / math.sqrt(2))
    u = init.uniform_(mm.zeros(1000), -2.0, -1.0).numpy()
    assert u.min() >= -2.0 and u.max() < -1.0
    assert np.all(init.constant_(mm.zeros(3), 2.5).numpy() == 2.5)
    assert np.all(init.ones_(mm.zeros(3)).numpy() == 1) and np.all(
        init.zeros_(mm.ones(3)).numpy() == 0
    )
    mm.manual_seed(3)
    np.testing.assert_array_equal(init.normal_(mm.zeros(256, 512), 3.0, 2.0).numpy(), t.numpy())


@pytest.mark.parametrize(
    "make, fan_in",
    [
        (lambda: nn.Linear(40, 30), 40),
        (lambda: nn.Conv2d(8, 6, 3), 8 * 9),
        (lambda: nn.ConvTranspose2d(8, 6, 3), 6 * 9),  # PyTorch's fan_in: weight.size(1) * k * k
    ],
    ids=["linear", "conv", "deconv"],
)
def test_default_initialisation(make, fan_in):
    """Weights and biases uniform in +-1/sqrt(fan_in) with PyTorch's fan_in (the torch
    layer's own weights have the same bound); the largest |weight| is within 10% of the
    bound (failure probability 0.9^432 < 1e-19)."""
    mm.manual_seed(0)
    layer = make()
    bound = 1 / math.sqrt(fan_in)
    weight, bias = np.abs(layer.weight.numpy()), np.abs(layer.bias.numpy())
    assert weight.max() <= bound and weight.max() > 0.9 * bound and bias.max() <= bound
    torch.manual_seed(0)
    theirs = {
        "Linear": torch.nn.Linear(40, 30),
        "Conv2d": torch.nn.Conv2d(8, 6, 3),
        "ConvTranspose2d": torch.nn.ConvTranspose2d(8, 6, 3),
    }[type(layer).__name__]
    assert theirs.weight.abs().max().item() <= bound and theirs.bias.abs().max().item() <= bound
    norm = nn.GroupNorm(2, 4)
    assert np.all(norm.weight.numpy() == 1) and np.all(norm.bias.numpy() == 0)
