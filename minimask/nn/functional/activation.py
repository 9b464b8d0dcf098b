"""Activation functions under torch.nn.functional's names.

Each is one autograd op (``minimask/autograd/ops``); the derivatives and their conventions
live there (relu'(0) = 0 as in PyTorch; softmax and log_softmax subtract the max first so
exp never overflows).
"""

from minimask.autograd import ops


def relu(input):
    """max(input, 0), elementwise."""
    return ops.relu(input)


def sigmoid(input):
    """1 / (1 + exp(-input)), elementwise, computed without overflow."""
    return ops.sigmoid(input)


def softmax(input, dim):
    """exp(input) / sum(exp(input), dim): probabilities along ``dim``."""
    return ops.softmax(input, dim)


def log_softmax(input, dim):
    """input - log(sum(exp(input), dim)): the log of softmax, computed without forming it."""
    return ops.log_softmax(input, dim)
