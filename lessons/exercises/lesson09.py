"""Checkers of lesson 09 (the training loop). References: ``minimask.optim.SGD`` and
torch's SGD update, ``torch.optim.sgd.sgd`` (the function ``torch.optim.SGD.step`` runs,
called directly: the class would import torch's compiler, seconds of start-up), for one
step of SGD; the scheduler that ``minimask.engine.trainer.make_optimizer`` builds
(``WarmupMultiStepLR``) and hand values of detectron2's formula, for the learning rate;
``minimask.nn.utils.clip_grad_norm_`` and ``torch.nn.utils.clip_grad_norm_``, for clipping;
``minimask.engine.distributed.share`` with the least-squares gradient written out, and
minimask's autograd on the whole batch, for data-parallel gradients. Every value is
float64 and compared to 1e-12, absolute for numbers of order one, relative for learning
rates (a product of three factors: the order of the multiplications changes the last bit
only)."""

import numpy as np
import torch
from torch.optim.sgd import sgd as torch_sgd

import minimask
from exercises import Wrong, exercise
from minimask.engine.distributed import share
from minimask.engine.trainer import make_optimizer
from minimask.models import MaskRCNNConfig
from minimask.nn import Parameter
from minimask.nn.utils import clip_grad_norm_

TOL = 1e-12


def _close(a, b, tol=TOL):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= tol))


def _as_array(value, what):
    array = np.asarray(value, dtype=np.float64)
    if array.dtype == object:
        raise Wrong(f"{what} should be a NumPy array, got {type(value).__name__}")
    return array


# ----------------------------------------------------------------------------- 09.1
def _library_runs(param, grads, lrs, momentum, weight_decay):
    """The parameter after each step, by minimask.optim.SGD and by torch.optim.SGD."""
    p = Parameter(minimask.tensor(param.copy()))
    ours = minimask.optim.SGD([p], lr=lrs[0], momentum=momentum, weight_decay=weight_decay)
    t, buffers = torch.tensor(param.copy()), [None]
    by_minimask, by_torch = [], []
    for grad, lr in zip(grads, lrs):
        p.grad = minimask.tensor(grad.copy())
        ours.param_groups[0]["lr"] = lr
        ours.step()
        by_minimask.append(p.numpy().copy())
        torch_sgd(  # what torch.optim.SGD.step runs, without building the class's machinery
            [t],
            [torch.tensor(grad.copy())],
            buffers,
            weight_decay=weight_decay,
            momentum=momentum,
            lr=lr,
            dampening=0.0,
            nesterov=False,
            maximize=False,
            foreach=False,
        )
        by_torch.append(t.numpy().copy())
    return by_minimask, by_torch


