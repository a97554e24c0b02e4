"""Which device a command or call computes on: ``auto`` (None) picks CUDA when there is one, else the CPU; a
device asked for by name is checked to be here, so a missing GPU is one clear error rather than a driver's."""

from __future__ import annotations

import torch

from difair.errors import DifairError

__all__ = ["pick_device"]


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as given, checked to be here; None or ``"auto"``: CUDA when available, else the CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise DifairError(f"unknown device {device!r}: use cpu, cuda, cuda:N, mps or auto") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DifairError(f"device {dev} is not here (PyTorch sees no CUDA device): use cpu, or auto")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise DifairError(
            f"device {dev} is not here (PyTorch sees {torch.cuda.device_count()} CUDA devices): use cuda:0 .. "
            f"cuda:{torch.cuda.device_count() - 1}, or auto"
        )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise DifairError(f"device {dev} is not here (PyTorch sees no MPS device): use cpu, or auto")
    return dev
