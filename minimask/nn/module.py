"""``Module``: the base class of every layer and model, with PyTorch's API.

A module is a tree. Each node keeps three ordered registries, filled by plain attribute
assignment in ``__init__``:

    self.weight = Parameter(...)       -> _parameters   (learned: the optimizer updates it)
    self.conv = Conv2d(...)            -> _modules      (a child: its parameters are ours too)
    self.register_buffer("n", tensor)  -> _buffers      (state that is saved but not learned)

From these registries come the names everything else uses: ``named_parameters()`` walks
the tree depth first (a module's own parameters, then each child's in the order they were
assigned) and joins names with dots, so ``model.backbone.conv1.weight`` is called
``"backbone.conv1.weight"``, exactly as PyTorch names it. ``state_dict()`` uses the same
names, which is why checkpoints are plain ``name -> array`` files.

Gradients accumulate into ``.grad`` (see ``minimask.autograd.engine``).
``zero_grad()`` sets every parameter's ``.grad`` to None, PyTorch 2's default: the next
backward then stores its gradient instead of adding to zeros (and a parameter that took
no part in the loss keeps ``.grad = None``, which optimizers skip).
"""

from collections import namedtuple

import numpy as np

from minimask.autograd.device import backend_for, normalize_device
from minimask.autograd.dtypes import as_dtype, is_floating
from minimask.autograd.tensor import Tensor
from minimask.nn.parameter import Parameter

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Module:
    def __init__(self):
        # object.__setattr__: our own __setattr__ needs these registries to exist first
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", {})

    def forward(self, *args, **kwargs):
        raise NotImplementedError(
            f"{type(self).__name__} has no forward(); define forward(self, ...) in the subclass"
        )

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------ registration
    def __setattr__(self, name, value):
        if isinstance(value, (Parameter, Module)):
            registry = "_parameters" if isinstance(value, Parameter) else "_modules"
            if hasattr(type(self), name):
                raise KeyError(
                    f"cannot register {name!r}: it is an attribute of the class "
                    f"{type(self).__name__} (a method or property); choose another name"
                )
            self._store(registry, name, value)
        elif name in self.__dict__.get("_parameters", {}):
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} to parameter {name!r} of "
                    f"{type(self).__name__}: expected a Parameter or None"
                )
            self._parameters[name] = None
        elif name in self.__dict__.get("_modules", {}):
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} to submodule {name!r} of "
                    f"{type(self).__name__}: expected a Module or None"
                )
            self._modules[name] = None
        elif name in self.__dict__.get("_buffers", {}):
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(
                    f"cannot assign {type(value).__name__} to buffer {name!r} of "
                    f"{type(self).__name__}: expected a Tensor or None"
                )
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # Python calls this only when ordinary lookup fails: look in the registries.
        for registry in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(registry, {})
            if name in entries:
                return entries[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                self._non_persistent_buffers.discard(name)
                return
        object.__delattr__(self, name)

    def _store(self, registry, name, value):
        """Put ``value`` in ``registry`` ("_parameters", "_buffers" or "_modules") under
        ``name``, and remove ``name`` from everywhere else (plain attributes, the other
        registries), so that each name lives in one place. A name already in ``registry``
        keeps its position: re-assigning ``self.conv`` keeps the order of the children."""
        if registry not in self.__dict__:
            raise AttributeError(
                f"cannot register {name!r} before Module.__init__() has run: "
                f"call super().__init__() first in {type(self).__name__}.__init__"
            )
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"a registered name must be a non-empty str without '.', got {name!r}")
        self.__dict__.pop(name, None)
        for other in ("_parameters", "_buffers", "_modules"):
            if other != registry:
                self.__dict__[other].pop(name, None)
        if registry != "_buffers":
            self._non_persistent_buffers.discard(name)
        self.__dict__[registry][name] = value

    def _check_new_name(self, registry, name):
        """Explicit registration may not silently replace an attribute of another kind."""
        if hasattr(self, name) and name not in self.__dict__.get(registry, {}):
            raise KeyError(f"attribute {name!r} already exists in {type(self).__name__}")

    def register_parameter(self, name, param):
        """Register ``param`` (a Parameter, or None for an absent one such as ``bias=False``)."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"register_parameter({name!r}): expected a Parameter or None, "
                f"got {type(param).__name__}"
            )
        self._check_new_name("_parameters", name)
        self._store("_parameters", name, param)

    def register_buffer(self, name, tensor, persistent=True):
        """Register a Tensor that is part of the module's state but not learned (running
        statistics, fixed anchors, ...). A persistent buffer is saved in ``state_dict``."""
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(
                f"register_buffer({name!r}): expected a Tensor or None, got {type(tensor).__name__}"
            )
        self._check_new_name("_buffers", name)
        self._store("_buffers", name, tensor)
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def add_module(self, name, module):
        """Register ``module`` as a child called ``name`` (what ``self.name = module`` does)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(
                f"add_module({name!r}): expected a Module or None, got {type(module).__name__}"
            )
        self._check_new_name("_modules", name)
        self._store("_modules", name, module)

    # ------------------------------------------------------------ walking the tree
    def named_modules(self, prefix=""):
        """(name, module) for this module and every module below it, depth first; a module
        reachable by two paths is listed once, under its first name."""
        seen = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [
                (f"{name}.{child_name}" if name else child_name, child)
                for child_name, child in module._modules.items()
                if child is not None
            ]
            stack.extend(reversed(children))

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        """(name, module) for the direct children, in the order they were assigned."""
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self):
        for _, module in self.named_children():
            yield module

    def _named_members(self, registry, recurse):
        """(dotted name, tensor) from ``registry`` of every module, each tensor once."""
        seen = set()
        modules = self.named_modules() if recurse else [("", self)]
        for module_name, module in modules:
            for name, value in getattr(module, registry).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{module_name}.{name}" if module_name else name), value

    def named_parameters(self, recurse=True):
        """(dotted name, Parameter), depth first, each parameter once (a parameter shared
        by two modules is listed under its first name), as in PyTorch."""
        return self._named_members("_parameters", recurse)

    def parameters(self, recurse=True):
        for _, param in self.named_parameters(recurse):
            yield param

    def named_buffers(self, recurse=True):
        return self._named_members("_buffers", recurse)

    def buffers(self, recurse=True):
        for _, buffer in self.named_buffers(recurse):
            yield buffer

    def apply(self, fn):
        """Call ``fn(module)`` on every child (recursively), then on ``self``; returns self.
        The usual use is custom initialisation: ``model.apply(init_weights)``."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------ modes and gradients
    def train(self, mode=True):
        """Set ``.training`` on this module and every module below it; returns self."""
        if not isinstance(mode, bool):
            raise TypeError(f"train(mode): mode must be a bool, got {type(mode).__name__}")
        for module in self.modules():
            module.training = mode
        return self

    def eval(self):
        """``train(False)``: evaluation mode, for layers that behave differently there."""
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for param in self.parameters():
            param.requires_grad = requires_grad
        return self

    def zero_grad(self, set_to_none=True):
        """Forget the gradients of every parameter: ``.grad = None`` (PyTorch 2's default).

        With ``set_to_none=False`` each gradient array is filled with zeros instead.
        Either way the next ``backward()`` starts afresh; without a zero_grad it *adds* to
        the gradients already there (see ``minimask.autograd.engine``).
        """
        for param in self.parameters():
            if set_to_none:
                param.grad = None
            elif param.grad is not None:
                param.grad.zero_()

    # ------------------------------------------------------------ state dict
    def _state_items(self, prefix=""):
        """(dotted name, tensor) of everything ``state_dict`` holds: this module's
        parameters, then its persistent buffers, then each child's, recursively (PyTorch's
        order). A module shared by two parents appears under both names, as in PyTorch."""
        for name, param in self._parameters.items():
            if param is not None:
                yield prefix + name, param
        for name, buffer in self._buffers.items():
            if buffer is not None and name not in self._non_persistent_buffers:
                yield prefix + name, buffer
        for name, child in self._modules.items():
            if child is not None:
                yield from child._state_items(prefix + name + ".")

    def state_dict(self):
        """An ordered dict: dotted name -> Tensor, for every parameter and persistent buffer.

        The values are *detached* Tensors that share memory with the live parameters, as
        in PyTorch: the optimizer's next step changes them too. Save them
        (``minimask.save(model.state_dict(), path)``) or copy them to keep a snapshot.
        """
        return {name: value.detach() for name, value in self._state_items()}

    def load_state_dict(self, state_dict, strict=True):
        """Copy values from ``state_dict`` (name -> Tensor or NumPy array) into this module.

        Every problem is found before anything is copied, and reported in ONE error:
        keys the module has but ``state_dict`` lacks (missing), keys ``state_dict`` has
        but the module lacks (unexpected) and values of the wrong shape. With
        ``strict=False`` missing and unexpected keys are allowed (and returned); a shape
        mismatch is always an error. Values are cast to each parameter's dtype and put on
        its device, as new arrays; the Parameter objects stay the same, so an optimizer
        built before still updates them (unlike PyTorch's in-place copy, a state_dict taken
        before the load keeps the old values).
        Returns ``IncompatibleKeys(missing_keys, unexpected_keys)``.
        """
        own = dict(self._state_items())
        missing = [name for name in own if name not in state_dict]
        unexpected = [name for name in state_dict if name not in own]
        values, mismatched = {}, []
        for name, target in own.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            host = value.numpy() if isinstance(value, Tensor) else np.asarray(value)
            if host.shape != target.shape:
                mismatched.append(
                    f"  size mismatch for {name!r}: the module expects shape {target.shape}, "
                    f"the state_dict has shape {host.shape}"
                )
            values[name] = host
        problems = []
        if strict and missing:
            problems.append("  missing keys: " + ", ".join(repr(k) for k in missing))
        if strict and unexpected:
            problems.append("  unexpected keys: " + ", ".join(repr(k) for k in unexpected))
        problems.extend(mismatched)
        if problems:
            raise RuntimeError(
                f"Error(s) in loading state_dict for {type(self).__name__}:\n" + "\n".join(problems)
            )
        for name, host in values.items():
            target = own[name]
            target.data = backend_for(target.device).asarray(host.astype(target.dtype))
        return IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------ device and dtype
    def to(self, device_or_dtype=None, dtype=None):
        """Move and/or cast every parameter, gradient and buffer in place; returns self.

        ``model.to("cuda")``, ``model.to(minimask.float64)``, ``model.to("cpu", float64)``.
        As in PyTorch, a dtype applies to floating point tensors only (integer buffers
        keep theirs), and the Parameter objects stay the same (an optimizer built before
        still holds them, though its state, such as momentum, is not converted: build
        the optimizer after moving the model).
        """
        device = None
        if isinstance(device_or_dtype, str) and device_or_dtype.split(":")[0] in ("cpu", "cuda"):
            device = normalize_device(device_or_dtype)
        elif device_or_dtype is not None:
            dtype = device_or_dtype
        if dtype is not None:
            dtype = as_dtype(dtype)
            if not is_floating(dtype):
                raise TypeError(f"Module.to() casts to floating point dtypes only, got {dtype}")
        tensors = list(self.parameters()) + list(self.buffers())
        tensors += [p.grad for p in self.parameters() if p.grad is not None]
        for t in tensors:
            _convert_in_place(t, device, dtype)
        return self

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    # ------------------------------------------------------------ printing
    def extra_repr(self):
        """The text inside this module's parentheses in ``repr`` (its settings)."""
        return ""

    def __repr__(self):
        extra = self.extra_repr()
        lines = extra.split("\n") if extra else []
        child_lines = [
            f"({name}): " + _indent(repr(module), 2) for name, module in self._modules.items()
        ]
        text = type(self).__name__ + "("
        if len(lines) == 1 and not child_lines:
            text += lines[0]
        elif lines or child_lines:
            text += "\n  " + "\n  ".join(lines + child_lines) + "\n"
        return text + ")"


def _indent(text, spaces):
    """Indent every line of ``text`` but the first by ``spaces`` (for nested reprs)."""
    return text.replace("\n", "\n" + " " * spaces)


def _convert_in_place(t, device, dtype):
    """Give Tensor ``t`` a new array: cast to ``dtype`` (floating tensors only), moved to
    ``device``; either may be None for "unchanged"."""
    array = t.data
    if dtype is not None and is_floating(t.dtype) and t.dtype != dtype:
        array = backend_for(t.device).astype(array, dtype)
    if device is not None and device != t.device:
        array = backend_for(device).asarray(backend_for(t.device).to_numpy(array))
        t.device = device
    t.data = array
