"""``Optimizer``: the base class of SGD and Adam, with PyTorch's ``param_groups``.

An optimizer holds

    param_groups  a list of dicts; each has "params" (a list of Parameters) and that
                  group's options ("lr", "momentum", ...). Options not given for a group
                  come from the optimizer's defaults, so one model can train its parts
                  with different learning rates. A scheduler changes group["lr"].
    state         Parameter -> dict of what the update rule remembers for it (SGD's
                  momentum buffer, Adam's step count and moving averages). Arrays in it
                  are backend arrays of the parameter's kind (like ``p.data``).

``step()`` updates each parameter that has a gradient, in place, on ``p.data``; a
parameter whose ``.grad`` is None (it took no part in the loss) is skipped, as in PyTorch.
``zero_grad()`` then sets every ``.grad`` to None, PyTorch 2's default.

state_dict format
-----------------
``state_dict()`` is a flat dict that ``minimask.save`` writes as it is (str -> number,
tuple or Tensor), with parameters numbered 0, 1, 2, ... in the order of the groups:

    "param_groups.<g>.params"   the numbers of group g's parameters, e.g. [0, 1, 2]
    "param_groups.<g>.<option>" group g's options: "param_groups.0.lr" -> 0.01
    "state.<i>.<name>"          parameter i's state: "state.0.momentum_buffer" -> Tensor

In the state, floating point values are arrays (Tensors in the state_dict) and integer
values are counters (Python ints, such as Adam's "step"). As in PyTorch, the Tensors
share memory with the live state: save them (or copy them) before training further.
``load_state_dict`` accepts this dict back, also after a ``minimask.save`` /
``minimask.load`` round trip (which turns every value into a Tensor): it restores the
options and the state (copied, cast to each parameter's dtype and put on its device), so
that a resumed optimizer continues exactly as the original would have.
"""

from minimask.autograd.device import backend_for
from minimask.autograd.dtypes import is_floating
from minimask.autograd.grad_mode import enable_grad
from minimask.autograd.tensor import Tensor


