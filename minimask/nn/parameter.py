"""``Parameter``: a Tensor that a Module learns.

A Parameter is an ordinary leaf Tensor with ``requires_grad=True`` by default. Its only
extra meaning is for ``Module``: assigning a Parameter to a module attribute
(``self.weight = Parameter(...)``) registers it, so that ``module.parameters()`` (what an
optimizer updates) and ``module.state_dict()`` (what a checkpoint holds) find it.
Operations on a Parameter give plain Tensors, as in PyTorch.
"""

from minimask.autograd.factories import tensor as make_tensor
from minimask.autograd.tensor import Tensor


class Parameter(Tensor):
    def __init__(self, data=None, requires_grad=True):
        """``data``: a Tensor (its array is shared, not copied, as in PyTorch) or anything
        ``minimask.tensor`` accepts (a NumPy array, nested lists: copied). Left out, an
        empty float32 tensor."""
        if data is None:
            data = make_tensor([])
        elif not isinstance(data, Tensor):
            data = make_tensor(data)
        super().__init__(data.data, data.device, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()
