"""Device choice and mixed precision, decided in one place (models never choose a device)."""
from __future__ import annotations

import contextlib

import torch


def pick_device(preference: str = "auto") -> torch.device:
    """``auto``: CUDA when available, else CPU. ``cpu``/``cuda`` force a choice."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch.cuda.is_available() is False")
    return torch.device(preference)


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA (TF32 matmuls too); a no-op on CPU, where float32 keeps results exact."""
    if device.type == "cuda" and enabled:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