class Optimizer:
    def __init__(self, params, defaults):
        """``params``: an iterable of Parameters, or of dicts (param groups) each with a
        "params" entry and any options that differ from ``defaults``."""
        self.defaults = dict(defaults)
        self.state = {}
        self.param_groups = []
        if isinstance(params, Tensor):
            raise TypeError(
                "params must be an iterable of Tensors or of dicts, got a single Tensor; "
                "pass [tensor]"
            )
        groups = list(params)
        if not groups:
            raise ValueError("the optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group):
        """Add a group (a dict with "params" and options) to ``param_groups``."""
        if not isinstance(group, dict):
            raise TypeError(f"a param group must be a dict, got {type(group).__name__}")
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"an optimizer can only optimize Tensors, got {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("cannot optimize a non-leaf Tensor (one computed from others)")
            if id(p) in seen:
                raise ValueError(
                    "a parameter appears twice in the optimizer's param groups; "
                    "give each parameter once"
                )
            seen.add(id(p))
        unknown = set(group) - set(self.defaults) - {"params", "initial_lr"}
        if unknown:
            raise ValueError(
                f"{type(self).__name__}: unknown option(s) {sorted(unknown)} in a param group; "
                f"known: {sorted(self.defaults)}"
            )
        group = {**self.defaults, **group, "params": params}
        self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        """Set every parameter's ``.grad`` to None (or, with ``set_to_none=False``, fill
        it with zeros in place). Without it, the next backward adds to the gradients
        already there."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()

    def step(self, closure=None):
        """Update every parameter that has a gradient. ``closure``, if given, is called
        first (with gradients enabled) to recompute the loss, which is returned."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.update(p, p.grad.data, self.state.setdefault(p, {}), group)
        return loss

    def update(self, param, grad, state, group):
        """Update ``param.data`` in place from ``grad`` (its gradient's array), ``state``
        (this parameter's state dict) and ``group`` (its group's options)."""
        raise NotImplementedError

    # ------------------------------------------------------------ state dict
    def state_dict(self):
        """A flat dict of the options and the state (format: see the module docstring)."""
        number = {}
        out = {}
        for g, group in enumerate(self.param_groups):
            for p in group["params"]:
                number[id(p)] = len(number)
            out[f"param_groups.{g}.params"] = [number[id(p)] for p in group["params"]]
            for option, value in group.items():
                if option != "params":
                    out[f"param_groups.{g}.{option}"] = value
        for group in self.param_groups:
            for p in group["params"]:
                for name, value in self.state.get(p, {}).items():
                    if not isinstance(value, (int, float)):
                        value = Tensor(value, p.device)
                    out[f"state.{number[id(p)]}.{name}"] = value
        return out

    def load_state_dict(self, state_dict):
        """Restore options and state from ``state_dict()``'s dict (or from its
        ``minimask.load``). Everything is checked before anything changes."""
        saved_groups, saved_state = {}, {}
        for key, value in state_dict.items():
            kind, _, rest = key.partition(".")
            index, _, name = rest.partition(".")
            if kind not in ("param_groups", "state") or not index.isdigit() or not name:
                raise ValueError(
                    f"optimizer state_dict: unexpected key {key!r}; keys look like "
                    f"'param_groups.0.lr' or 'state.3.momentum_buffer'"
                )
            target = saved_groups if kind == "param_groups" else saved_state
            target.setdefault(int(index), {})[name] = value
        if sorted(saved_groups) != list(range(len(self.param_groups))):
            raise ValueError(
                f"optimizer state_dict has {len(saved_groups)} param groups, "
                f"this optimizer has {len(self.param_groups)}"
            )
        params_by_number = {}
        new_groups = []
        for g, group in enumerate(self.param_groups):
            saved = saved_groups[g]
            if "params" not in saved:
                raise ValueError(f"optimizer state_dict: 'param_groups.{g}.params' is missing")
            numbers = [int(i) for i in _as_python(saved["params"], as_list=True)]
            if len(numbers) != len(group["params"]):
                raise ValueError(
                    f"optimizer state_dict: param group {g} has {len(numbers)} parameters, "
                    f"this optimizer's has {len(group['params'])}"
                )
            params_by_number.update(zip(numbers, group["params"]))
            options = {k: _as_python(v) for k, v in saved.items() if k != "params"}
            unknown = set(options) - set(self.defaults) - {"initial_lr"}
            if unknown:
                raise ValueError(
                    f"optimizer state_dict: options {sorted(unknown)} are not options of "
                    f"{type(self).__name__}; was it saved from another kind of optimizer?"
                )
            new_groups.append({**group, **options, "params": group["params"]})
        new_state = {}
        for i, entries in saved_state.items():
            if i not in params_by_number:
                raise ValueError(f"optimizer state_dict: state {i} belongs to no parameter")
            p = params_by_number[i]
            new_state[p] = {
                name: _state_value(value, p, f"state.{i}.{name}") for name, value in entries.items()
            }
        self.param_groups = new_groups
        self.state = new_state

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for g, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {g}")
            for option in sorted(k for k in group if k != "params"):
                lines.append(f"    {option}: {group[option]}")
        return "\n".join(lines) + "\n)"


def _as_python(value, as_list=False):
    """A saved option (a Python value, or a NumPy array / Tensor after save and load) as
    a Python value: 0-d arrays become numbers, 1-d arrays tuples (or lists)."""
    if isinstance(value, Tensor):
        value = value.numpy()
    if hasattr(value, "ndim"):  # a NumPy array or scalar
        value = value.item() if value.ndim == 0 else value.tolist()
    if isinstance(value, (list, tuple)):
        return list(value) if as_list else tuple(value)
    return value


def _state_value(value, param, key):
    """A saved state value for ``param``: a floating array of the parameter's shape
    becomes a backend array of its dtype on its device; an integer becomes a Python int."""
    if isinstance(value, (int, float)):
        return value
    host = value.numpy() if isinstance(value, Tensor) else value
    if not is_floating(host.dtype):
        if host.ndim != 0:
            raise ValueError(f"optimizer state_dict: {key!r} should be a single integer")
        return host.item()
    if tuple(host.shape) != param.shape:
        raise ValueError(
            f"optimizer state_dict: {key!r} has shape {tuple(host.shape)}, "
            f"but its parameter has shape {param.shape}"
        )
    return backend_for(param.device).asarray(host.astype(param.dtype))
