"""``ReLU``: max(x, 0), elementwise (the gradient at exactly 0 is 0; see F.relu)."""

from minimask.nn import functional as F
from minimask.nn.module import Module


class ReLU(Module):
    def forward(self, input):
        return F.relu(input)
