"""``Tensor``: an array that remembers how it was computed, so gradients can flow back.

A Tensor holds

    data           the backend array (a NumPy array on "cpu", a device array on "cuda")
    device         "cpu" or "cuda"
    requires_grad  whether gradients are wanted for it (or for what it was computed from)
    grad_fn        the Context of the Function that made it (None for a leaf)
    grad           after backward(): a Tensor of the same shape with d(output)/d(self)

Every operation is a Function (``minimask/autograd/ops/``); the methods here only route
to them, with PyTorch's names and semantics.
"""

import numpy as np

from minimask.autograd import engine, grad_mode
from minimask.autograd.device import backend_for, normalize_device
from minimask.autograd.dtypes import as_dtype, is_floating
from minimask.autograd.version import VersionCounter


class Tensor:
    __array_priority__ = 1000  # NumPy defers `ndarray + tensor` to Tensor.__radd__

    def __init__(self, data, device="cpu", requires_grad=False, grad_fn=None):
        """Wrap a backend array as it is (no copy). Users call ``minimask.tensor(...)``."""
        if isinstance(data, np.generic):
            # NumPy returns a scalar (np.float32), not a 0-d array, from most operations on
            # 0-d arrays; a scalar cannot be written in place (zero_, t[...] = v)
            data = np.asarray(data)
        self._data = data
        self._version = VersionCounter()
        self.device = device
        self.grad = None
        self.grad_fn = grad_fn
        self.retains_grad = False
        self._requires_grad = False
        self.requires_grad = requires_grad

    # ---------------------------------------------------------------- properties
    @property
    def data(self):
        """The backend array (NumPy on "cpu", CudaArray on "cuda"), shared, not copied."""
        return self._data

    @data.setter
    def data(self, array):
        """Replacing the array is an in-place write: it bumps the version counter, so a
        graph that saved this tensor refuses to backward (``version.py``). ``p.data -= u``
        (an optimizer step) comes here too: Python writes the result back through it."""
        self._data = array
        self._version.bump()

    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        if value and not is_floating(self.data.dtype):
            raise RuntimeError(
                f"only floating point tensors can require gradients, this one is {self.dtype}"
            )
        if not value and self.grad_fn is not None:
            raise RuntimeError(
                "requires_grad can only be turned off on a leaf tensor; use .detach() instead"
            )
        self._requires_grad = bool(value)

    def requires_grad_(self, requires_grad=True):
        self.requires_grad = requires_grad
        return self

    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def is_leaf(self):
        return self.grad_fn is None

    @property
    def T(self):
        return self.permute(*reversed(range(self.ndim)))

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def dim(self):
        return self.ndim

    def numel(self):
        return int(np.prod(self.shape))

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __repr__(self):
        body = np.array2string(self.numpy(), separator=", ", prefix="tensor(")
        extras = [f"dtype={self.dtype}"]
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{self.grad_fn.name}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return f"tensor({body}, {', '.join(extras)})"

    def __iter__(self):
        """The sub-tensors along dim 0 (Python would otherwise index until IndexError, and
        find nothing to iterate in a 0-d tensor instead of saying so)."""
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    __hash__ = object.__hash__  # == is elementwise, so hashing is by identity

    def __bool__(self):
        if self.numel() != 1:
            raise RuntimeError(
                f"the truth value of a tensor with {self.numel()} elements is ambiguous"
            )
        return bool(self.item())

    # ---------------------------------------------------------------- autograd
    def backward(self, grad=None, retain_graph=False):
        """Accumulate the gradient of this tensor into ``.grad`` of every leaf it depends on.

        ``grad`` is d(something)/d(self); it may be left out only when this tensor holds a
        single element (a loss), where it is 1.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad and has no grad_fn"
            )
        xp = backend_for(self.device)
        if grad is None:
            if self.numel() != 1:
                raise RuntimeError(
                    f"backward() without a grad argument needs a single-element (scalar) "
                    f"output, got shape {self.shape}; pass grad= of that shape"
                )
            grad_array = xp.ones(self.shape, dtype=self.dtype)
        else:
            grad_array = grad.data if isinstance(grad, Tensor) else xp.asarray(grad, self.dtype)
            if tuple(grad_array.shape) != self.shape:
                raise RuntimeError(
                    f"backward(): grad has shape {tuple(grad_array.shape)}, "
                    f"but the tensor has shape {self.shape}"
                )
            grad_array = xp.astype(grad_array, self.dtype)
        engine.backward(self, grad_array, retain_graph=retain_graph)

    def retain_grad(self):
        """Keep ``.grad`` for this non-leaf tensor too (leaves always keep theirs)."""
        self.retains_grad = True
        return self

    def detach(self):
        """The same data, cut from the graph (shares memory and its version counter,
        requires no grad)."""
        out = Tensor(self.data, self.device)
        out._version = self._version
        return out

    # ---------------------------------------------------------------- conversion
    def numpy(self):
        """A host NumPy copy of the data."""
        return backend_for(self.device).to_numpy(self.data)

    def item(self):
        if self.numel() != 1:
            raise ValueError(f"item() needs a single-element tensor, got shape {self.shape}")
        return self.numpy().reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def to(self, device_or_dtype=None, dtype=None):
        """``t.to("cuda")``, ``t.to(minimask.float64)`` or ``t.to("cpu", minimask.float64)``.

        A dtype change is differentiable; a device change copies the data and is a leaf
        (tensors move between devices before a graph is built, as models do).
        """
        device = self.device
        if device_or_dtype is not None:
            if isinstance(device_or_dtype, str) and device_or_dtype.split(":")[0] in (
                "cpu",
                "cuda",
            ):
                device = normalize_device(device_or_dtype)
            else:
                dtype = device_or_dtype
        out = self
        if dtype is not None and as_dtype(dtype) != self.dtype:
            out = ops.cast(out, as_dtype(dtype))
        if device != self.device:
            host = backend_for(out.device).to_numpy(out.data)
            moved = Tensor(backend_for(device).asarray(host), device)
            moved.requires_grad = out.requires_grad and out.is_leaf
            out = moved
        return out

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    def long(self):
        return self.to(np.int64)

    def int(self):
        return self.to(np.int32)

    def bool(self):
        return self.to(np.bool_)

    # ---------------------------------------------------------------- in-place (no graph)
    def __setitem__(self, index, value):
        """In-place assignment, for tensors outside any graph (targets, buffers, masks),
        and for parameters under ``no_grad()`` (initialisation). Bumps the version counter,
        so a graph that saved this tensor refuses to backward."""
        self._check_in_place("in-place assignment")
        value = value.data if isinstance(value, Tensor) else value
        self.data[ops.indexing.normalize_index(index, self.device)] = value
        self._version.bump()

    def zero_(self):
        """Set every element to 0 in place (bumps the version counter)."""
        self._check_in_place("zero_(), an in-place write,")
        self.data[...] = 0
        self._version.bump()
        return self

    def _check_in_place(self, what):
        if not self.requires_grad or not grad_mode.is_grad_enabled():
            return
        kind = "a leaf" if self.is_leaf else "a result of the graph"
        raise RuntimeError(
            f"{what} to a tensor that requires grad ({kind}, shape {self.shape}) is not "
            "supported while gradients are recorded: wrap it in `with minimask.no_grad():` "
            "(as an initialisation or an optimizer step does), or build a new tensor (e.g. "
            "with minimask.where or minimask.cat)"
        )

    # ---------------------------------------------------------------- arithmetic
    def __add__(self, other):
        return ops.add(self, other)

    def __radd__(self, other):
        return ops.add(other, self)

    def __sub__(self, other):
        return ops.sub(self, other)

    def __rsub__(self, other):
        return ops.sub(other, self)

    def __mul__(self, other):
        return ops.mul(self, other)

    def __rmul__(self, other):
        return ops.mul(other, self)

    def __truediv__(self, other):
        return ops.div(self, other)

    def __rtruediv__(self, other):
        return ops.div(other, self)

    def __pow__(self, other):
        return ops.pow(self, other)

    def __rpow__(self, other):
        return ops.pow(other, self)

    def __neg__(self):
        return ops.neg(self)

    def __matmul__(self, other):
        return ops.matmul(self, other)

    def __rmatmul__(self, other):
        return ops.matmul(other, self)

    def __eq__(self, other):
        return ops.eq(self, other)

    def __ne__(self, other):
        return ops.ne(self, other)

    def __lt__(self, other):
        return ops.lt(self, other)

    def __le__(self, other):
        return ops.le(self, other)

    def __gt__(self, other):
        return ops.gt(self, other)

    def __ge__(self, other):
        return ops.ge(self, other)

    def __and__(self, other):
        return ops.logical_and(self, other)

    def __or__(self, other):
        return ops.logical_or(self, other)

    def __invert__(self):
        return ops.logical_not(self)

    def __getitem__(self, index):
        return ops.getitem(self, index)

    def add(self, other):
        return ops.add(self, other)

    def sub(self, other):
        return ops.sub(self, other)

    def mul(self, other):
        return ops.mul(self, other)

    def div(self, other):
        return ops.div(self, other)

    def pow(self, other):
        return ops.pow(self, other)

    def neg(self):
        return ops.neg(self)

    def matmul(self, other):
        return ops.matmul(self, other)

    # ---------------------------------------------------------------- elementwise
    def exp(self):
        return ops.exp(self)

    def log(self):
        return ops.log(self)

    def sqrt(self):
        return ops.sqrt(self)

    def abs(self):
        return ops.abs(self)

    def relu(self):
        return ops.relu(self)

    def sigmoid(self):
        return ops.sigmoid(self)

    def tanh(self):
        return ops.tanh(self)

    def clamp(self, min=None, max=None):
        return ops.clamp(self, min, max)

    def maximum(self, other):
        return ops.maximum(self, other)

    def minimum(self, other):
        return ops.minimum(self, other)

    # ---------------------------------------------------------------- reductions
    def sum(self, dim=None, keepdim=False):
        return ops.sum(self, dim, keepdim)

    def mean(self, dim=None, keepdim=False):
        return ops.mean(self, dim, keepdim)

    def max(self, dim=None, keepdim=False):
        return ops.max(self, dim, keepdim)

    def min(self, dim=None, keepdim=False):
        return ops.min(self, dim, keepdim)

    def amax(self, dim=None, keepdim=False):
        return ops.amax(self, dim, keepdim)

    def amin(self, dim=None, keepdim=False):
        return ops.amin(self, dim, keepdim)

    def argmax(self, dim=None, keepdim=False):
        return ops.argmax(self, dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return ops.argmin(self, dim, keepdim)

    def softmax(self, dim):
        return ops.softmax(self, dim)

    def log_softmax(self, dim):
        return ops.log_softmax(self, dim)

    def topk(self, k, dim=-1, largest=True, sorted=True):
        return ops.topk(self, k, dim, largest, sorted)

    def sort(self, dim=-1, descending=False):
        return ops.sort(self, dim, descending)

    def gather(self, dim, index):
        return ops.gather(self, dim, index)

    # ---------------------------------------------------------------- shape
    def reshape(self, *shape):
        return ops.reshape(self, *shape)

    def view(self, *shape):
        return ops.reshape(self, *shape)

    def permute(self, *dims):
        return ops.permute(self, *dims)

    def transpose(self, dim0, dim1):
        return ops.transpose(self, dim0, dim1)

    def flatten(self, start_dim=0, end_dim=-1):
        return ops.flatten(self, start_dim, end_dim)

    def squeeze(self, dim=None):
        return ops.squeeze(self, dim)

    def unsqueeze(self, dim):
        return ops.unsqueeze(self, dim)

    def expand(self, *sizes):
        return ops.expand(self, *sizes)

    def contiguous(self):
        return self


from minimask.autograd import ops  # noqa: E402  (ops build on Tensor)
