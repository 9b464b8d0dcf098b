"""Devices and the backend module that holds each device's arrays and kernels."""

import importlib

DEVICES = ("cpu", "cuda")


def normalize_device(device):
    """``"cpu"`` or ``"cuda"`` (``"cuda:0"`` counts as ``"cuda"``); anything else is an error."""
    name = str(device).split(":")[0]
    if name not in DEVICES:
        raise ValueError(f"unknown device {device!r}: expected one of {DEVICES}")
    return name


def backend_for(device):
    """The backend module (``minimask.cpu`` or ``minimask.cuda``) for ``device``."""
    name = normalize_device(device)
    if name == "cuda":
        try:
            cuda = importlib.import_module("minimask.cuda")
        except ModuleNotFoundError:
            raise RuntimeError("device 'cuda': this minimask has no cuda backend") from None
        if not cuda.is_available():
            raise RuntimeError(
                "device 'cuda' is not available: no CUDA GPU was found and "
                "NUMBA_ENABLE_CUDASIM=1 is not set"
            )
        return cuda
    return importlib.import_module("minimask.cpu")
