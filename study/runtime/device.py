"""Device choice and mixed precision in a forward pass (models never choose a device; which precision a
device gets is :mod:`study.runtime.precision`'s decision)."""
from __future__ import annotations

import contextlib

import torch

from study.runtime.precision import PRECISIONS, resolve_precision


def pick_device(preference: str = "auto") -> torch.device:
    """``auto``: CUDA when available, else CPU. ``cpu``/``cuda`` force a choice."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch.cuda.is_available() is False")
    return torch.device(preference)


_precision = "auto"  # this process's choice; a trial sets it from its config, as it sets the torch threads


def use_precision(precision: str) -> None:
    """Make ``precision`` what :func:`autocast` uses when it is not told one (a trial passes what
    :func:`resolve_precision` chose; benchmarks pass ``bfloat16`` to measure it wherever they run)."""
    global _precision
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    _precision = precision


def autocast(device: torch.device, precision: str | None = None):
    """Mixed precision for a forward pass, decided here only.

    ``precision`` defaults to this process's (:func:`use_precision`); ``auto`` is resolved for ``device``
    (:func:`resolve_precision`), while an explicit ``bfloat16`` is honoured as told (tests and benchmarks
    measure it on purpose). Under autocast only the networks' convolutions run in bf16: every WaveNet stack
    hands its output back in the input's precision, so densities, coupling log-determinants and their sums
    stay in float32, and the flows stay exactly invertible (tests/models/test_bf16.py).
    """
    precision = precision or _precision
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        precision = resolve_precision(precision, device).used
    bf16 = precision == "bfloat16"
    if device.type == "cuda" and bf16:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
