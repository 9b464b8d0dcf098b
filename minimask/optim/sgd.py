"""Stochastic gradient descent, with PyTorch's momentum, dampening, Nesterov and weight
decay, in PyTorch's order (``torch.optim.SGD``). For each parameter p with gradient g:

    g = g + weight_decay * p                       (L2 weight decay, added to the gradient)
    if momentum != 0:
        b = g                                      (first step: the buffer is g itself)
        b = momentum * b + (1 - dampening) * g     (later steps)
        g = g + momentum * b  if nesterov  else  b
    p = p - lr * g

Note that the learning rate multiplies the buffer at each step, not inside it (some papers
write v = momentum * v + lr * g instead; the two differ when lr changes).
"""

from minimask.optim.optimizer import Optimizer


class SGD(Optimizer):
    def __init__(self, params, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False):
        if lr < 0:
            raise ValueError(f"SGD: invalid learning rate {lr}")
        if momentum < 0:
            raise ValueError(f"SGD: invalid momentum {momentum}")
        if weight_decay < 0:
            raise ValueError(f"SGD: invalid weight_decay {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening = 0")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
        )
        super().__init__(params, defaults)

    def update(self, param, grad, state, group):
        # Array operators only (no NumPy calls), so the same code runs on any backend.
        # ``grad`` is never changed in place: it is the array of param.grad.
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * param.data
        momentum = group["momentum"]
        if momentum != 0:
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = grad.copy()
            else:
                buffer *= momentum
                buffer += (1 - group["dampening"]) * grad
            # Stored back: for a 0-d parameter NumPy may hand us a scalar, not an array,
            # and `*=` on a scalar makes a new one instead of changing it.
            state["momentum_buffer"] = buffer
            grad = grad + momentum * buffer if group["nesterov"] else buffer
        param.data -= group["lr"] * grad
