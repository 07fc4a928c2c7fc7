"""Training and evaluation throughput of the grouped 4-source priors.

Training: the training loop's step (loss, backward, per-source gradient clipping, Adam) on batch × crop ×
4 sources (source-samples/s), at the published crop
(flow 16 384, WaveNet 3 075). Evaluation: log p without gradients at crop 4 000, in passes sized the way
the trial scores clips (study.trial.evaluate.auto_batch_size).

With ``reference`` (a checkout of the published implementation, :mod:`benchmarks.reference`), the toy sizes
also time its training step at the same batch and crop, alternating with ours repeat by repeat in this
process, and report the ratio. Without it there is no ratio: a figure measured on another day or machine is
never divided into one measured here.
"""
from __future__ import annotations

from typing import Callable

import torch

from models import build_prior
from study.config.schema import TrainingConfig
from study.runtime.cores import cores, map_batch
from study.trial.evaluate import auto_batch_size
from study.runtime.device import autocast, use_precision
from study.trial.train import clip_grad_per_source, loss_and_gradients, training_loss

from .common import median, seconds_per_call
from .reference import MODULES, published_train_step

TRAIN_CROP = {"flowavenet": 16384, "wavenet": 3075, "scorenet": 3075}
EVAL_CROP, SOURCES = 4000, 4
SIGMA = 0.1  # the level σ-conditional priors are told (a score prior has no σ = 0)


def alternating(first, second, device, repeats: int) -> tuple[list[float], list[float]]:
    """Seconds per call of two steps timed in turn, one call each per repeat, so that both see the same
    machine state (load, frequency, caches) as nearly as one process allows."""
    first(), second()  # warm-up (the flows' ActNorm initialises on its first batch)
    times = ([], [])
    for _ in range(repeats):
        times[0].extend(seconds_per_call(first, device, 1, warmup=0))
        times[1].extend(seconds_per_call(second, device, 1, warmup=0))
    return times


def training_step(prior, name: str, size: str, device, batch: int, precision: str,
                  loss_fn: Callable = training_loss) -> tuple[Callable[[], None], int]:
    """The training loop's own step (loss, backward, per-source clipping, Adam) on one fixed batch at the
    size's crop, and that crop. ``loss_fn`` stands in for study.trial.train.training_loss (e.g. a compiled one)."""
    crop = TRAIN_CROP[name.removesuffix("_nc")]
    crop = crop if size in ("toy", "musdb") else min(crop, 4096)
    crop -= crop % getattr(prior, "length_multiple", 1)
    x = (torch.rand(batch, SOURCES, crop, device=device) * 2 - 1) * 0.8
    told = torch.full((batch, SOURCES), SIGMA, device=device) if prior.noise_conditional else None
    config = TrainingConfig(batch_size=batch, crop=crop)
    optimizer = torch.optim.Adam(prior.parameters(), lr=1e-4)
    prior.train()

    def step() -> None:
        use_precision(precision)
        loss_and_gradients(prior, x, told, config, loss_fn=loss_fn)
        clip_grad_per_source(prior, config.grad_clip)
        optimizer.step()

    return step, crop


def evaluation_clips(prior, device) -> torch.Tensor:
    """Random clips of EVAL_CROP samples (trimmed to the prior's length multiple), as many as the trial scores
    in one round of passes (study.trial.evaluate.auto_batch_size clips each, a pass per CPU core, study.runtime.cores):
    [clips, SOURCES, length]."""
    length = EVAL_CROP - EVAL_CROP % getattr(prior, "length_multiple", 1)
    clips = auto_batch_size(length, device) * cores(device)
    return (torch.rand(clips, SOURCES, length, device=device) * 2 - 1) * 0.8


def bench_prior(name: str, size: str, device, repeats: int, batch: int = 2, reference=None,
                precision: str = "float32") -> dict:
    torch.manual_seed(0)
    prior = build_prior(name, preset=size, num_sources=SOURCES).to(device)
    train_step, crop = training_step(prior, name, size, device, batch, precision)

    compare = reference is not None and size == "toy" and name in MODULES and torch.device(device).type == "cpu"
    if compare:
        published = published_train_step(reference, name, batch, crop)
        train_times, published_times = alternating(train_step, published, device, repeats)
    else:
        train_times = seconds_per_call(train_step, device, repeats)
    prior.eval()
    xe = evaluation_clips(prior, device)

    @torch.inference_mode()
    def eval_step():
        with autocast(device, precision):
            map_batch(lambda clips: prior.log_prob(clips, SIGMA if prior.noise_conditional else None), xe)

    eval_times = seconds_per_call(eval_step, device, repeats, calls=2)
    train_rate = batch * crop * SOURCES / median(train_times)
    eval_rate = xe.numel() / median(eval_times)
    row = {"prior": name, "size": size, "precision": precision, "params_per_source": prior.num_parameters(per_source=True),
           "train_crop": crop, "batch": batch, "train_source_samples_per_s": round(train_rate),
           "eval_batch": len(xe), "eval_source_samples_per_s": round(eval_rate),
           "eval_over_train": round(eval_rate / train_rate, 2)}
    if compare:
        published_rate = batch * crop * SOURCES / median(published_times)
        row["published_train_source_samples_per_s"] = round(published_rate)
        row["train_over_published"] = round(train_rate / published_rate, 2)
    return row
