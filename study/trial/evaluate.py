"""Score held-out clips under every prior and turn the scores into discrimination and smoothness metrics."""
from __future__ import annotations

import torch

from models import Prior
from models.conditioning import as_sigma
from study.config.schema import EvaluationConfig
from study.runtime.cores import map_batch, on_cores
from study.measure.names import SMOOTHNESS, level_name
from study.measure.metrics import (bits_per_sample, cross_likelihood, discrimination_metrics, in_class, logp_drop,
                           per_source_auroc, si_sdr)
from study.measure.ood import likelihood_ratio
from study.runtime.device import autocast


class EvaluationError(RuntimeError):
    """The priors produced non-finite log-likelihoods; the message says where."""


SAMPLES_PER_PASS = 8192


def auto_batch_size(length: int, device) -> int:
    """Clips per pass: ≈8 192 samples per source on CPU (cache-sized), 64 clips on a GPU."""
    return 64 if torch.device(device).type == "cuda" else max(1, SAMPLES_PER_PASS // length)


def cross_log_likelihood(prior: Prior, x: torch.Tensor, sigma=None) -> torch.Tensor:
    """Per-sample log p of every prior on every source's clip: [B, K, T] -> [B, K_prior, K_source].

    Source j's clips are broadcast to all K grouped priors, so one pass scores them under every prior.
    ``sigma`` (a number or [B, K], the σ of each clip) is what a noise-conditional prior is told.
    """
    k = x.shape[1]
    sigma = None if sigma is None else as_sigma(sigma, x)
    columns = []
    for j in range(k):
        level = None if sigma is None else sigma[:, j:j + 1].expand(-1, k)
        columns.append(prior.log_prob_per_sample(x[:, j:j + 1].expand(-1, k, -1), level))
    return torch.stack(columns, dim=2)


@torch.inference_mode()
def log_likelihoods(prior: Prior, clips: torch.Tensor, batch_size: int | None, device, sigma=None) -> torch.Tensor:
    """Per-sample log p of every prior on every clip of every source.

    clips: [N, K, T] (clip n of source j is ``clips[n, j]``) -> [N, K_prior, K_source], in passes of
    ``batch_size`` clips. ``sigma``: the noise level a noise-conditional prior is told (others ignore it).
    """
    prior.eval()
    n, k, t = clips.shape
    batch_size = batch_size or auto_batch_size(t, device)
    out = torch.empty(n, k, k)
    starts = range(0, n, batch_size)

    def one_pass(start: int) -> torch.Tensor:
        with autocast(device):
            return cross_log_likelihood(prior, clips[start:start + batch_size].to(device), sigma).float().cpu()

    for start, loglik in zip(starts, on_cores(one_pass, starts, device)):  # the passes side by side on CPU cores
        out[start:start + batch_size] = loglik
    return out


def single_prior_log_likelihood(prior: Prior, clips: torch.Tensor, batch_size: int | None, device) -> torch.Tensor:
    """Per-sample log p of a one-source prior on every clip of every source (clean, σ = 0): [N, K, T] -> [N, K]."""
    n, k, t = clips.shape
    return log_likelihoods(prior, clips.reshape(n * k, 1, t), batch_size, device, 0.0).view(n, k)


def noisy(clips: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    """clips + N(0, σ²), with noise fixed by (seed, σ) so every prior sees the same noisy clips."""
    g = torch.Generator().manual_seed(seed + int(round(sigma * 1e6)))
    return clips + sigma * torch.randn(clips.shape, generator=g)


def check_finite(loglik: torch.Tensor, sources, what: str) -> None:
    bad = ~torch.isfinite(loglik)
    if bad.any():
        priors = [sources[k] for k in bad.any(0).any(1).nonzero().flatten().tolist()]
        raise EvaluationError(f"non-finite log-likelihoods from prior(s) {priors} on {what} "
                              f"({int(bad.sum())} of {bad.numel()} scores)")


def evaluate_prior(prior: Prior, clips: torch.Tensor, sources, evaluation: EvaluationConfig, device, *,
                   reference_logp: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None),
                   matched_levels=(), progress=None) -> tuple[dict[str, float], dict]:
    """Metrics (the README's metrics table) plus the tables behind the plots, with ``evaluation``'s noise
    levels, pass size and noise seed.

    ``reference_logp``: (flac_logp, background_logp), either None.
    ``flac_logp``: log p_FLAC per sample of the clean clips, [N, K] (study.measure.ood.flac_log_density); when
    given, ``auroc_complexity`` ranks clips by log p_k − log p_FLAC instead of raw log p_k.
    ``background_logp``: log p per sample of the clean clips under a background prior, [N, K]; when given,
    ``auroc_ratio`` ranks clips by log p_k − log p_background.
    A noise-conditional prior is told the true σ everywhere (clean clips: σ = 0; ``auroc@σ``: matched)
    and also reports ``auroc_matched`` / ``auroc_matched_min``: the mean and minimum of matched AUROC
    over ``matched_levels`` (the ladder levels it was trained on).

    Returns (metrics, tables) with tables["cross_likelihood"]: [K, K] mean log p (rows prior, columns
    source) and tables["noise_curve"]: list of (σ, in-class [K], out-of-class [K]) mean log p per prior.
    ``progress(done, total, what)`` is told after each pass over the clips.
    """
    conditional, batch_size, seed = prior.noise_conditional, evaluation.batch_size, evaluation.seed
    passes = 1 + len(evaluation.noise_levels) + (len(matched_levels) if prior.trained_by == "denoising" else 0)
    done = iter(range(1, passes + 1))
    tell = progress or (lambda *_: None)
    clean = log_likelihoods(prior, clips, batch_size, device, 0.0 if conditional else None)
    tell(next(done), passes, "log p of the clean clips")
    check_finite(clean, sources, "clean clips")
    metrics = {**discrimination_metrics(clean, sources), **bits_per_sample(clean, sources)}
    flac_logp, background_logp = reference_logp
    if flac_logp is not None:
        metrics.update(discrimination_metrics(likelihood_ratio(clean, flac_logp), sources, name="auroc_complexity"))
    if background_logp is not None:
        metrics.update(discrimination_metrics(likelihood_ratio(clean, background_logp), sources, name="auroc_ratio"))
    curve = [(0.0, *in_and_out_of_class(clean))]
    matched_scores = {}  # σ -> scores with the prior told σ (noise-conditional priors)
    for sigma in evaluation.noise_levels:
        scores = log_likelihoods(prior, noisy(clips, sigma, seed), batch_size, device,
                                 sigma if conditional else None)
        if conditional:
            matched_scores[sigma] = scores
        check_finite(scores, sources, f"clips with σ={sigma:g} noise")
        metrics.update(discrimination_metrics(scores, sources, suffix=f"@{level_name(sigma)}"))
        metrics[f"{SMOOTHNESS}@{level_name(sigma)}"] = logp_drop(clean, scores)
        curve.append((sigma, *in_and_out_of_class(scores)))
        tell(next(done), passes, f"log p at σ={sigma:g}")
    if prior.trained_by == "denoising":
        metrics.update(denoising_metrics(prior, clips, matched_levels, evaluation, device,
                                         lambda level: tell(next(done), passes, f"denoising at σ={level:g}")))
    if conditional and matched_levels:
        metrics.update(matched_auroc(prior, clips, matched_levels, matched_scores, evaluation, device))
    return metrics, {"cross_likelihood": cross_likelihood(clean), "noise_curve": curve}


def matched_auroc(prior: Prior, clips: torch.Tensor, levels, scored: dict, evaluation: EvaluationConfig,
                  device) -> dict[str, float]:
    """``auroc_matched`` and ``auroc_matched_min``: AUROC on σ-noised clips with the prior told σ, over
    ``levels``; ``scored`` holds the levels already scored (σ -> log p), the others are scored here."""
    for level in levels:
        if level not in scored:
            scored[level] = log_likelihoods(prior, noisy(clips, level, evaluation.seed), evaluation.batch_size,
                                            device, level)
    matched = torch.stack([per_source_auroc(scored[level]).mean() for level in levels])
    return {"auroc_matched": matched.mean().item(), "auroc_matched_min": matched.min().item()}


def denoising_metrics(prior: Prior, clips: torch.Tensor, levels, evaluation: EvaluationConfig, device,
                      after_level=None) -> dict:
    """A score prior's held-out denoising at each level it was trained on: SI-SDR (dB) of D(x + σε, σ) against
    x (``denoise_si_sdr@σ``) beside that of the noisy clip itself (``noisy_si_sdr@σ``). It tells whether the
    prior is good at the σ a sampler starts from, where log p says little."""
    metrics = {}
    for sigma in levels:
        corrupted = noisy(clips, sigma, evaluation.seed)
        parts = []
        for start in range(0, len(clips), evaluation.batch_size or 8):
            part = corrupted[start:start + (evaluation.batch_size or 8)].to(device)
            with torch.inference_mode(), autocast(device):
                parts.append(map_batch(lambda chunk: prior.denoise(chunk, sigma), part).float().cpu())
        name = level_name(sigma)
        metrics[f"denoise_si_sdr@{name}"] = si_sdr(torch.cat(parts), clips).mean().item()
        metrics[f"noisy_si_sdr@{name}"] = si_sdr(corrupted, clips).mean().item()
        if after_level is not None:
            after_level(sigma)
    return metrics


def in_and_out_of_class(loglik: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean log p per prior on its own source's clips, and on every other source's clips: ([K], [K])."""
    k = loglik.shape[1]
    own = in_class(loglik).double().mean(0)
    total = loglik.double().mean(0).sum(1)  # Σ_j mean_n log p_k(clip of j)
    return own, (total - own) / (k - 1)
