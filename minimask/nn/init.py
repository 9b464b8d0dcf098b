"""Initialising parameters in place, with PyTorch's formulas (``torch.nn.init``).

Every function fills ``tensor.data`` in place (no graph is recorded: initialisation is
not part of what we differentiate) and returns the tensor. Numbers are drawn in float64
from minimask's one global generator (``minimask.manual_seed`` resets it), then cast to the
tensor's dtype and moved to its device.

Fans. For a weight of shape (out, in, *kernel), as Linear (out, in) and Conv2d
(out, in, kh, kw) lay theirs out:

    fan_in  = in  * kh * kw     (inputs that feed one output)
    fan_out = out * kh * kw

``fan_in_and_fan_out`` reads dims 0 and 1 that way whatever the layer: for
ConvTranspose2d, whose weight is (in, out, kh, kw), the "fan_in" it computes is really
out * kh * kw. PyTorch does exactly this, and its default initialisation depends on it.

Kaiming (He et al., 2015): for a layer followed by a nonlinearity with gain ``g``, weights
of standard deviation ``g / sqrt(fan)`` keep the activations' variance from layer to layer:

    kaiming_normal_:   N(0, std^2),            std   = gain / sqrt(fan)
    kaiming_uniform_:  U(-bound, bound),       bound = sqrt(3) * gain / sqrt(fan)
                       (a uniform on [-b, b] has standard deviation b / sqrt(3))
"""

import math

from minimask.autograd.device import backend_for
from minimask.autograd.random import default_generator

_LINEAR_GAIN_1 = (
    "linear",
    "identity",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
)


def calculate_gain(nonlinearity, param=None):
    """The gain PyTorch recommends for ``nonlinearity``:

    linear, conv*, sigmoid: 1     tanh: 5/3     relu: sqrt(2)     selu: 3/4
    leaky_relu: sqrt(2 / (1 + negative_slope^2)), negative_slope = ``param`` (default 0.01)
    """
    if nonlinearity in _LINEAR_GAIN_1:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            negative_slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            negative_slope = param
        else:
            raise ValueError(f"negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + negative_slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


def fan_in_and_fan_out(tensor):
    """(fan_in, fan_out) of a weight of shape (out, in, *kernel): see the module docstring.
    Equal to PyTorch's ``torch.nn.init._calculate_fan_in_and_fan_out``."""
    if tensor.ndim < 2:
        raise ValueError(
            f"fan in and fan out need a tensor of at least 2 dims, got shape {tensor.shape}"
        )
    receptive_field = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive_field, tensor.shape[0] * receptive_field


def _fan(tensor, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _fill(tensor, values):
    """Write the float64 host array ``values`` into ``tensor.data`` (same shape), cast to
    the tensor's dtype, in place."""
    host = values.astype(tensor.dtype)
    tensor.data[...] = backend_for(tensor.device).asarray(host)
    tensor._version.bump()  # an in-place write, as Tensor.__setitem__ counts it
    return tensor


def uniform_(tensor, a=0.0, b=1.0):
    """Fill with samples of the uniform distribution on [a, b)."""
    return _fill(tensor, default_generator().uniform(a, b, tensor.shape))


def normal_(tensor, mean=0.0, std=1.0):
    """Fill with samples of the normal distribution N(mean, std^2)."""
    return _fill(tensor, default_generator().normal(mean, std, tensor.shape))


def constant_(tensor, val):
    """Fill with ``val`` in place."""
    tensor.data[...] = val
    tensor._version.bump()  # an in-place write, as Tensor.__setitem__ counts it
    return tensor


def zeros_(tensor):
    return constant_(tensor, 0)


def ones_(tensor):
    return constant_(tensor, 1)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    """Fill with U(-bound, bound), bound = sqrt(3) * gain / sqrt(fan); ``a`` is the negative
    slope of a leaky_relu (PyTorch's layers call this with a=sqrt(5), which gives
    bound = 1 / sqrt(fan_in))."""
    if tensor.numel() == 0:
        return tensor  # nothing to fill (PyTorch warns and does the same)
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    """Fill with N(0, std^2), std = gain / sqrt(fan)."""
    if tensor.numel() == 0:
        return tensor
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return normal_(tensor, 0.0, std)
