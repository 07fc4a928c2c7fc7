"""Which precision a run uses on its device, decided in one place (and, for a CPU, without importing torch).

``auto`` is bf16 only where the device does bf16 natively; an explicit ``bfloat16`` on a CPU without it falls
back to float32 with a warning (emulated bf16 runs 30-45x slower: ``benchmarks.run --only precision``).
"""
from __future__ import annotations

from dataclasses import dataclass

from study.runtime import machine

PRECISIONS = ("auto", "float32", "bfloat16")


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


def resolve_precision(requested: str, device, native_bf16: bool | None = None) -> Precision:
    """``auto``: bf16 where the device (a ``torch.device`` or its type, ``"cpu"``/``"cuda"``) does it natively
    (CUDA with bf16 support, a CPU with AVX512-BF16 or AMX), float32 elsewhere. ``bfloat16`` on a CPU without
    native bf16 falls back to float32 with a warning: emulated bf16 is never worth 30x the time.
    ``native_bf16`` overrides the detection (tests)."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {requested!r}")
    if requested == "float32":
        return Precision(requested, "float32", "as configured")
    if getattr(device, "type", device) == "cuda":
        if native_bf16 is None:
            import torch

            native_bf16 = torch.cuda.is_bf16_supported()
        native, where = native_bf16, "the CUDA device"
    else:
        native = machine.native_cpu_bf16() if native_bf16 is None else native_bf16
        where = f"the CPU ({machine.kernel_capability()})"
    if native:
        return Precision(requested, "bfloat16", f"{where} has native bf16")
    if requested == "bfloat16":
        return Precision(requested, "float32", f"precision 'bfloat16' falls back to float32: {where} has no native "
                                               "bf16 (AVX512-BF16 or AMX), and emulated bf16 runs 30-45x slower")
    return Precision(requested, "float32", f"{where} has no native bf16")
