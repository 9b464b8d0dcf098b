"""``Function``: one differentiable operation, as a forward and a backward rule.

A Function subclass writes two static methods that work on backend arrays (NumPy arrays
on the CPU, device arrays on CUDA), never on Tensors:

    forward(ctx, *arrays, **params) -> array
    backward(ctx, grad_out)         -> one gradient (or None) per array input

``params`` are the non-tensor arguments (stride, dim, output size, ...); ``forward`` keeps
what ``backward`` needs on ``ctx`` (``ctx.save_for_backward(...)`` for arrays, plain
attributes for the rest). ``Function.apply(*tensors, **params)`` runs ``forward`` and, when
a graph is being recorded, makes the result remember the ``ctx`` (its ``grad_fn``) so that
the engine can call ``backward`` later.

A backward may return a gradient in the *broadcast* shape of the output (for example the
gradient of ``a + b`` is just ``grad_out`` for both): the engine sums it down to each
input's shape in one place (see ``engine.unbroadcast``).
"""

from minimask.autograd import grad_mode
from minimask.autograd.device import backend_for
from minimask.autograd.dtypes import is_floating
from minimask.autograd.version import SavedVersion


class Context:
    """What one application of a Function remembers for its backward.

    inputs:            the input Tensors (the edges of the graph)
    needs_input_grad:  a bool per input: does backward have to compute its gradient?
    xp:                the backend module of the arrays (``minimask.cpu`` or ``minimask.cuda``)
    """

    def __init__(self, function, inputs, xp):
        self.function = function
        self.inputs = inputs
        self.needs_input_grad = tuple(t.requires_grad for t in inputs)
        self.xp = xp
        self._saved = ()
        self._saved_versions = ()
        self._released = False

    def save_for_backward(self, *arrays):
        self._saved = arrays

    def record_versions(self, output):
        """Remember the version of every input (and the output) whose memory a saved array
        shares, so that backward can tell whether it was written in place since
        (``minimask/autograd/version.py``)."""
        tensors = [(t, f"input {i}") for i, t in enumerate(self.inputs)] + [(output, "output")]
        versions = []
        for t, role in tensors:
            if any(
                a is not None and hasattr(a, "shape") and self.xp.shares_memory(a, t.data)
                for a in self._saved
            ):
                versions.append(SavedVersion(t._version, t.shape, role))
        self._saved_versions = tuple(versions)

    @property
    def saved_arrays(self):
        if self._released:
            raise RuntimeError(
                f"{self.function.__name__}: trying to backward through the graph a second time; "
                "its saved arrays were freed after the first backward. "
                "Pass retain_graph=True to the first backward() to keep them."
            )
        for saved in self._saved_versions:
            saved.check(self.function.__name__)
        return self._saved

    def release(self):
        """Drop the saved arrays (after backward, unless the graph is retained)."""
        self._saved = ()
        self._saved_versions = ()
        self._released = True

    @property
    def name(self):
        return self.function.__name__


class Function:
    """Base class of every differentiable operation (see the module docstring)."""

    @staticmethod
    def forward(ctx, *arrays, **params):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_out):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **params):
        from minimask.autograd.tensor import Tensor

        for position, t in enumerate(inputs):
            if not isinstance(t, Tensor):
                raise TypeError(
                    f"{cls.__name__}: input {position} must be a Tensor, got {type(t).__name__}"
                )
        devices = {t.device for t in inputs}
        if len(devices) > 1:
            raise RuntimeError(
                f"{cls.__name__}: expected all inputs on one device, got {sorted(devices)}"
            )
        device = inputs[0].device
        ctx = Context(cls, inputs, backend_for(device))
        out = cls.forward(ctx, *(t.data for t in inputs), **params)
        # an integer or bool result (a cast such as x.long()) is piecewise constant in its
        # inputs: no gradient flows through it, so it starts no graph (as in PyTorch)
        record = (
            grad_mode.is_grad_enabled() and any(ctx.needs_input_grad) and is_floating(out.dtype)
        )
        result = Tensor(out, device, requires_grad=record, grad_fn=ctx if record else None)
        for t in inputs:  # a view of an input shares its storage, so its version counter
            if ctx.xp.shares_memory(out, t.data):
                result._version = t._version
                break
        if record:
            ctx.record_versions(result)
        return result
