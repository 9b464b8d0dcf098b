"""Whether operations record a graph for backward: on by default, off inside ``no_grad()``."""

import contextlib

_enabled = True


def is_grad_enabled():
    """True when new operations record the graph that ``backward()`` walks."""
    return _enabled


class no_grad(contextlib.ContextDecorator):
    """Turn graph recording off inside a ``with`` block (or a decorated function).

    Results computed inside have ``requires_grad=False`` and no ``grad_fn``: nothing is
    kept for backward, which is what evaluation and optimizer updates want.
    """

    def __init__(self):
        # a stack: one object is entered again before it exits when a function decorated
        # with it calls itself (the decorator reuses the object for every call)
        self._previous = []

    def __enter__(self):
        global _enabled
        self._previous.append(_enabled)
        _enabled = False
        return self

    def __exit__(self, *exc_info):
        global _enabled
        _enabled = self._previous.pop()
        return False


class enable_grad(no_grad):
    """Turn graph recording back on inside a ``with`` block, even within ``no_grad()``."""

    def __enter__(self):
        global _enabled
        self._previous.append(_enabled)
        _enabled = True
        return self
