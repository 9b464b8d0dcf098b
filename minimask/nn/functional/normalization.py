"""group_norm: normalise each group of channels of each sample, then scale and shift
per channel (Wu & He, "Group Normalization", 2018).

For x of shape (N, C, *) and G groups of C/G channels, with the statistics of each (n, g)
taken over its C/G channels and all spatial positions (m elements, biased variance):

    x_hat = (x - mean) / sigma,    sigma = sqrt(var + eps)
    y     = gamma[c] * x_hat + beta[c]

Backward, with g = dL/dy and g' = g * gamma[c] (the gradient reaching x_hat), means over the
same m elements of each (n, g):

    dx     = (1 / sigma) * (g' - mean(g') - x_hat * mean(g' * x_hat))
    dgamma = sum over n and positions of g * x_hat
    dbeta  = sum over n and positions of g

One Function with this closed form, rather than a composition of mean/sub/sqrt/div ops:
it saves only x_hat and 1/sigma and needs no intermediate graph, so it is faster and uses
less memory in a network that has a group norm after every convolution.
"""

from minimask.autograd.function import Function
from minimask.autograd.ops.operands import as_tensor, common_operands


class GroupNorm(Function):
    @staticmethod
    def forward(ctx, x, gamma, beta, num_groups, eps):
        batch, channels = x.shape[:2]
        groups = x.reshape(batch, num_groups, -1)
        mean = groups.mean(axis=2, keepdims=True)
        centred = groups - mean
        inv_sigma = 1 / ctx.xp.sqrt((centred * centred).mean(axis=2, keepdims=True) + eps)
        x_hat = (centred * inv_sigma).reshape(x.shape)
        per_channel = (1, channels) + (1,) * (x.ndim - 2)
        ctx.save_for_backward(x_hat, inv_sigma, gamma)
        ctx.num_groups, ctx.per_channel = num_groups, per_channel
        return x_hat * gamma.reshape(per_channel) + beta.reshape(per_channel)

    @staticmethod
    def backward(ctx, grad_out):
        x_hat, inv_sigma, gamma = ctx.saved_arrays
        batch, channels = x_hat.shape[:2]
        not_channel = (0,) + tuple(range(2, x_hat.ndim))
        grad_x = grad_gamma = grad_beta = None
        if ctx.needs_input_grad[0]:
            grad_hat = (grad_out * gamma.reshape(ctx.per_channel)).reshape(
                batch, ctx.num_groups, -1
            )
            x_hat_groups = x_hat.reshape(batch, ctx.num_groups, -1)
            grad_x = inv_sigma * (
                grad_hat
                - grad_hat.mean(axis=2, keepdims=True)
                - x_hat_groups * (grad_hat * x_hat_groups).mean(axis=2, keepdims=True)
            )
            grad_x = grad_x.reshape(x_hat.shape)
        if ctx.needs_input_grad[1]:
            grad_gamma = (grad_out * x_hat).sum(axis=not_channel)
        if ctx.needs_input_grad[2]:
            grad_beta = grad_out.sum(axis=not_channel)
        return grad_x, grad_gamma, grad_beta


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Group normalisation of ``input`` (N, C, *) with ``num_groups`` groups of channels,
    then ``weight`` (gamma, shape (C,)) and ``bias`` (beta, shape (C,)); a missing weight
    counts as ones and a missing bias as zeros (see the module docstring)."""
    if input.ndim < 2:
        raise ValueError(f"group_norm: input must be (N, C, *), got shape {input.shape}")
    if input.dtype.kind != "f":
        raise TypeError(f"group_norm: input must be floating point, got {input.dtype}")
    channels = input.shape[1]
    if not isinstance(num_groups, int) or num_groups < 1 or channels % num_groups != 0:
        raise ValueError(
            f"group_norm: num_groups must divide the number of channels; got num_groups="
            f"{num_groups!r} for {channels} channels (input shape {input.shape})"
        )
    for name, parameter in (("weight", weight), ("bias", bias)):
        if parameter is not None and parameter.shape != (channels,):
            raise ValueError(
                f"group_norm: {name} must have shape ({channels},), got {parameter.shape}"
            )
    if weight is None:
        weight = as_tensor([1.0] * channels, input.device, input.dtype)
    if bias is None:
        bias = as_tensor([0.0] * channels, input.device, input.dtype)
    return GroupNorm.apply(*common_operands(input, weight, bias), num_groups=num_groups, eps=eps)