@exercise("09.1", "one SGD step with momentum and weight decay", "sgd_step")
def check_sgd_step(sgd_step):
    """A hand computation (p = (1, -2), g = (0.5, 0.5), lr 0.1, momentum 0.9, weight decay
    0.01: p = (0.949, -2.048), buffer = (0.51, 0.48)), then runs of 5 steps on random
    float64 arrays with the lr changing between steps (as a schedule changes it), for three
    settings of momentum and weight decay, against minimask.optim.SGD and torch.optim.SGD's
    update (its functional form, torch.optim.sgd.sgd) after every step (1e-12). The
    arguments param and grad must not be changed in place."""
    param, grad = np.array([1.0, -2.0]), np.array([0.5, 0.5])
    new_param, buffer = sgd_step(param.copy(), grad.copy(), None, 0.1, 0.9, 0.01)
    new_param = _as_array(new_param, "the new parameter")
    buffer = _as_array(buffer, "the momentum buffer")
    if not _close(buffer, [0.51, 0.48]):
        raise Wrong(
            f"first step, p = (1, -2), g = (0.5, 0.5), weight decay 0.01: buffer {buffer}, "
            f"want g + 0.01 p = (0.51, 0.48) (the first buffer is the decayed gradient itself)"
        )
    if not _close(new_param, [0.949, -2.048]):
        raise Wrong(
            f"first step, p = (1, -2), g = (0.5, 0.5), lr 0.1, weight decay 0.01: p became "
            f"{new_param}, want p - 0.1 * (0.51, 0.48) = (0.949, -2.048)"
        )
    rng = np.random.default_rng(90)
    lrs = [0.1, 0.1, 0.05, 0.05, 0.01]
    for momentum, weight_decay in ((0.9, 1e-4), (0.0, 0.1), (0.5, 0.0)):
        param = rng.standard_normal((3, 4))
        grads = [rng.standard_normal((3, 4)) for _ in lrs]
        by_minimask, by_torch = _library_runs(param, grads, lrs, momentum, weight_decay)
        setting = f"momentum {momentum}, weight decay {weight_decay}, lrs {lrs}"
        p, buffer = param.copy(), None
        for step, (grad, lr) in enumerate(zip(grads, lrs)):
            p_before, grad_before = p.copy(), grad.copy()
            p_new, buffer = sgd_step(p, grad, buffer, lr, momentum, weight_decay)
            if not np.array_equal(grad, grad_before):
                raise Wrong(
                    "sgd_step changed its argument grad in place; in an optimizer that "
                    "would change p.grad (write grad = grad + weight_decay * param instead)"
                )
            if not np.array_equal(p, p_before):
                raise Wrong("sgd_step changed its argument param in place: return a new array")
            p = _as_array(p_new, "the new parameter")
            for name, want in (
                ("minimask.optim.SGD", by_minimask),
                ("torch.optim.sgd.sgd", by_torch),
            ):
                if not _close(p, want[step]):
                    error = np.abs(p - want[step]).max()
                    raise Wrong(
                        f"{setting}: after step {step + 1} the parameter differs from "
                        f"{name}'s by up to {error:.3g} (first entry {p.flat[0]:.12f}, want "
                        f"{want[step].flat[0]:.12f}); the buffer is momentum * buffer + "
                        f"(grad + weight_decay * param), and lr multiplies the buffer"
                    )


# ----------------------------------------------------------------------------- 09.2
class _OneParameter:
    """Enough of a model for make_optimizer: one parameter."""

    def parameters(self):
        return [Parameter(minimask.tensor(np.zeros(1)))]


def _scheduled_lrs(cfg):
    """The lr of every optimizer step of a run of cfg, by the trainer's own scheduler."""
    optimizer, scheduler = make_optimizer(_OneParameter(), cfg)
    lrs = []
    for _ in range(cfg.max_iters):
        lrs.append(optimizer.param_groups[0]["lr"])
        scheduler.step()
    return lrs, scheduler.milestones


@exercise("09.2", "the learning rate at step t", "learning_rate")
def check_learning_rate(learning_rate):
    """Hand values on MaskRCNNConfig.tiny(3) (base lr 0.02, warm-up 100 steps from a factor
    0.001, milestones 750 and 900 of 1000 steps, gamma 0.1): 2e-5 at step 0, 0.01001 at 50,
    0.02 from 100, 0.002 from 750, 0.0002 from 900. Then every step of five configs (the
    preset; 200 steps; no warm-up; milestones inside the warm-up; lr_steps with a repeated
    fraction and one so small that int() gives 0) against the scheduler of
    minimask.engine.trainer.make_optimizer (WarmupMultiStepLR). Relative 1e-12."""
    cfg = MaskRCNNConfig.tiny(3)
    hand = {0: 2e-5, 1: 0.02 * (0.001 * 0.99 + 0.01), 50: 0.01001, 99: 0.02 * (0.001 * 0.01 + 0.99)}
    hand.update({100: 0.02, 749: 0.02, 750: 0.002, 899: 0.002, 900: 0.0002, 999: 0.0002})
    for step, want in hand.items():
        got = float(learning_rate(cfg, step))
        if abs(got - want) > TOL * want:
            raise Wrong(
                f"MaskRCNNConfig.tiny(3), step {step}: lr {got:.10g}, want {want:.10g} "
                f"(base_lr * warm-up factor * gamma ** milestones reached; warm-up "
                f"{cfg.warmup_factor} * (1 - t / {cfg.warmup_iters}) + t / {cfg.warmup_iters} "
                f"for t < {cfg.warmup_iters}, milestones at 750 and 900)"
            )
    configs = [
        cfg,
        MaskRCNNConfig.tiny(3, max_iters=200),
        MaskRCNNConfig.tiny(3, max_iters=300, warmup_iters=0, base_lr=0.01),
        MaskRCNNConfig.tiny(3, max_iters=60, warmup_iters=50, warmup_factor=0.1),
        MaskRCNNConfig.tiny(3, max_iters=400, lr_steps=(0.5, 0.0001, 0.5), lr_gamma=0.5),
    ]
    for cfg in configs:
        want, milestones = _scheduled_lrs(cfg)
        for step, lr in enumerate(want):
            got = float(learning_rate(cfg, step))
            if abs(got - lr) > TOL * lr:
                raise Wrong(
                    f"config with max_iters {cfg.max_iters}, warmup_iters {cfg.warmup_iters}, "
                    f"warmup_factor {cfg.warmup_factor}, lr_steps {cfg.lr_steps}, lr_gamma "
                    f"{cfg.lr_gamma}: at step {step} lr {got:.10g}, the trainer's scheduler "
                    f"gives {lr:.10g} (its milestones: {milestones} = the sorted set of "
                    f"max(1, int(f * max_iters)) for f in lr_steps)"
                )


