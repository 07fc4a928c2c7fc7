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


PRECISIONS = ("auto", "float32", "bfloat16")
_precision = "auto"  # this process's choice; a trial sets it from its config, as it sets the torch threads


def use_precision(precision: str) -> None:
    """Make ``precision`` what :func:`autocast` uses when it is not told one."""
    global _precision
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    _precision = precision


def autocast(device: torch.device, precision: str | None = None):
    """Mixed precision for a forward pass, decided here only.

    ``auto``: bf16 autocast on CUDA (TF32 matmuls too), float32 on CPU. ``bfloat16``: bf16 autocast on either;
    on a CPU with AVX512-BF16 or AMX it trains the toy priors about 1.6× faster (benchmarks.run --only
    priors). ``float32``: no autocast. Under autocast only the networks' convolutions run in bf16: every
    WaveNet stack hands its output back in the input's precision, so densities, coupling log-determinants
    and their sums stay in float32, and the flows stay exactly invertible (tests/models/test_bf16.py).
    """
    precision = precision or _precision
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    bf16 = precision == "bfloat16" or (precision == "auto" and device.type == "cuda")
    if device.type == "cuda" and bf16:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
