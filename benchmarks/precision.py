"""bf16 autocast against float32 for one log p pass, alternating in one process (issue 29's table).

Where the CPU has no native bf16 (AVX512-BF16 or AMX), bf16 is emulated and many times slower; that is
why ``precision: auto`` resolves to float32 there (study.runtime.precision.resolve_precision). To see the emulated
case on a host that has native bf16, cap the kernels: ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2``.
"""
from __future__ import annotations

import torch

from models import build_prior
from study.runtime.precision import resolve_precision
from study.runtime.device import autocast

from .common import median, seconds_per_call

SOURCES, BATCH, CROP = 4, 2, 4096


def bench_precision(name: str, size: str, device, repeats: int) -> dict:
    torch.manual_seed(0)
    prior = build_prior(name, preset=size, num_sources=SOURCES).to(device).eval()
    crop = CROP - CROP % getattr(prior, "length_multiple", 1)
    x = (torch.rand(BATCH, SOURCES, crop, device=device) * 2 - 1) * 0.8
    sigma = 0.1 if prior.noise_conditional else None

    def pass_in(precision: str):
        @torch.inference_mode()
        def log_p():
            with autocast(device, precision):
                prior.log_prob(x, sigma)
        return log_p

    passes = {precision: pass_in(precision) for precision in ("float32", "bfloat16")}
    for log_p in passes.values():
        log_p()  # warm-up (a flow's ActNorm initialises on its first batch)
    times = {precision: [] for precision in passes}
    for _ in range(repeats):  # alternating, so both see the same machine state
        for precision, log_p in passes.items():
            times[precision].extend(seconds_per_call(log_p, device, 1, warmup=0))
    rate = {precision: x.numel() / median(t) for precision, t in times.items()}
    return {"prior": name, "size": size, "batch": BATCH, "crop": crop,
            "float32_source_samples_per_s": round(rate["float32"]),
            "bf16_source_samples_per_s": round(rate["bfloat16"]),
            "bf16_over_float32": round(rate["bfloat16"] / rate["float32"], 2),
            "auto_resolves_to": resolve_precision("auto", torch.device(device)).used}
