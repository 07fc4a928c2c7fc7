"""``torch.compile`` (inductor, C++ on CPU), timed on and off in one process, for the three calls that cost:
the training step (loss, backward, per-source clipping, Adam), log p without gradients (AUROC scoring) and
the score by autograd (Langevin).

Eager and compiled calls alternate repeat by repeat (:func:`benchmarks.priors.alternating`); the compile time
itself is reported apart. Not in the default sections: compiling a toy prior takes minutes on 2 cores.
"""
from __future__ import annotations

import time

import torch

from models import build_prior
from study.trial.train import training_loss

from .common import median
from .langevin import LENGTH
from .priors import SIGMA, SOURCES, alternating, evaluation_clips, training_step


def compiled_against_eager(label: str, eager, compiled, samples: int, device, repeats: int) -> dict:
    t0 = time.perf_counter()
    compiled()  # the first call compiles
    compile_seconds = time.perf_counter() - t0
    eager_times, compiled_times = alternating(eager, compiled, device, repeats)
    return {f"{label}_compile_seconds": round(compile_seconds, 1),
            f"{label}_eager_source_samples_per_s": round(samples / median(eager_times)),
            f"{label}_compiled_source_samples_per_s": round(samples / median(compiled_times)),
            f"{label}_compiled_over_eager": round(median(eager_times) / median(compiled_times), 2)}


def bench_compile(name: str, size: str, device, repeats: int, batch: int = 2, precision: str = "float32") -> dict:
    torch.manual_seed(0)
    prior = build_prior(name, preset=size, num_sources=SOURCES).to(device)
    sigma = SIGMA if prior.noise_conditional else None
    multiple = getattr(prior, "length_multiple", 1)
    row = {"prior": name, "size": size, "precision": precision}

    eager, crop = training_step(prior, name, size, device, batch, precision)
    compiled, _ = training_step(prior, name, size, device, batch, precision, loss_fn=torch.compile(training_loss))
    row.update(compiled_against_eager("train", eager, compiled, batch * crop * SOURCES, device, repeats))

    prior.eval()
    clips = evaluation_clips(prior, device)
    compiled_log_prob = torch.compile(prior.log_prob)

    def log_p(fn):
        @torch.no_grad()
        def call():
            fn(clips, sigma)
        return call

    row.update(compiled_against_eager("log_p", log_p(prior.log_prob), log_p(compiled_log_prob), clips.numel(),
                                      device, repeats))

    clip = (torch.rand(1, SOURCES, LENGTH - LENGTH % multiple, device=device) * 2 - 1) * 0.8

    def score(fn):  # Prior.score_pass, with log p eager or compiled
        def call():
            x = clip.clone().requires_grad_(True)
            torch.autograd.grad(fn(x, sigma).sum(), x)
        return call

    row.update(compiled_against_eager("score", score(prior.log_prob), score(compiled_log_prob), clip.numel(),
                                      device, repeats))
    return row
