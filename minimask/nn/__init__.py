"""Neural-network building blocks with PyTorch's names: ``Module`` and ``Parameter``,
containers, layers, ``functional`` (the stateless operations the layers call),
``init`` (parameter initialisation) and ``utils`` (``clip_grad_norm_``)."""

from minimask.nn import functional, init, utils
from minimask.nn.activation import ReLU
from minimask.nn.containers import ModuleList, Sequential
from minimask.nn.conv import Conv2d, ConvTranspose2d
from minimask.nn.flatten import Flatten
from minimask.nn.linear import Identity, Linear
from minimask.nn.module import Module
from minimask.nn.normalization import GroupNorm
from minimask.nn.parameter import Parameter
from minimask.nn.pooling import MaxPool2d

__all__ = [
    "Conv2d",
    "ConvTranspose2d",
    "Flatten",
    "GroupNorm",
    "Identity",
    "Linear",
    "MaxPool2d",
    "Module",
    "ModuleList",
    "Parameter",
    "ReLU",
    "Sequential",
    "functional",
    "init",
    "utils",
]
