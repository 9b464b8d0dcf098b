"""Containers: modules that hold other modules.

``Sequential(a, b, c)`` calls its children in order, ``c(b(a(x)))``; ``ModuleList`` is a
list whose modules are registered (so their parameters are the owner's parameters), for
models that call their parts in their own way. Children are named "0", "1", ... so the
parameters of ``Sequential(Linear(...), ReLU(), Linear(...))`` are called ``0.weight``,
``0.bias``, ``2.weight``, ``2.bias``, as in PyTorch.
"""

import operator
from collections import OrderedDict

from minimask.nn.module import Module


def _position(index, length, name):
    """``index`` (possibly negative) as a position in [0, length), or an IndexError."""
    index = operator.index(index)
    if not -length <= index < length:
        raise IndexError(f"{name} index {index} is out of range for length {length}")
    return index % length


class Sequential(Module):
    def __init__(self, *modules):
        """``Sequential(m0, m1, ...)`` or ``Sequential(OrderedDict(name=module, ...))``."""
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for i, module in enumerate(modules):
                self.add_module(str(i), module)

    def forward(self, input):
        for module in self._modules.values():
            input = module(input)
        return input

    def __getitem__(self, index):
        items = list(self._modules.items())
        if isinstance(index, slice):
            return Sequential(OrderedDict(items[index]))
        return items[_position(index, len(items), "Sequential")][1]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self


class ModuleList(Module):
    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __getitem__(self, index):
        modules = list(self._modules.values())
        if isinstance(index, slice):
            return ModuleList(modules[index])
        return modules[_position(index, len(modules), "ModuleList")]

    def __setitem__(self, index, module):
        position = _position(index, len(self), "ModuleList")
        self.add_module(str(position), module)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules):
        for module in modules:
            self.append(module)
        return self

    def forward(self, *args, **kwargs):
        raise NotImplementedError(
            "ModuleList has no forward(): iterate over it and call its modules yourself"
        )
