"""``Flatten``: merge dims ``start_dim`` .. ``end_dim`` into one, e.g. (N, C, H, W) ->
(N, C*H*W) with the defaults, between the conv part and the linear part of a network."""

from minimask.nn.module import Module


class Flatten(Module):
    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input):
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
