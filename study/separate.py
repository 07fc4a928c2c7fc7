"""Source separation by annealed Langevin dynamics over per-source score functions (BASIS, science.md §7).

For levels σ_1 > … > σ_L, with η_i = ε·σ_i²/σ_L², every source of every mixture moves at once:

    s_k ← s_k + η_i·[∇ log p_k^{σ_i}(s_k) + (α_k/γ_i²)·(m − Σ_j α_j s_j)] + √(2η_i)·z_k,

with γ_i² = σ_i²·Σ_k α_k² (the variance of a mixture of σ_i-noised sources) times ``likelihood_scale``.
The ``dirac`` rule (MSDM) instead pins the last source to (m − Σ_{j<K} α_j s_j)/α_K and moves the others
along the chain-rule gradient score_j − (α_j/α_K)·score_K. The sampler only sees score functions, so it is
tested on Gaussian priors whose posterior is known in closed form.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Literal

import torch

ScoreFn = Callable[[int, torch.Tensor], torch.Tensor]
"""(level index i, sources s: [B, K, T]) -> ∇_s Σ_k log p_k^{σ_i}(s_k): [B, K, T]."""


@dataclass
class LangevinSchedule:
    sigmas: list[float]  # decreasing noise levels
    steps_per_level: int = 100
    epsilon: float = 2e-5
    init: Literal["mixture", "noise"] = "mixture"
    rule: Literal["gaussian", "dirac"] = "gaussian"
    likelihood_scale: float = 1.0  # γ_i² = scale · σ_i² · Σ α_k²
    bound: float = 30.0  # iterates leaving [-bound, bound] count as divergence

    def step_size(self, i: int) -> float:
        return self.epsilon * (self.sigmas[i] / self.sigmas[-1]) ** 2

    def gamma_squared(self, i: int, alphas: torch.Tensor) -> float:
        return self.likelihood_scale * self.sigmas[i] ** 2 * float((alphas**2).sum())


@dataclass
class LangevinResult:
    estimates: torch.Tensor  # [B, K, T]
    diverged: str | None = None  # why the chain was abandoned, or None
    level_estimates: list[torch.Tensor] = field(default_factory=list)  # estimates after each level (CPU)
    steps: int = 0


def initial_sources(mixture: torch.Tensor, k: int, schedule: LangevinSchedule, generator) -> torch.Tensor:
    b, t = mixture.shape
    if schedule.init == "mixture":
        return mixture.unsqueeze(1).expand(b, k, t).clone()
    return schedule.sigmas[0] * torch.randn(b, k, t, generator=generator, device=mixture.device, dtype=mixture.dtype)


def _divergence(s: torch.Tensor, bound: float, level: float) -> str | None:
    if not torch.isfinite(s).all():
        return f"non-finite iterates at level σ={level:.4g}"
    peak = s.abs().max().item()
    if peak > bound:
        return f"iterates left [-{bound:g}, {bound:g}] (|s|max={peak:.3g}) at level σ={level:.4g}"
    return None


@torch.no_grad()
def annealed_langevin(score: ScoreFn, mixture: torch.Tensor, alphas: torch.Tensor, schedule: LangevinSchedule,
                      generator: torch.Generator | None = None, keep_levels: bool = False,
                      start: torch.Tensor | None = None) -> LangevinResult:
    """Sample sources given mixtures. mixture: [B, T]; alphas: [K] mixing weights (m = Σ_k α_k s_k).

    ``start`` [B, K, T] replaces ``schedule.init``: started at the true sources, the chains show whether the
    priors hold the truth (a weak prior drifts away) or only global inference fails (they hold it, and the
    mixture start does not get there)."""
    k = alphas.numel()
    a = alphas.to(mixture).view(1, k, 1)
    s = initial_sources(mixture, k, schedule, generator) if start is None else start.to(mixture).clone()
    dirac = schedule.rule == "dirac"
    if dirac:
        s[:, -1] = (mixture - (a[:, :-1] * s[:, :-1]).sum(1)) / a[0, -1]
    result = LangevinResult(s)
    for i, sigma in enumerate(schedule.sigmas):
        eta = schedule.step_size(i)
        pull = a / schedule.gamma_squared(i, alphas)
        for _ in range(schedule.steps_per_level):
            grad = score(i, s)
            noise = torch.randn(s.shape, generator=generator, device=s.device, dtype=s.dtype)
            if dirac:
                free = grad[:, :-1] - (a[:, :-1] / a[:, -1:]) * grad[:, -1:]
                s[:, :-1] += eta * free + math.sqrt(2 * eta) * noise[:, :-1]
                s[:, -1] = (mixture - (a[:, :-1] * s[:, :-1]).sum(1)) / a[0, -1]
            else:
                residual = (mixture - (a * s).sum(1)).unsqueeze(1)
                s += eta * (grad + pull * residual) + math.sqrt(2 * eta) * noise
            result.steps += 1
        result.diverged = _divergence(s, schedule.bound, sigma)
        if keep_levels:
            result.level_estimates.append(s.detach().cpu().clone())
        if result.diverged:
            break
    result.estimates = s
    return result
