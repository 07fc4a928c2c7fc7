"""Device choice and mixed precision, decided in one place (models never choose a device)."""
from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass

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


@functools.cache
def cpu_capability() -> str:
    """What torch's CPU kernels use, and whether the CPU does bf16 natively, e.g. ``AVX512+bf16`` or ``AVX2``.
    Logged beside every timing and on every trial: the same config runs 30x slower in bf16 without it."""
    return torch.backends.cpu.get_cpu_capability() + ("+bf16" if native_cpu_bf16() else "")


@functools.cache
def native_cpu_bf16() -> bool:
    """AVX512-BF16 or AMX, as torch reports them. Without either, bf16 autocast on the CPU is emulated and
    many times slower than float32 (README, "Precision and the CPU")."""
    if torch.backends.cpu.get_cpu_capability() in ("DEFAULT", "AVX2"):  # kernels capped (ATEN_CPU_CAPABILITY)
        return False
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


@dataclass(frozen=True)
class Precision:
    """What a run asked for, what it uses on this device, and why (``why`` is a warning when they differ)."""

    requested: str
    used: str  # "float32" or "bfloat16"
    why: str

    @property
    def warning(self) -> bool:
        return self.requested == "bfloat16" and self.used != "bfloat16"

    def describe(self) -> str:
        """One console line, e.g. ``precision bfloat16 (auto: the CPU (AVX512) has native bf16)``."""
        return f"warning: {self.why}" if self.warning else f"precision {self.used} ({self.requested}: {self.why})"


def resolve_precision(requested: str, device: torch.device, native_bf16: bool | None = None) -> Precision:
    """``auto``: bf16 where the device does it natively (CUDA with bf16 support, a CPU with AVX512-BF16 or
    AMX), float32 elsewhere. ``bfloat16`` on a CPU without native bf16 falls back to float32 with a warning:
    emulated bf16 is never worth 30x the time. ``native_bf16`` overrides the detection (tests)."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {requested!r}")
    if requested == "float32":
        return Precision(requested, "float32", "as configured")
    if device.type == "cuda":
        native = torch.cuda.is_bf16_supported() if native_bf16 is None else native_bf16
        where = "the CUDA device"
    else:
        native = native_cpu_bf16() if native_bf16 is None else native_bf16
        where = f"the CPU ({torch.backends.cpu.get_cpu_capability()})"
    if native:
        return Precision(requested, "bfloat16", f"{where} has native bf16")
    if requested == "bfloat16":
        return Precision(requested, "float32", f"precision 'bfloat16' falls back to float32: {where} has no native "
                                               "bf16 (AVX512-BF16 or AMX), and emulated bf16 runs 30-45x slower")
    return Precision(requested, "float32", f"{where} has no native bf16")


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
