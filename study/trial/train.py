"""One training loop for every prior: all K source priors train together in one grouped pass.

    python -m study.train --prior wavenet --preset tiny --steps 300 --crop 1024 --out runs/wavenet.pt

The loss is Σ_k mean_batch NLL_k (nats per sample), so each source's gradient equals what training that
prior alone would give; gradient clipping is applied per source for the same reason. Batches and noise are
drawn from generators seeded by (seed, step), so a run resumed from a checkpoint continues exactly as if it
had never stopped, and the same seed gives the same weights on CPU.
"""
from __future__ import annotations

import argparse
import io
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from models import PRIOR_NAMES, Prior, build_prior, prior_checkpoint
from study.config.schema import DataConfig, NoiseConfig, PriorConfig, TrainingConfig, TrialConfig
from study.config.reading import ConfigError, bounded, validate
from study.runtime.cores import batch_parts, on_cores
from study.data import DataError, build_clips
from study.trial.evaluate import cross_log_likelihood, log_likelihoods
from study.measure.metrics import cross_likelihood
from study.runtime.device import autocast, pick_device
from study.trial.stages import TrainingLevels, levels_up_to, plan_stages
from study.store.stage_store import write_local


class TrainingError(RuntimeError):
    """Training cannot continue (a non-finite loss); the message says at which step and for which source."""


@dataclass
class TrainingResult:
    step: int
    wall_seconds: float
    source_samples_per_second: float  # batch × crop × sources per second; 0 when nothing was left to train


def step_generator(seed: int, step: int, stream: int) -> torch.Generator:
    """A generator that depends only on (seed, step, stream): resumption needs no RNG state."""
    return torch.Generator().manual_seed(hash((seed, step, stream)) & 0x7FFF_FFFF_FFFF_FFFF)


def add_training_noise(x: torch.Tensor, sigma: float, noise: NoiseConfig, generator: torch.Generator) -> torch.Tensor:
    """x + σ·ε (fixed) or x + σ·u·ε with u ~ U(0, 1) per crop (uniform); optionally clipped to [-1, 1]."""
    if sigma == 0:
        return x
    eps = torch.randn(x.shape, generator=generator)
    scale = sigma if noise.mode == "fixed" else sigma * torch.rand(*x.shape[:2], 1, generator=generator)
    noisy = x + scale * eps
    return noisy.clamp(-1, 1) if noise.clip else noisy


def draw_sigmas(sigma: float, noise: NoiseConfig, ladder, shape, generator: torch.Generator) -> torch.Tensor:
    """Per clip and source noise levels ≤ σ for a noise-conditional prior: [B, K] (zeros when σ = 0)."""
    if sigma == 0:
        return torch.zeros(shape)
    levels = levels_up_to(ladder, sigma) or [sigma]
    if noise.levels == "ladder":
        return torch.tensor(levels)[torch.randint(len(levels), shape, generator=generator)]
    low, high = math.log(levels[0]), math.log(sigma)
    if noise.levels == "lognormal":
        return torch.exp((noise.log_mean + noise.log_std * torch.randn(shape, generator=generator)).clamp(low, high))
    return torch.exp(low + (high - low) * torch.rand(shape, generator=generator))


def add_conditional_noise(x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseConfig,
                          generator: torch.Generator) -> torch.Tensor:
    noisy = x + sigmas.unsqueeze(-1) * torch.randn(x.shape, generator=generator)
    return noisy.clamp(-1, 1) if noise.clip else noisy


