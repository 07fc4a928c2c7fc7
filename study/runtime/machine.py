"""What this machine has: cores, GPUs and the CPU's vector capability, read without importing torch.

The CPU's capability is read the way torch's kernels choose theirs (CPUID flags, capped by
``ATEN_CPU_CAPABILITY``), from ``/proc/cpuinfo``, so that ``--dry-run`` can say what a trial will use in well
under a second; where that file has no x86 flags, torch is asked. GPUs are counted the way Ray counts them
when it starts: ``CUDA_VISIBLE_DEVICES`` if set, else the NVIDIA driver's devices.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

CAPABILITIES = ("DEFAULT", "AVX2", "AVX512")  # torch's x86 kernel levels, lowest first
NEEDS = {"AVX512": {"avx512vl", "avx512bw", "avx512dq", "fma"}, "AVX2": {"avx2", "fma"}}  # as torch checks them
NVIDIA_DEVICES = Path("/proc/driver/nvidia/gpus")


def this_machine() -> dict[str, float]:
    """``{"CPU": cores, "GPU": devices}`` of this machine, in Ray's resource names."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        gpus = len([device for device in visible.split(",") if device.strip() and device.strip() != "-1"])
    else:
        gpus = len(list(NVIDIA_DEVICES.iterdir())) if NVIDIA_DEVICES.is_dir() else 0
    return {"CPU": os.cpu_count() or 1, "GPU": gpus}


def x86_flags() -> set[str] | None:
    """The CPU's feature flags as Linux reports them; None where there are none to read (not Linux, not x86)."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return None


@functools.cache
def kernel_capability() -> str:
    """What torch's CPU kernels use here: ``AVX512``, ``AVX2`` or ``DEFAULT`` (or torch's own answer off x86)."""
    flags = x86_flags()
    if flags is None:
        import torch

        return torch.backends.cpu.get_cpu_capability()
    best = next((level for level in ("AVX512", "AVX2") if NEEDS[level] <= flags), "DEFAULT")
    cap = os.environ.get("ATEN_CPU_CAPABILITY", "").upper()
    return min(best, cap, key=CAPABILITIES.index) if cap in CAPABILITIES else best


@functools.cache
def native_cpu_bf16() -> bool:
    """AVX512-BF16 or AMX under AVX512 kernels. Without them bf16 autocast on the CPU is emulated and many
    times slower than float32 (README, "Precision and the CPU")."""
    if kernel_capability() in ("DEFAULT", "AVX2"):  # kernels capped (ATEN_CPU_CAPABILITY) or no AVX512
        return False
    flags = x86_flags()
    if flags is None:
        import torch

        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    return bool({"avx512_bf16", "amx_tile"} & flags)


@functools.cache
def cpu_capability() -> str:
    """What torch's CPU kernels use, and whether the CPU does bf16 natively, e.g. ``AVX512+bf16`` or ``AVX2``.
    Logged beside every timing and on every trial: the same config runs 30x slower in bf16 without it."""
    return kernel_capability() + ("+bf16" if native_cpu_bf16() else "")
