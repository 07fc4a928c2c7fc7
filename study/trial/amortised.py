"""A separator trained by the priors alone: the posterior amortised over mixtures.

Per-mixture chains never share what they find; a network trained across thousands of mixtures meets every
mixture with the same weights (Stoller, Ewert & Dixon 2018; Narayanaswamy et al. 2020). The network is
torchaudio's ConvTasNet, the supervised reference's architecture (:mod:`study.trial.supervised`), so the two
differ only in what trains them. Each step:

1. a batch of training *mixtures* m (the sources that made them are dropped at once) goes through the
   network, and its outputs ŝ are projected onto the mixture, Σ_k α_k ŝ_k = m (``likelihood: dirac``), or
   left free with a Gaussian likelihood term (``likelihood: gaussian``);
2. noise at the step's level σ (annealed geometrically from ``sigma_high`` to ``sigma_low``) is added and the
   priors' score g = ∇ log p^σ(ŝ + σε) read there, without a gradient;
3. the loss σ²·[−⟨g, ŝ⟩ + ‖m − Σ α ŝ‖²/(2γ²)]/T has the gradient −σ²·(posterior score) in ŝ: the outputs
   move the way the priors (and the mixture) pull them, a σ²-weighted score-distillation step.

The kept weights are those whose estimates the priors find most likely (Σ_k log p_k at ``sigma_low``) on
mixtures of training crops: the truth never chooses.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torchaudio.models import ConvTasNet

from study.config.schema import SeparatorConfig
from study.data import mix
from study.trial.separate import project
from study.trial.supervised import ARCHITECTURE
from study.trial.train import step_generator

# step_generator streams (the priors' training uses 0-1, the supervised reference 2)
TRAINING_STREAM, SELECTION_STREAM, NOISE_STREAM = 3, 4, 5


@dataclass
class Teacher:
    """The priors as the separator sees them: ``score(i, x, sigma=None)`` and ``log_prob(i, x, sigma=None)``
    ([B, K]) of level i's prior at its σ (σ-conditional priors at any ``sigma``), and the levels' σ, decreasing."""

    score: Callable[..., torch.Tensor]
    log_prob: Callable[..., torch.Tensor]
    sigmas: list[float]
    conditional: bool

    def level(self, sigma: float) -> int:
        """The level whose σ is nearest to ``sigma`` (in log σ)."""
        return min(range(len(self.sigmas)), key=lambda i: abs(math.log(self.sigmas[i] / sigma)))

    def score_at(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """The score at ``sigma`` (unconditional priors: that of the level nearest it, at its own σ)."""
        i = self.level(sigma)
        return self.score(i, x, sigma=sigma) if self.conditional else self.score(i, x)

    def log_prob_at(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        i = self.level(sigma)
        return self.log_prob(i, x, sigma=sigma) if self.conditional else self.log_prob(i, x)


@dataclass
class SeparatorRecord:
    """What training the separator did: the selection trace and the step whose weights were kept."""

    trace: list[dict] = field(default_factory=list)  # one entry per check: step, σ, selection log p, reports
    selected_step: int = 0
    seconds: float = 0.0


def annealed_sigma(step: int, steps: int, high: float, low: float) -> float:
    """σ at ``step`` of ``steps``: geometric from ``high`` (first step) to ``low`` (last)."""
    return high * (low / high) ** (step / max(steps - 1, 1))


def build_separator(num_sources: int) -> ConvTasNet:
    return ConvTasNet(num_sources=num_sources, **ARCHITECTURE)


def separate(model: ConvTasNet, mixtures: torch.Tensor, alphas: torch.Tensor, likelihood: str) -> torch.Tensor:
    """The separator's estimates of the sources of ``mixtures`` [B, T] -> [B, K, T] (projected for ``dirac``)."""
    estimates = model(mixtures.unsqueeze(1)).float()
    if likelihood == "dirac":
        return project(estimates, mixtures, alphas.to(estimates).view(1, -1, 1))
    return estimates


