"""Optimizers, schedulers and gradient clipping against PyTorch (torch.optim, torch.nn.utils).

The same parameters receive the same gradient sequence in minimask and in torch; after
every step the parameters must agree.

Tolerances. Both libraries evaluate the same formula elementwise in the parameter's dtype,
but torch fuses some multiply-adds (``add(x, alpha=a)``, ``lerp``, ``addcdiv`` use FMA
instructions) where NumPy rounds twice, so each operation may differ by one rounding of
its operands. Parameters start with magnitudes in [0.5, 2] and gradients are N(0, 1), so
every operand is O(1): five steps of at most ~10 roundings each give differences of a
few dozen units of roundoff of 1 (u = 1.1e-16 in float64, 6e-8 in float32). A parameter
that momentum carries close to 0 keeps that *absolute* error, so the bound is

    |minimask - torch| <= rtol * (|torch| + 1),   rtol = 1e-12 (float64), 1e-6 (float32)

A wrong update rule (bias correction, where eps goes, the first momentum buffer) is off
by far more than that after one step.
"""

import math

import numpy as np
import pytest
import torch

import minimask as mm
from minimask.nn import Parameter
from minimask.nn.utils import clip_grad_norm_
from minimask.optim import SGD, Adam
from minimask.optim.lr_scheduler import MultiStepLR, WarmupMultiStepLR

RTOL = {np.float64: 1e-12, np.float32: 1e-6}
SHAPES = [(3, 4), (5,), ()]
STEPS = 5


def make_params(dtype, seed=0):
    """NumPy arrays of SHAPES, magnitudes in [0.5, 2] with random signs."""
    rng = np.random.default_rng(seed)
    magnitudes = [rng.uniform(0.5, 2.0, s) * rng.choice([-1.0, 1.0], s) for s in SHAPES]
    return [np.asarray(m, dtype) for m in magnitudes]  # asarray: 0-d arrays, not scalars


def make_grads(dtype, steps=STEPS, seed=1):
    """A gradient sequence: grads[step][i] for parameter i."""
    rng = np.random.default_rng(seed)
    return [[np.asarray(rng.normal(0, 1, s), dtype) for s in SHAPES] for _ in range(steps)]


def twins(dtype):
    arrays = make_params(dtype)
    ours = [Parameter(mm.tensor(a)) for a in arrays]
    theirs = [torch.nn.Parameter(torch.tensor(a)) for a in arrays]
    return ours, theirs


def set_grads(ours, theirs, grads):
    for p, q, g in zip(ours, theirs, grads):
        p.grad = mm.tensor(g)
        q.grad = torch.tensor(g)


def assert_params_match(ours, theirs, dtype, step):
    for i, (p, q) in enumerate(zip(ours, theirs)):
        assert p.dtype == np.dtype(dtype)
        np.testing.assert_allclose(
            p.numpy(),
            q.detach().numpy(),
            rtol=RTOL[dtype],
            atol=RTOL[dtype],
            err_msg=f"parameter {i} after step {step}",
        )


SGD_CASES = {
    "plain": dict(lr=0.1),
    "momentum": dict(lr=0.1, momentum=0.9),
    "dampening": dict(lr=0.05, momentum=0.8, dampening=0.3),
    "nesterov": dict(lr=0.1, momentum=0.9, nesterov=True),
    "weight_decay": dict(lr=0.1, weight_decay=1e-2),
    "all": dict(lr=0.1, momentum=0.9, weight_decay=1e-2, nesterov=True),
}
ADAM_CASES = {
    "default": dict(),
    "lr_betas": dict(lr=0.05, betas=(0.8, 0.99)),
    "weight_decay": dict(lr=0.01, weight_decay=0.1),
    "large_eps": dict(lr=0.01, eps=0.1),
}


def run_twins(our_class, torch_class, options, dtype):
    ours, theirs = twins(dtype)
    our_opt, torch_opt = our_class(ours, **options), torch_class(theirs, **options)
    for step, grads in enumerate(make_grads(dtype)):
        set_grads(ours, theirs, grads)
        our_opt.step()
        torch_opt.step()
        assert_params_match(ours, theirs, dtype, step)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", SGD_CASES)
