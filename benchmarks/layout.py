"""Channels-first against channels-last WaveNet stacks (models.layers.set_layout), timed in turn in one run.

Two calls per prior: log p without gradients (the trial's AUROC scoring, EVAL_CROP clips in the trial's
passes) and the score Langevin takes (autograd through the input for the likelihood priors, one forward
pass for the score network), on one 14 704-sample clip per pass. ``auto`` uses channels-last only where
these figures say it pays.
"""
from __future__ import annotations

import torch

from models import build_prior
from models.layers import set_layout
from study.evaluate import auto_batch_size
from study.runtime import autocast

from .common import median
from .langevin import LENGTH
from .priors import EVAL_CROP, SIGMA, SOURCES, alternating


def in_layout(layout: str, fn):
    def call():
        set_layout(layout)
        try:
            fn()
        finally:
            set_layout("auto")
    return call


def bench_layout(name: str, size: str, device, repeats: int, precision: str = "float32") -> dict:
    torch.manual_seed(0)
    prior = build_prior(name, preset=size, num_sources=SOURCES).to(device).eval()
    sigma = SIGMA if prior.noise_conditional else None
    multiple = getattr(prior, "length_multiple", 1)
    length = EVAL_CROP - EVAL_CROP % multiple
    clips = (torch.rand(auto_batch_size(length, device), SOURCES, length, device=device) * 2 - 1) * 0.8
    mixture_clip = (torch.rand(1, SOURCES, LENGTH - LENGTH % multiple, device=device) * 2 - 1) * 0.8

    @torch.inference_mode()
    def log_p():
        with autocast(device, precision):
            prior.log_prob(clips, sigma)

    @torch.no_grad()  # as study.separate runs it; the likelihood priors turn autograd back on inside
    def score():
        with autocast(device, precision):
            prior.score(mixture_clip, sigma)

    row = {"prior": name, "size": size, "precision": precision}
    for label, fn, samples in (("log_p", log_p, clips.numel()), ("score", score, mixture_clip.numel())):
        first, last = alternating(in_layout("channels_first", fn), in_layout("channels_last", fn), device, repeats)
        rate_first, rate_last = samples / median(first), samples / median(last)
        row.update({f"{label}_channels_first": round(rate_first), f"{label}_channels_last": round(rate_last),
                    f"{label}_last_over_first": round(rate_last / rate_first, 2)})
    return row
