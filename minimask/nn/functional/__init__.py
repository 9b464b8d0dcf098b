"""Stateless neural-network functions under torch.nn.functional's names.

Layers (``minimask.nn``) hold parameters and call these; a model can also call them
directly. Each function checks its arguments and names the problem when they do not fit.
"""

from minimask.nn.functional.activation import log_softmax, relu, sigmoid, softmax
from minimask.nn.functional.conv import conv2d, conv_transpose2d
from minimask.nn.functional.interpolate import interpolate
from minimask.nn.functional.linear import linear
from minimask.nn.functional.loss import (
    binary_cross_entropy_with_logits,
    cross_entropy,
    l1_loss,
    smooth_l1_loss,
)
from minimask.nn.functional.normalization import group_norm
from minimask.nn.functional.pooling import max_pool2d

__all__ = [
    "binary_cross_entropy_with_logits",
    "conv2d",
    "conv_transpose2d",
    "cross_entropy",
    "group_norm",
    "interpolate",
    "l1_loss",
    "linear",
    "log_softmax",
    "max_pool2d",
    "relu",
    "sigmoid",
    "smooth_l1_loss",
    "softmax",
]