def training_loss(prior: Prior, x: torch.Tensor, sigma, cfg: TrainingConfig,
                  clean: torch.Tensor | None = None, mean_sigma_sq: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, per-source objective per sample [K]: NLL in nats, or a score prior's denoising loss).

    Maximum likelihood: Σ_k mean_b NLL_k (σ-weighted for noise-conditional priors when asked); a score prior
    minimises denoising score matching of ``x`` against ``clean`` instead. With
    ``hybrid_lambda`` λ > 0, add λ·Σ_k CE_k, the cross-entropy of classifying source k's clip by which
    prior explains it best (the K priors' per-sample log-likelihoods as logits). ``mean_sigma_sq``: the
    σ-weighting's normaliser, the mean σ² of the whole batch when ``x`` is one part of it.
    """
    if cfg.hybrid_lambda > 0:
        loglik = cross_log_likelihood(prior, x, sigma).float()
        objective = -loglik.diagonal(dim1=1, dim2=2)
    else:
        loglik, objective = None, prior.objective_per_sample(x, sigma, x if clean is None else clean).float()
    weights = torch.ones_like(objective)
    mean_sigma_sq = sigma.pow(2).mean() if mean_sigma_sq is None and sigma is not None else mean_sigma_sq
    if sigma is not None and cfg.noise.weighting == "sigma_squared" and mean_sigma_sq > 0:
        weights = (sigma.pow(2) / mean_sigma_sq).to(objective)
    per_source = objective.mean(0)
    loss = (weights * objective).mean(0).sum()
    if loglik is not None:
        targets = torch.arange(x.shape[1], device=x.device).expand(x.shape[0], -1)  # clip j is source j
        loss = loss + cfg.hybrid_lambda * F.cross_entropy(loglik, targets, reduction="none").mean(0).sum()
    return loss, per_source


def loss_and_gradients(prior: Prior, x: torch.Tensor, sigma, cfg: TrainingConfig,
                       clean: torch.Tensor | None = None, loss_fn: Callable = training_loss
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """The step's (loss, per-source objective) as :func:`training_loss` gives them, with the gradients left
    in the parameters' ``.grad`` (replacing what was there).

    On a CPU the batch is cut into one part per core and each part's gradient computed on its own core
    (:mod:`study.runtime.cores`). The loss is a mean over the batch,
    so the parts' losses and gradients, weighted by their share of it, sum to the whole batch's. The first
    step of a prior with data-dependent initialisation (ActNorm) sees the whole batch in one piece.
    ``loss_fn`` stands in for :func:`training_loss` (e.g. a compiled one).
    """
    parts = batch_parts(len(x), x.device) if prior.initialized() else [slice(None)]
    mean_sigma_sq = None if sigma is None else sigma.pow(2).mean()
    params = [p for p in prior.parameters() if p.requires_grad]

    def part(rows: slice):
        share = (rows.stop - rows.start) / len(x) if rows != slice(None) else 1.0
        with autocast(x.device):
            loss, per_source = loss_fn(prior, x[rows], None if sigma is None else sigma[rows], cfg,
                                       None if clean is None else clean[rows], mean_sigma_sq)
        grads = torch.autograd.grad(loss * share, params, allow_unused=True)
        return loss.detach() * share, per_source.detach() * share, grads

    results = on_cores(part, parts, x.device)
    for i, p in enumerate(params):
        grads = [g[i] for _, _, g in results if g[i] is not None]
        p.grad = None if not grads else grads[0] if len(grads) == 1 else torch.stack(grads).sum(0)
    return sum(r[0] for r in results), sum(r[1] for r in results)


def clip_grad_per_source(prior: Prior, max_norm: float) -> torch.Tensor:
    """Clip each source's gradient norm separately (grouped params keep the source axis first). -> norms [K]."""
    k = prior.num_sources
    grads = [p.grad.view(k, -1) for p in prior.parameters() if p.grad is not None]
    norms = torch.stack([g.pow(2).sum(1) for g in grads]).sum(0).sqrt()
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0).unsqueeze(1)
    for g in grads:
        g.mul_(scale)
    return norms


def make_optimizer(prior: Prior, cfg: TrainingConfig):
    optimizer = torch.optim.Adam(prior.parameters(), lr=cfg.lr)
    horizon = cfg.lr_horizon or cfg.steps  # with lr_horizon, every length follows one curve (a prefix of it)
    milestones = sorted({max(1, int(m * horizon)) for m in cfg.milestones})
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=cfg.lr_decay)
    return optimizer, scheduler


