"""Adam (Kingma & Ba, 2015), exactly as PyTorch's ``torch.optim.Adam`` computes it.

For each parameter p with gradient g, at step t = 1, 2, ...:

    g = g + weight_decay * p                    (L2 weight decay; AdamW is different)
    m = m + (1 - beta1) * (g - m)               (= beta1 m + (1 - beta1) g: moving mean)
    v = beta2 * v + (1 - beta2) * g * g         (moving mean of the squared gradient)
    p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

m and v start at zero, so early on they are too small by the factors (1 - beta^t); the
bias corrections divide that out. Note where eps goes: it is added *after* v's
correction, as PyTorch does (the paper's form), so it matters most in the first steps.
"""

from minimask.autograd.device import backend_for
from minimask.optim.optimizer import Optimizer


class Adam(Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0):
        if lr < 0:
            raise ValueError(f"Adam: invalid learning rate {lr}")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"Adam: betas must be in [0, 1), got {betas}")
        if eps < 0:
            raise ValueError(f"Adam: invalid eps {eps}")
        if weight_decay < 0:
            raise ValueError(f"Adam: invalid weight_decay {weight_decay}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)

    def update(self, param, grad, state, group):
        # Array operators (and the backend's sqrt and zeros), so any backend runs it.
        # ``grad`` is never changed in place: it is the array of param.grad.
        xp = backend_for(param.device)
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = xp.zeros(param.shape, dtype=param.dtype)
            state["exp_avg_sq"] = xp.zeros(param.shape, dtype=param.dtype)
        state["step"] += 1
        step = state["step"]
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * param.data
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg += (1 - beta1) * (grad - exp_avg)  # PyTorch: exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * grad * grad
        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        step_size = group["lr"] / bias_correction1
        denom = xp.sqrt(exp_avg_sq) / bias_correction2**0.5 + group["eps"]
        param.data -= step_size * exp_avg / denom
