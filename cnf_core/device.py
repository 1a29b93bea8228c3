"""Where a computation runs: the CPU, or a CUDA GPU when there is one."""

from __future__ import annotations

import torch

from .errors import ConfigError

__all__ = ["pick_device"]


def pick_device(name: str = "auto") -> torch.device:
    """'auto' → CUDA when present, else CPU; 'cpu' or 'cuda' to choose."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("device: CUDA was asked for but no GPU is available; use 'cpu' or 'auto'")
        return torch.device(name)
    raise ConfigError(f"device: expected 'auto', 'cpu' or 'cuda', got {name!r}")
