"""Work split over the CPU cores (study.runtime.cores) against one multi-threaded pass, on and off in one run.

For each prior and precision, three things the trial does, timed alternately with the split on and off:
the training step (study.trial.train.loss_and_gradients, clipping, Adam), evaluation (log p of a round of
passes) and Langevin steps (8 toy mixtures). Ratios > 1 mean the split pays. Under bf16, Langevin is also
timed against float32 without the split, the two changes together. Nothing here is asserted.
"""
from __future__ import annotations

import torch

from models import build_prior
from study.runtime.cores import map_batch, use_cores
from study.runtime.device import autocast

from .common import median
from .langevin import LENGTH, MIXTURES, langevin_run
from .priors import SIGMA, SOURCES, alternating, evaluation_clips, training_step


def switched(fn, enabled: bool):
    def call():
        use_cores(enabled)
        try:
            fn()
        finally:
            use_cores(True)
    return call


def on_against_off(label: str, fn, device, repeats: int, samples: int) -> dict:
    on, off = alternating(switched(fn, True), switched(fn, False), device, repeats)
    return {f"{label}_on": round(samples / median(on)), f"{label}_off": round(samples / median(off)),
            f"{label}_ratio": round(median(off) / median(on), 2)}


def bench_cores(name: str, size: str, device, repeats: int, batch: int = 2, precision: str = "float32") -> dict:
    torch.manual_seed(0)
    prior = build_prior(name, preset=size, num_sources=SOURCES).to(device)
    row = {"prior": name, "size": size, "precision": precision, "threads": torch.get_num_threads()}
    train_step, crop = training_step(prior, name, size, device, batch, precision)
    row.update(on_against_off("train", train_step, device, repeats, batch * crop * SOURCES))

    prior.eval()
    clips = evaluation_clips(prior, device)
    told = SIGMA if prior.noise_conditional else None

    def evaluate():
        with torch.inference_mode(), autocast(device, precision):
            map_batch(lambda part: prior.log_prob(part, told), clips)

    row.update(on_against_off("eval", evaluate, device, repeats, clips.numel()))
    steps = 2
    langevin = langevin_run(prior, device, steps, precision)
    chain_samples = steps * MIXTURES * SOURCES * LENGTH
    row.update(on_against_off("langevin", langevin, device, max(1, repeats // 2), chain_samples))
    if precision != "float32":  # both changes together, against float32 in one pass (the state before either)
        before, after = alternating(switched(langevin_run(prior, device, steps, "float32"), False),
                                    switched(langevin, True), device, max(1, repeats // 2))
        row["langevin_over_float32_one_pass"] = round(median(before) / median(after), 2)
    row["units"] = "source-samples/s"
    return row