# ----------------------------------------------------------------------------- 09.3
def _library_clips(grads, max_norm):
    """(total norm, clipped gradients) by minimask's and by torch's clip_grad_norm_."""
    params = [Parameter(minimask.tensor(np.zeros_like(g))) for g in grads]
    for p, g in zip(params, grads):
        p.grad = minimask.tensor(g.copy())
    ours = float(clip_grad_norm_(params, max_norm).item())
    tensors = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for t, g in zip(tensors, grads):
        t.grad = torch.tensor(g.copy())
    theirs = float(torch.nn.utils.clip_grad_norm_(tensors, max_norm, foreach=False))
    return (
        (ours, [p.grad.numpy() for p in params]),
        (theirs, [t.grad.numpy() for t in tensors]),
    )


@exercise("09.3", "the global gradient norm and clipping", "clip_grad_norm")
def check_clip_grad_norm(clip_grad_norm):
    """A hand case (gradients (3,) and (4,): total norm 5; max_norm 1 scales them by
    1 / (5 + 1e-6)), then random float64 gradients of three shapes with max_norm below the
    norm (clipped), above it (unchanged), a zero gradient list (unchanged, no division by
    zero) and one large entry, against minimask.nn.utils.clip_grad_norm_ and
    torch.nn.utils.clip_grad_norm_ (total norm and every clipped entry, 1e-12). The input
    arrays must not be changed."""
    total, clipped = clip_grad_norm([np.array([3.0]), np.array([4.0])], 1.0)
    scale = 1.0 / (5.0 + 1e-6)
    if abs(float(total) - 5.0) > TOL:
        raise Wrong(
            f"gradients (3,) and (4,): total norm {float(total)}, want sqrt(3^2 + 4^2) = 5 "
            f"(all the gradients as one long vector)"
        )
    got = [float(_as_array(c, "a clipped gradient").ravel()[0]) for c in clipped]
    if not _close(got, [3 * scale, 4 * scale]):
        raise Wrong(
            f"gradients (3,) and (4,), max_norm 1: clipped to {got}, want each times "
            f"min(1 / (5 + 1e-6), 1) = {scale:.9f}: {[3 * scale, 4 * scale]}"
        )
    rng = np.random.default_rng(93)
    base = [rng.standard_normal(shape) for shape in ((3, 4), (5,), (2, 2, 3))]
    norm = float(np.sqrt(sum((g * g).sum() for g in base)))
    big = [g.copy() for g in base]
    big[1][2] = 1e4
    cases = [
        (base, 0.5 * norm, "max_norm half the norm (clipped)"),
        (base, 2.0 * norm, "max_norm twice the norm (unchanged)"),
        ([np.zeros((3, 4)), np.zeros(5)], 1.0, "all gradients zero"),
        (big, 10.0, "one entry 1e4"),
    ]
    for grads, max_norm, what in cases:
        before = [g.copy() for g in grads]
        total, clipped = clip_grad_norm([g.copy() for g in grads], max_norm)
        for g, b in zip(grads, before):
            if not np.array_equal(g, b):
                raise Wrong("clip_grad_norm changed an input array: return new arrays")
        clipped = [_as_array(c, "a clipped gradient") for c in clipped]
        for name, (want_total, want) in zip(
            ("minimask's clip_grad_norm_", "torch's clip_grad_norm_"),
            _library_clips(grads, max_norm),
        ):
            if abs(float(total) - want_total) > TOL * max(1.0, want_total):
                raise Wrong(
                    f"{what}: total norm {float(total):.12g}, {name} gives {want_total:.12g}"
                )
            if len(clipped) != len(want) or not all(map(_close, clipped, want)):
                raise Wrong(
                    f"{what} (max_norm {max_norm:.4g}, norm {want_total:.4g}): the clipped "
                    f"gradients differ from {name}'s; every gradient is multiplied by "
                    f"min(max_norm / (total + 1e-6), 1)"
                )


