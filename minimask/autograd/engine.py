"""The backward engine: reverse-mode differentiation over the recorded graph.

``backward(root, grad)`` does, in order:

1. sort the graph topologically from ``root`` (a tensor comes before every tensor it was
   computed from), so each tensor's gradient is complete before it is passed on;
2. for each tensor in that order, call its Function's ``backward`` with the accumulated
   gradient of the tensor;
3. sum each returned gradient down to its input's shape (``unbroadcast``: the one place
   where broadcasting is undone) and check that it has the input's shape and dtype;
4. add it to what the input has already received (a tensor used twice gets the sum);
5. at a leaf (a tensor made by the user with ``requires_grad=True``) add the gradient
   into ``leaf.grad``, as PyTorch does: calling ``backward`` again adds again, and
   ``zero_grad()`` (which sets ``.grad`` to None) starts afresh.

Unless ``retain_graph=True``, each Function's saved arrays are freed as it is passed, so a
second backward through the same graph raises an error that says so when it reaches a
Function that needs its saved arrays (as in PyTorch, one that saved nothing, such as an
addition, runs again and adds again).
"""


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``, undoing NumPy/PyTorch broadcasting:
    leading dimensions that broadcasting added are summed away, and dimensions where
    ``shape`` has size 1 but ``grad`` does not are summed with keepdims."""
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    # zip: a gradient with too few dims (a broken backward) is left for the caller's check
    stretched = tuple(i for i, (n, m) in enumerate(zip(shape, grad.shape)) if n == 1 and m != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


def topological_order(root):
    """Tensors that ``root`` depends on (and that require grad), ``root`` first; every
    tensor comes before the tensors it was computed from. Iterative depth-first search,
    so deep graphs (long training loops) do not hit Python's recursion limit."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        tensor, expanded = stack.pop()
        if expanded:
            order.append(tensor)
            continue
        if id(tensor) in visited:
            continue
        visited.add(id(tensor))
        stack.append((tensor, True))
        if tensor.grad_fn is not None:
            for parent in tensor.grad_fn.inputs:
                if parent.requires_grad and id(parent) not in visited:
                    stack.append((parent, False))
    order.reverse()
    return order


def backward(root, grad, retain_graph=False):
    """Accumulate d(root)/d(leaf) * grad into ``leaf.grad`` for every leaf ``root`` depends on.

    ``grad`` is a backend array of ``root``'s shape and dtype (ones for a scalar loss).
    """
    from minimask.autograd.tensor import Tensor

    pending = {id(root): grad}
    for tensor in topological_order(root):
        grad = pending.pop(id(tensor), None)
        if grad is None:
            continue
        if tensor.grad_fn is None or tensor.retains_grad:
            tensor.grad = Tensor(
                grad.copy() if tensor.grad is None else tensor.grad.data + grad, tensor.device
            )
        ctx = tensor.grad_fn
        if ctx is None:
            continue
        input_grads = ctx.function.backward(ctx, grad)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        if len(input_grads) != len(ctx.inputs):
            raise RuntimeError(
                f"{ctx.name}.backward returned {len(input_grads)} gradients "
                f"for {len(ctx.inputs)} inputs"
            )
        for position, (parent, parent_grad) in enumerate(zip(ctx.inputs, input_grads)):
            if parent_grad is None or not parent.requires_grad:
                continue
            parent_grad = unbroadcast(parent_grad, parent.shape)
            if tuple(parent_grad.shape) != parent.shape or parent_grad.dtype != parent.dtype:
                raise RuntimeError(
                    f"{ctx.name}.backward: gradient of input {position} has shape "
                    f"{tuple(parent_grad.shape)} and dtype {parent_grad.dtype}, but the input "
                    f"has shape {parent.shape} and dtype {parent.dtype}"
                )
            previous = pending.get(id(parent))
            pending[id(parent)] = parent_grad if previous is None else previous + parent_grad
        if not retain_graph:
            ctx.release()