def prior_loss(estimates: torch.Tensor, mixtures: torch.Tensor, alphas: torch.Tensor, score: torch.Tensor,
               sigma: float, likelihood: str) -> torch.Tensor:
    """σ²·[−⟨score, ŝ⟩ + ‖m − Σ α ŝ‖²/(2γ²)] per sample, γ² = σ²·Σα² (the Gaussian rule only); ``score`` is
    the priors' score at the noised estimates, a constant. Its gradient in ŝ is −σ² times the posterior score."""
    a = alphas.to(estimates).view(1, -1, 1)
    per_sample = -(score.detach() * estimates).sum(1)
    if likelihood == "gaussian":
        gamma_sq = sigma**2 * float(a.pow(2).sum())
        per_sample = per_sample + (mixtures - (a * estimates).sum(1)).pow(2) / (2 * gamma_sq)
    return sigma**2 * per_sample.mean()


def train_by_priors(teacher: Teacher, data, cfg: SeparatorConfig, alphas: torch.Tensor, device: torch.device,
                    log: Callable[[str], None], report: Callable[[ConvTasNet], dict] | None = None
                    ) -> tuple[ConvTasNet, SeparatorRecord]:
    """Train a separator for ``cfg.steps`` steps on mixtures of ``data``'s training crops, taught by
    ``teacher`` alone; every ``cfg.select_every`` steps the priors score its estimates on fixed selection
    mixtures and the most likely weights are kept. ``report(model)`` adds what to log beside each check (the
    trial's SI-SDRi on its test mixtures): it is written down, never used to choose."""
    torch.manual_seed(cfg.seed)
    model = build_separator(len(alphas)).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    high = cfg.sigma_high or teacher.sigmas[0]
    selection = mix(data.training_batch(step_generator(cfg.seed, 0, SELECTION_STREAM), cfg.select_mixtures)).to(device)
    record, best, best_state, t0 = SeparatorRecord(), -math.inf, None, time.perf_counter()
    for step in range(cfg.steps):
        sigma = annealed_sigma(step, cfg.steps, high, cfg.sigma_low)
        mixtures = mix(data.training_batch(step_generator(cfg.seed, step, TRAINING_STREAM), cfg.batch_size)).to(device)
        estimates = separate(model, mixtures, alphas, cfg.likelihood)
        noise = torch.randn(estimates.shape, generator=step_generator(cfg.seed, step, NOISE_STREAM)).to(device)
        noisy = estimates.detach() + sigma * noise
        with torch.no_grad():
            score = teacher.score_at(noisy, sigma)
        loss = prior_loss(estimates, mixtures, alphas, score, sigma, cfg.likelihood)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"separator training: non-finite loss at step {step} (σ={sigma:.3g})")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        if (step + 1) % cfg.select_every == 0 or step + 1 == cfg.steps:
            value = selection_log_prob(model, teacher, selection, alphas, cfg)
            entry = {"step": step + 1, "sigma": sigma, "selection_logp": value, **(report(model) if report else {})}
            record.trace.append(entry)
            log("separator step {step}/{steps}: σ {sigma:.3g}, priors' log p of its estimates {selection_logp:,.0f}"
                .format(steps=cfg.steps, **entry) + "".join(f", {k} {v:.2f}" for k, v in entry.items()
                                                            if k not in ("step", "sigma", "selection_logp")))
            if value > best:
                best, best_state, record.selected_step = value, copy.deepcopy(model.state_dict()), step + 1
            model.train()
    if best_state is not None:
        model.load_state_dict(best_state)
    record.seconds = time.perf_counter() - t0
    return model.eval(), record


@torch.no_grad()
def selection_log_prob(model: ConvTasNet, teacher: Teacher, mixtures: torch.Tensor, alphas: torch.Tensor,
                       cfg: SeparatorConfig) -> float:
    """Σ_k log p_k of the separator's estimates at ``sigma_low`` (the nearest level's σ for unconditional
    priors), mean over the mixtures
    (nats; a score prior's bound): the truth-free criterion that chooses the kept weights."""
    model.eval()
    estimates = separate(model, mixtures, alphas, cfg.likelihood)
    value = teacher.log_prob_at(estimates, cfg.sigma_low).sum(1).mean().item()
    return value if math.isfinite(value) else -math.inf