# ----------------------------------------------------------------------------- 09.4
class _Rank:
    """The rank and size a process of an mpiexec job has, as distributed.share reads them."""

    def __init__(self, rank, size):
        self.rank, self.size = rank, size


def _whole_batch_gradient(w, X, y):
    """d/dw of sum_i (x_i . w - y_i)^2 / N by minimask's autograd."""
    wt = minimask.tensor(w.copy(), requires_grad=True)
    residual = minimask.tensor(X) @ wt - minimask.tensor(y)
    ((residual * residual).sum() / len(X)).backward()
    return wt.grad.numpy()


@exercise("09.4", "data-parallel gradients: each rank's share of one loss", "rank_gradients")
def check_rank_gradients(rank_gradients):
    """A hand case (x = 1, 2, 3, w = 1, y = 0 on 2 ranks: rows {0, 1} and {2}, gradients
    2 (1 + 4) / 3 = 10/3 and 2 * 9 / 3 = 6), then random least-squares problems (7, 8 and
    5 rows, 1 to 4 ranks, so that the shares are unequal). Each rank's gradient against
    2 X_r^T (X_r w - y_r) / N with its rows from minimask.engine.distributed.share, and
    their sum against the whole batch's gradient by minimask's autograd (1e-12)."""
    X, w, y = np.array([[1.0], [2.0], [3.0]]), np.array([1.0]), np.zeros(3)
    got = [_as_array(g, "a rank's gradient") for g in rank_gradients(w, X, y, 2)]
    if len(got) != 2 or not (_close(got[0], [10 / 3]) and _close(got[1], [6.0])):
        raise Wrong(
            f"x = (1, 2, 3), w = 1, y = 0, 2 ranks: got {[g.tolist() for g in got]}, want "
            f"[[{10 / 3:.6f}], [6.0]]: rank 0 holds rows 0 and 1, rank 1 row 2, and each "
            f"divides its sum of squares by the batch's 3 rows"
        )
    rng = np.random.default_rng(94)
    for n, world_size in ((7, 3), (8, 3), (5, 2), (7, 4), (5, 1)):
        X, w, y = rng.standard_normal((n, 3)), rng.standard_normal(3), rng.standard_normal(n)
        got = [_as_array(g, "a rank's gradient") for g in rank_gradients(w, X, y, world_size)]
        if len(got) != world_size:
            raise Wrong(f"{n} rows on {world_size} ranks: got {len(got)} gradients")
        for r, g in enumerate(got):
            rows = share(n, _Rank(r, world_size))
            want = 2.0 * X[rows].T @ (X[rows] @ w - y[rows]) / n
            if not _close(g, want):
                local = 2.0 * X[rows].T @ (X[rows] @ w - y[rows]) / len(rows)
                hint = (
                    " (that is its rows' own mean: divide by the whole batch's N instead)"
                    if _close(g, local)
                    else ""
                )
                raise Wrong(
                    f"{n} rows on {world_size} ranks, rank {r} (rows {rows}): gradient "
                    f"{g.round(6)}, want 2 X_r^T (X_r w - y_r) / {n} = {want.round(6)}{hint}"
                )
        whole = _whole_batch_gradient(w, X, y)
        if not _close(np.sum(got, axis=0), whole):
            raise Wrong(
                f"{n} rows on {world_size} ranks: the ranks' gradients sum to "
                f"{np.sum(got, axis=0).round(6)}, the whole batch's is {whole.round(6)}"
            )
