"""Version counters: how backward notices that a tensor it saved was written in place.

A Function's backward often needs its inputs (``Mul`` needs both factors, ``Exp`` its
output). It keeps references to those arrays, not copies, so an in-place write between
forward and backward (``x[0] = 100.``, ``x.zero_()``, an optimizer step, ``x.data = ...``)
would silently change the gradient. PyTorch's answer, followed here: every tensor's storage
carries a counter that every in-place write bumps; a Function records the counters of what
it saves, with their values; backward compares them and raises, naming the operation and
the tensor's shape, if one has moved.

Tensors that share storage share one counter: ``detach()`` gives the same data, and a
Function whose output is a view of an input (``reshape``, ``transpose``, basic indexing)
hands the input's counter to the output, so a write through either is seen by both.

Tensor ``+=`` is not in place in minimask (it rebinds the name to ``x + y``), so it never
invalidates a saved tensor.
"""


class VersionCounter:
    """The version of one storage: 0 when created, +1 per in-place write."""

    __slots__ = ("value",)

    def __init__(self):
        self.value = 0

    def bump(self):
        self.value += 1


class SavedVersion:
    """One saved tensor's counter and the value it had when its Function saved it."""

    __slots__ = ("counter", "value", "shape", "role")

    def __init__(self, counter, shape, role):
        self.counter, self.value, self.shape, self.role = counter, counter.value, shape, role

    def check(self, function_name):
        """Raise if the tensor was written in place since it was saved."""
        if self.counter.value != self.value:
            raise RuntimeError(
                f"{function_name}: one of the tensors needed for its gradient ({self.role}, "
                f"shape {self.shape}) has been modified by an in-place operation: it was "
                f"saved at version {self.value} and is now at version {self.counter.value}. "
                "Build a new tensor (minimask.where, minimask.cat, an arithmetic result) "
                "instead of writing into this one."
            )
