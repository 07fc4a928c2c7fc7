"""Langevin separation speed: all mixtures × sources move in one batched score call per step.

Reports steps/s for 8 toy mixtures of 1 s (14 704 samples, a multiple of 16 for the flow) with the toy and
small priors, and the time of a full BASIS schedule (10 levels × 100 steps) extrapolated from it.
"""
from __future__ import annotations

import torch

from models import build_prior
from study.runtime.cores import map_batch
from study.data import ToyOscillators, mix
from study.trial.separate import LangevinSchedule, annealed_langevin
from study.config.schema import DataConfig, geometric_ladder
from study.runtime.device import autocast

from .common import median, seconds_per_call

LENGTH, MIXTURES, SOURCES = 14_704, 8, 4


def langevin_run(prior, device, steps: int, precision: str):
    """A call that runs ``steps`` Langevin steps over the MIXTURES toy mixtures, scored as the trial scores."""
    mixtures = mix(ToyOscillators(DataConfig(test_size=MIXTURES), "test", LENGTH).clips(range(MIXTURES))).to(device)
    schedule = LangevinSchedule(sigmas=[0.01], steps_per_level=steps, epsilon=1e-7, bound=1e9)
    alphas = torch.full((SOURCES,), 1 / SOURCES)
    generator = torch.Generator(device=device).manual_seed(0)

    def score(level: int, s: torch.Tensor) -> torch.Tensor:
        with autocast(device, precision):  # as the trial's separation scores (study.trial.run)
            return map_batch(lambda chains: prior.score(chains, schedule.sigmas[level] if prior.noise_conditional
                                                        else None), s)

    return lambda: annealed_langevin(score, mixtures, alphas, schedule, generator)


def bench_langevin(name: str, size: str, device, repeats: int, steps: int = 3, precision: str = "float32") -> dict:
    torch.manual_seed(0)
    prior = build_prior(name, preset=size, num_sources=SOURCES).to(device).eval()
    run = langevin_run(prior, device, steps, precision)
    per_step = median(seconds_per_call(run, device, repeats)) / steps
    full = len(geometric_ladder()) * 100
    return {"prior": name, "size": size, "precision": precision, "mixtures": MIXTURES, "length": LENGTH,
            "langevin_steps_per_s": round(1 / per_step, 3),
            "source_samples_per_s": round(MIXTURES * SOURCES * LENGTH / per_step),
            "basis_schedule_seconds": round(full * per_step, 1)}
