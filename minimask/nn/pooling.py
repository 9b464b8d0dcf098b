"""``MaxPool2d``: the maximum over each ``kernel_size`` window of an NCHW input.

``stride`` defaults to ``kernel_size`` (windows that tile the input without overlap);
``padding`` adds implicit cells that never win (as in PyTorch). See F.max_pool2d for which
element gets the gradient when a window holds ties.
"""

from minimask.nn import functional as F
from minimask.nn.module import Module


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding

    def forward(self, input):
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
