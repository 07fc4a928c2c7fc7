"""Timing helpers shared by the benchmarks: medians of repeats, device sync, a machine description."""
from __future__ import annotations

import os
import platform
import statistics
import time

import torch

from study.runtime.machine import cpu_capability
from study.runtime.device import pick_device


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def seconds_per_call(fn, device, repeats: int, calls: int = 1, warmup: int = 1) -> list[float]:
    """Seconds per call of ``fn``, one figure per repeat (report the median)."""
    for _ in range(warmup):
        fn()
    sync(device)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        sync(device)
        out.append((time.perf_counter() - t0) / calls)
    return out


def median(values) -> float:
    return statistics.median(values)


def machine() -> str:
    device = pick_device()
    gpu = torch.cuda.get_device_name(0) if device.type == "cuda" else "no GPU"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (f"{cpu} (torch CPU capability {cpu_capability()}), {torch.get_num_threads()} torch threads, {gpu}, "
            f"torch {torch.__version__}, load average {load}")


def table(rows: list[dict]) -> str:
    if not rows:
        return ""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    fmt = lambda v: f"{v:,}" if isinstance(v, int) else str(v)  # noqa: E731
    return "\n".join(["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
                     + ["| " + " | ".join(fmt(row.get(k, "")) for k in keys) + " |" for row in rows])