def test_sgd_matches_torch(case, dtype):
    """SGD vs torch.optim.SGD, 5 steps, each option; rtol 1e-12 (f64) / 1e-6 (f32)."""
    run_twins(SGD, torch.optim.SGD, SGD_CASES[case], dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", ADAM_CASES)
def test_adam_matches_torch(case, dtype):
    """Adam vs torch.optim.Adam, 5 steps, each option; rtol 1e-12 (f64) / 1e-6 (f32)."""
    run_twins(Adam, torch.optim.Adam, ADAM_CASES[case], dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_param_groups_and_missing_grads_match_torch(dtype):
    """Two param groups with their own lr and momentum; a parameter whose grad is None
    in a step is skipped (its momentum buffer waits). Reference torch.optim.SGD;
    rtol 1e-12 (f64) / 1e-6 (f32)."""
    ours, theirs = twins(dtype)
    our_opt = SGD([{"params": ours[:2]}, {"params": ours[2:], "lr": 0.5}], lr=0.1, momentum=0.9)
    torch_opt = torch.optim.SGD(
        [{"params": theirs[:2]}, {"params": theirs[2:], "lr": 0.5}], lr=0.1, momentum=0.9
    )
    for step, grads in enumerate(make_grads(dtype)):
        set_grads(ours, theirs, grads)
        if step in (1, 2):
            ours[1].grad = None
            theirs[1].grad = None
        our_opt.step()
        torch_opt.step()
        assert_params_match(ours, theirs, dtype, step)
    assert our_opt.param_groups[1]["lr"] == 0.5 and our_opt.param_groups[0]["lr"] == 0.1


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_scalar_parameter_through_backward_matches_torch(optimizer):
    """A 0-d parameter whose gradient comes from backward() (NumPy hands 0-d results over
    as scalars, not arrays): the momentum buffer must still be kept. Reference:
    torch.optim; rtol 1e-12 (float64)."""
    p = Parameter(mm.tensor(np.asarray(1.5)))
    q = torch.nn.Parameter(torch.tensor(1.5, dtype=torch.float64))
    if optimizer == "sgd":
        ours, theirs = SGD([p], lr=0.1, momentum=0.9), torch.optim.SGD([q], lr=0.1, momentum=0.9)
    else:
        ours, theirs = Adam([p], lr=0.1), torch.optim.Adam([q], lr=0.1)
    for _ in range(STEPS):
        ours.zero_grad()
        theirs.zero_grad()
        (p * p * p).backward()
        (q * q * q).backward()
        ours.step()
        theirs.step()
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-12)


def test_zero_grad_sets_none():
    """zero_grad() sets .grad to None (PyTorch 2's default); set_to_none=False zeroes
    them in place. Exact."""
    ours, _ = twins(np.float64)
    optimizer = SGD(ours, lr=0.1)
    for p in ours:
        p.grad = mm.ones_like(p)
    kept = [p.grad for p in ours]
    optimizer.zero_grad(set_to_none=False)
    assert all(p.grad is g and np.all(g.numpy() == 0) for p, g in zip(ours, kept))
    optimizer.zero_grad()
    assert all(p.grad is None for p in ours)


def test_gradient_array_is_not_changed_by_step():
    """step() never writes into p.grad (weight decay and momentum work on copies). Exact."""
    ours, _ = twins(np.float64)
    optimizer = SGD(ours, lr=0.1, momentum=0.9, weight_decay=0.1)
    grads = make_grads(np.float64)[0]
    for p, g in zip(ours, grads):
        p.grad = mm.tensor(g)
    for _ in range(2):
        optimizer.step()
    for p, g in zip(ours, grads):
        np.testing.assert_array_equal(p.grad.numpy(), g)


def test_invalid_arguments():
    """Errors name the problem: negative lr, Nesterov without momentum, duplicate or
    non-leaf parameters, empty parameter lists, unknown group options. Reference: the
    checks torch.optim makes."""
    ours, _ = twins(np.float64)
    with pytest.raises(ValueError, match="learning rate"):
        SGD(ours, lr=-1)
    with pytest.raises(ValueError, match="Nesterov"):
        SGD(ours, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        Adam(ours, betas=(1.0, 0.999))
    with pytest.raises(ValueError, match="twice"):
        SGD([ours[0], ours[0]], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        SGD([ours[0] * 2], lr=0.1)
    with pytest.raises(ValueError, match="empty"):
        SGD([], lr=0.1)
    with pytest.raises(TypeError, match="single Tensor"):
        SGD(ours[0], lr=0.1)
    with pytest.raises(ValueError, match="unknown option"):
        SGD([{"params": ours, "momentun": 0.9}], lr=0.1)


# ------------------------------------------------------------------ state dict and resuming
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "make",
    [
        lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True),
        lambda ps: Adam([{"params": ps[:1], "lr": 0.01}, {"params": ps[1:]}], betas=(0.8, 0.9)),
    ],
    ids=["sgd", "adam"],
)
def test_resume_from_saved_state_continues_exactly(make, dtype, tmp_path):
    """Train 3 steps, save the parameters and the optimizer with minimask.save, train 2
    more: a fresh optimizer loaded from the files (minimask.load) reproduces those 2 steps
    bit for bit. Reference: the uninterrupted run; tolerance: exact equality."""
    grads = make_grads(dtype)
    params = [Parameter(mm.tensor(a)) for a in make_params(dtype)]
    optimizer = make(params)
    for step, step_grads in enumerate(grads):
        if step == 3:
            mm.save({str(i): p for i, p in enumerate(params)}, tmp_path / "params.npz")
            mm.save(optimizer.state_dict(), tmp_path / "optimizer.npz")
        for p, g in zip(params, step_grads):
            p.grad = mm.tensor(g)
        optimizer.step()

    saved = mm.load(tmp_path / "params.npz")
    resumed = [Parameter(saved[str(i)]) for i in range(len(params))]
    resumed_optimizer = make(resumed)
    resumed_optimizer.load_state_dict(mm.load(tmp_path / "optimizer.npz"))
    for step_grads in grads[3:]:
        for p, g in zip(resumed, step_grads):
            p.grad = mm.tensor(g)
        resumed_optimizer.step()
    for p, q in zip(params, resumed):
        assert q.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    for original, loaded in zip(optimizer.param_groups, resumed_optimizer.param_groups):
        assert {k: v for k, v in original.items() if k != "params"} == {
            k: v for k, v in loaded.items() if k != "params"
        }


def test_state_dict_format():
    """The documented flat format: param_groups.<g>.<option>, param_groups.<g>.params
    (parameter numbers across groups), state.<i>.<name>; Adam's step is an int. Exact."""
    ours, _ = twins(np.float32)
    optimizer = Adam([{"params": ours[:2]}, {"params": ours[2:], "lr": 0.5}])
    for p in ours:
        p.grad = mm.ones_like(p)
    optimizer.step()
    state = optimizer.state_dict()
    assert state["param_groups.0.params"] == [0, 1]
    assert state["param_groups.1.params"] == [2]
    assert state["param_groups.1.lr"] == 0.5 and state["param_groups.0.betas"] == (0.9, 0.999)
    assert state["state.2.step"] == 1
    assert state["state.0.exp_avg"].shape == (3, 4)
    assert state["state.0.exp_avg"].dtype == np.float32


def test_load_state_dict_errors():
    """Loading a state_dict of another shape of optimizer raises, naming the problem,
    and changes nothing. Reference: torch.optim's load_state_dict checks."""
    ours, _ = twins(np.float64)
    optimizer = SGD(ours, lr=0.1, momentum=0.9)
    for p in ours:
        p.grad = mm.ones_like(p)
    optimizer.step()
    state = optimizer.state_dict()
    with pytest.raises(ValueError, match="param group 0 has 3 parameters, this optimizer's has 2"):
        SGD(ours[:2], lr=0.1).load_state_dict(state)
    with pytest.raises(ValueError, match="has 1 param groups, this optimizer has 2"):
        SGD([{"params": ours[:1]}, {"params": ours[1:]}], lr=0.1).load_state_dict(state)
    with pytest.raises(ValueError, match="another kind of optimizer"):
        Adam(ours).load_state_dict(state)
    with pytest.raises(ValueError, match="unexpected key 'stat.0.x'"):
        optimizer.load_state_dict({**state, "stat.0.x": 1})
    bad = {**state, "state.0.momentum_buffer": mm.zeros(2, 2)}
    with pytest.raises(ValueError, match=r"has shape \(2, 2\), but its parameter has shape"):
        optimizer.load_state_dict(bad)
    assert optimizer.param_groups[0]["momentum"] == 0.9


# ------------------------------------------------------------------ schedulers
def test_warmup_multistep_lr_sequence():
    """WarmupMultiStepLR (linear warm-up over 4 iterations from factor 0.001, then x0.1
    at 6 and 8) against the hand-computed sequence
    lr_i = 0.02 * (0.001 * (1 - i/4) + i/4) * 0.1**(milestones <= i); rel 1e-12
    (float64 arithmetic in a different order)."""
    optimizer = SGD([Parameter(mm.zeros(2))], lr=0.02)
    scheduler = WarmupMultiStepLR(
        optimizer, milestones=[6, 8], gamma=0.1, warmup_factor=0.001, warmup_iters=4
    )
    expected = [2e-5, 0.005015, 0.01001, 0.015005, 0.02, 0.02, 0.002, 0.002, 0.0002, 0.0002]
    seen = []
    for _ in expected:
        seen.append(optimizer.param_groups[0]["lr"])
        assert scheduler.get_last_lr() == [seen[-1]]
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx(expected, rel=1e-12, abs=0)


def test_warmup_constant_and_defaults():
    """warmup_method='constant' keeps warmup_factor during the warm-up; detectron2's
    defaults are warmup_factor=0.001, warmup_iters=1000. Reference: hand-computed."""
    optimizer = SGD([Parameter(mm.zeros(2))], lr=1.0)
    scheduler = WarmupMultiStepLR(
        optimizer, [5], warmup_factor=0.5, warmup_iters=3, warmup_method="constant"
    )
    lrs = []
    for _ in range(6):
        lrs.append(scheduler.get_last_lr()[0])
        scheduler.step()
    assert lrs == [0.5, 0.5, 0.5, 1.0, 1.0, pytest.approx(0.1, rel=1e-15)]
    default = WarmupMultiStepLR(SGD([Parameter(mm.zeros(1))], lr=1.0), [2000])
    assert (default.warmup_factor, default.warmup_iters) == (0.001, 1000)
    with pytest.raises(ValueError, match="increasing"):
        WarmupMultiStepLR(optimizer, [8, 6])


def test_multistep_lr_matches_torch():
    """MultiStepLR against torch.optim.lr_scheduler.MultiStepLR, two param groups, 12
    iterations; rel 1e-12 (torch multiplies step by step, we use the closed form)."""
    ours, theirs = twins(np.float64)
    our_opt = SGD([{"params": ours[:1]}, {"params": ours[1:], "lr": 0.3}], lr=0.1)
    torch_opt = torch.optim.SGD([{"params": theirs[:1]}, {"params": theirs[1:], "lr": 0.3}], lr=0.1)
    our_sched = MultiStepLR(our_opt, milestones=[3, 7, 7], gamma=0.5)
    torch_sched = torch.optim.lr_scheduler.MultiStepLR(torch_opt, milestones=[3, 7, 7], gamma=0.5)
    for _ in range(12):
        assert our_sched.get_last_lr() == pytest.approx(torch_sched.get_last_lr(), rel=1e-12)
        our_opt.step()
        torch_opt.step()
        our_sched.step()
        torch_sched.step()


def test_scheduler_state_dict_round_trip(tmp_path):
    """A scheduler and its optimizer saved with minimask.save after 5 iterations and
    loaded into fresh ones (made with the same settings as at the start of training, in
    either loading order) continue with the same learning rates, from the first resumed
    optimizer step on; the state_dict holds the counter and the base lrs only.
    Reference: the uninterrupted run; exact."""
    params = [Parameter(mm.zeros(2))]
    optimizer = SGD(params, lr=0.02)
    scheduler = WarmupMultiStepLR(optimizer, [6, 8], warmup_iters=4)
    for _ in range(5):
        scheduler.step()
    assert scheduler.state_dict() == {"last_epoch": 5, "base_lrs": (0.02,)}
    mm.save(scheduler.state_dict(), tmp_path / "scheduler.npz")
    mm.save(optimizer.state_dict(), tmp_path / "optimizer.npz")
    expected = []
    for _ in range(5):
        expected.append(optimizer.param_groups[0]["lr"])
        scheduler.step()

    for scheduler_first in (False, True):
        fresh_optimizer = SGD(params, lr=0.02)
        if scheduler_first:
            fresh = WarmupMultiStepLR(fresh_optimizer, [6, 8], warmup_iters=4)
            fresh_optimizer.load_state_dict(mm.load(tmp_path / "optimizer.npz"))
        else:
            fresh_optimizer.load_state_dict(mm.load(tmp_path / "optimizer.npz"))
            fresh = WarmupMultiStepLR(fresh_optimizer, [6, 8], warmup_iters=4)
        fresh.load_state_dict(mm.load(tmp_path / "scheduler.npz"))
        assert fresh.last_epoch == 5 and fresh.base_lrs == [0.02]
        got = []
        for _ in range(5):
            got.append(fresh_optimizer.param_groups[0]["lr"])
            fresh.step()
        assert got == expected


# ------------------------------------------------------------------ gradient clipping
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(max_norm, norm_type, dtype):
    """clip_grad_norm_ vs torch.nn.utils.clip_grad_norm_: the returned total norm and
    the clipped gradients (one parameter has no grad); rtol 1e-12 (f64) / 1e-6 (f32)."""
    ours, theirs = twins(dtype)
    set_grads(ours, theirs, make_grads(dtype)[0])
    ours[1].grad = None
    theirs[1].grad = None
    total = clip_grad_norm_(ours, max_norm, norm_type)
    torch_total = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    assert total.shape == () and total.dtype == np.dtype(dtype)
    np.testing.assert_allclose(total.numpy(), torch_total.numpy(), rtol=RTOL[dtype])
    for p, q in zip(ours, theirs):
        if q.grad is None:
            assert p.grad is None
        else:
            np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=RTOL[dtype])


def test_clip_grad_norm_edge_cases():
    """No gradients: total 0. A NaN gradient: error with error_if_nonfinite=True.
    Reference: torch.nn.utils.clip_grad_norm_'s behaviour; exact."""
    p = Parameter(mm.zeros(3))
    assert clip_grad_norm_([p], 1.0).item() == 0.0
    p.grad = mm.tensor([1.0, float("nan"), 0.0])
    with pytest.raises(RuntimeError, match="nan"):
        clip_grad_norm_(p, 1.0, error_if_nonfinite=True)