def save_checkpoint(path: Path, prior: Prior, optimizer, scheduler, step: int, cfg: TrainingConfig,
                    sigma: float) -> None:
    record = {"prior": prior_checkpoint(prior), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
              "step": step, "training": cfg.model_dump(mode="json"), "sigma": sigma}
    buffer = io.BytesIO()
    torch.save(record, buffer)
    write_local(path, buffer.getvalue())  # never leave a half-written checkpoint behind


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def train(prior: Prior, data, cfg: TrainingConfig, levels: TrainingLevels = TrainingLevels(), *,
          checkpoint: Path | None = None, device: torch.device | None = None, log: Callable[[str], None] = print,
          on_checkpoint: Callable[[Path], None] | None = None) -> TrainingResult:
    """Train ``prior`` (all sources at once) on crops from ``data`` (a clip source of matching K), with
    training noise up to ``levels.train_sigma`` added as ``cfg.noise`` says; a σ-conditional prior draws its
    levels from ``levels.ladder``. Stage planning decides both (:attr:`study.trial.stages.Stage.levels`).

    Resumes from ``checkpoint`` when it exists (model, optimiser, schedule and step); saves to it every
    ``cfg.checkpoint_every`` steps and at the end, then calls ``on_checkpoint(path)`` (e.g. to upload it).
    Raises :class:`TrainingError` on a non-finite loss.
    """
    if prior.noise_conditional and not levels.ladder:
        raise ValueError(f"{prior.name} is σ-conditional: train it over a ladder of noise levels (study.trial.stages)")
    device = device or pick_device()
    prior.to(device).train()
    optimizer, scheduler = make_optimizer(prior, cfg)
    start = resume(checkpoint, prior, optimizer, scheduler, log)
    names = data.sources
    t0 = window_t = time.perf_counter()
    window_steps = 0
    for step in range(start, cfg.steps):
        x, level, target = noised_batch(prior, data, cfg, levels, step, device)
        loss, objective = loss_and_gradients(prior, x, level, cfg, target)  # per source: NLL or denoising loss
        if not torch.isfinite(loss):
            bad = [names[k] for k in range(len(names)) if not torch.isfinite(objective[k])]
            raise TrainingError(f"non-finite training loss at step {step} for source(s) {bad}: "
                                f"{dict(zip(names, objective.tolist()))}")
        if cfg.grad_clip is not None:
            clip_grad_per_source(prior, cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        window_steps += 1
        done = step + 1
        if checkpoint is not None and (done % cfg.checkpoint_every == 0 or done == cfg.steps):
            save_checkpoint(Path(checkpoint), prior, optimizer, scheduler, done, cfg, levels.train_sigma)
            if on_checkpoint is not None:
                on_checkpoint(Path(checkpoint))
        if done % cfg.log_every == 0 or done == cfg.steps:
            now = time.perf_counter()
            rate = window_steps * cfg.batch_size * cfg.crop * len(names) / (now - window_t)
            log(progress_line(prior, names, done, cfg.steps, objective, rate))
            window_t, window_steps = now, 0
    wall = time.perf_counter() - t0
    trained = max(cfg.steps - start, 0)
    per_step = cfg.batch_size * cfg.crop * len(names)
    return TrainingResult(cfg.steps, wall, trained * per_step / max(wall, 1e-9))


def resume(checkpoint: Path | None, prior: Prior, optimizer, scheduler, log) -> int:
    """Load model, optimiser and schedule from ``checkpoint`` when it exists; the step to continue from."""
    if checkpoint is None or not Path(checkpoint).is_file():
        return 0
    record = load_checkpoint(checkpoint)
    prior.load_state_dict(record["prior"]["state_dict"])
    optimizer.load_state_dict(record["optimizer"])
    scheduler.load_state_dict(record["scheduler"])
    log(f"resumed from {checkpoint} at step {record['step']}")
    return record["step"]


def noised_batch(prior: Prior, data, cfg: TrainingConfig, levels: TrainingLevels, step: int, device):
    """Step ``step``'s batch with its training noise, on ``device``: (x, σ level or None, clean target of a
    score prior or None). Crops and noise depend only on (seed, step), so a resumed run draws the same."""
    clean = data.training_batch(step_generator(cfg.seed, step, 0), cfg.batch_size)
    noise_rng = step_generator(cfg.seed, step, 1)
    if prior.noise_conditional:
        level = draw_sigmas(levels.train_sigma, cfg.noise, levels.ladder, clean.shape[:2], noise_rng)
        x = add_conditional_noise(clean, level, cfg.noise, noise_rng)
        level = level.to(device)
    else:
        level, x = None, add_training_noise(clean, levels.train_sigma, cfg.noise, noise_rng)
    target = clean.to(device, non_blocking=True) if prior.trained_by == "denoising" else None
    return x.to(device, non_blocking=True), level, target


def progress_line(prior: Prior, names, done: int, steps: int, objective: torch.Tensor, rate: float) -> str:
    per_source = "  ".join(f"{n} {v:7.4f}" for n, v in zip(names, objective.detach().tolist()))
    what = ("NLL per sample (nats; negative is normal for a density)" if prior.trained_by == "likelihood"
            else "denoising loss ‖σ·score + ε‖² per sample")
    return f"step {done:>7}/{steps}  {what}: {per_source}  |  {rate:,.0f} source-samples/s"


def held_out_bits(prior: Prior, clips: torch.Tensor, device=None) -> torch.Tensor:
    """Mean bits per sample of every prior (rows) on every source's clean held-out clips (columns): [K, K]."""
    device = device or next(prior.parameters()).device
    return -cross_likelihood(log_likelihoods(prior, clips, None, device, 0.0)) / math.log(2)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m study.train",
                                     description="Train the per-source priors of one architecture on one data set.")
    # every default is the trial configuration's own (study.config.schema): one home for each
    data, prior, training = DataConfig(), PriorConfig(), TrainingConfig()
    parser.add_argument("--prior", default=prior.name, choices=sorted(PRIOR_NAMES))
    parser.add_argument("--preset", default=prior.preset)
    parser.add_argument("--data", default=data.kind, choices=["toy", "stems"])
    parser.add_argument("--root", type=Path, help="stems root (for --data stems)")
    parser.add_argument("--steps", type=int, default=training.steps)
    parser.add_argument("--batch-size", type=int, default=training.batch_size)
    parser.add_argument("--crop", type=int, default=training.crop)
    parser.add_argument("--lr", type=float, default=training.lr)
    parser.add_argument("--sigma", type=float, default=0.0, help="training noise level")
    parser.add_argument("--noise-mode", default=training.noise.mode, choices=["fixed", "uniform"])
    parser.add_argument("--clip", action="store_true", help="clip noisy clips to [-1, 1]")
    parser.add_argument("--seed", type=int, default=training.seed)
    parser.add_argument("--eval-clips", type=int, default=64, help="held-out clips per source for bits/sample")
    parser.add_argument("--out", type=Path, default=Path("runs/train/checkpoint.pt"))
    args = parser.parse_args(argv)

    try:
        data_cfg = validate(DataConfig, {"kind": args.data, "root": args.root, "seed": args.seed})
        prior_cfg = validate(PriorConfig, {"name": args.prior, "preset": args.preset})
        cfg = validate(TrainingConfig, {"steps": args.steps, "batch_size": args.batch_size, "crop": args.crop,
                                        "lr": args.lr, "seed": args.seed, "log_every": max(1, args.steps // 10),
                                        "noise": {"mode": args.noise_mode, "clip": args.clip}})
        # one scratch stage at --sigma: stage planning decides the ladder and floor of σ-conditional priors
        stage = plan_stages(validate(TrialConfig, {"data": data_cfg.model_dump(), "prior": prior_cfg.model_dump(),
                                                   "training": cfg.model_dump(),
                                                   "schedule": {"kind": "scratch", "sigma": args.sigma}}))[0]
        train_clips = build_clips(data_cfg, "train", cfg.crop)
    except (ConfigError, DataError) as error:  # the user's to fix: one line, no traceback
        print(f"error: {bounded(str(error))}", file=sys.stderr)
        return 2
    torch.manual_seed(args.seed)
    prior = build_prior(prior_cfg.name, prior_cfg.preset, num_sources=len(train_clips.sources), **prior_cfg.hparams)
    print(f"{prior.name} ({prior_cfg.preset}): {prior.num_parameters(per_source=True):,} parameters per source, "
          f"{len(train_clips.sources)} sources {train_clips.sources}")
    result = train(prior, train_clips, cfg, stage.levels, checkpoint=args.out)
    print(f"trained {result.step} steps in {result.wall_seconds:.1f} s ({result.source_samples_per_second:,.0f} source-samples/s)")
    test = build_clips(data_cfg, "test", cfg.crop)
    bits = held_out_bits(prior, test.clips(range(min(args.eval_clips, len(test)))))
    names = train_clips.sources
    print("held-out bits per sample (rows: prior, columns: clips of source)")
    print(" " * 10 + "".join(f"{n:>10}" for n in names))
    for i, n in enumerate(names):
        print(f"{n:>10}" + "".join(f"{bits[i, j]:10.3f}" for j in range(len(names))))
    print(f"checkpoint: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
