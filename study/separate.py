"""Source separation by annealed Langevin dynamics over per-source score functions (BASIS, Jayaram & Thickstun 2020).

For levels σ_1 > … > σ_L, with η_i = ε·σ_i²/σ_L², every source of every mixture moves at once:

    s_k ← s_k + η_i·[∇ log p_k^{σ_i}(s_k) + (α_k/γ_i²)·(m − Σ_j α_j s_j)] + √(2η_i)·z_k,

with γ_i² = σ_i²·Σ_k α_k² (the variance of a mixture of σ_i-noised sources) times ``likelihood_scale``.
The ``dirac`` rule (MSDM) instead pins the last source to (m − Σ_{j<K} α_j s_j)/α_K and moves the others
along the chain-rule gradient score_j − (α_j/α_K)·score_K. The sampler only sees score functions, so it is
tested on Gaussian priors whose posterior is known in closed form.

Sampler settings beyond BASIS, each a sweepable field of :class:`LangevinSchedule`:
- ``init="projected"``: noise at the entry σ projected onto the mixture constraint Σ_k α_k s_k = m;
- ``predictor="reverse_diffusion"``: before the Langevin (corrector) steps of each level after the first, one
  reverse-diffusion step from σ_{i−1} to σ_i along the posterior score (Song et al. 2021's predictor–corrector):
  s ← s + (σ_{i−1}² − σ_i²)·g + √(σ_{i−1}² − σ_i²)·z;
- ``steps_growth``: level i runs steps_per_level·growth^{i/(L−1)} steps, so more of the work happens at small σ.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Callable, Literal

import torch

from study.config import SeparationConfig

ScoreFn = Callable[[int, torch.Tensor], torch.Tensor]
"""(level index i, sources s: [B, K, T]) -> ∇_s Σ_k log p_k^{σ_i}(s_k): [B, K, T]."""


_SETTINGS = SeparationConfig()  # the sampler's defaults have one home: the separation config


@dataclass
class LangevinSchedule:
    """The noise levels, and the sampler settings of :class:`study.config.SeparationConfig` (same names; a
    trial builds it with :meth:`from_config`)."""

    sigmas: list[float]  # decreasing noise levels
    steps_per_level: int = _SETTINGS.steps_per_level
    epsilon: float = _SETTINGS.epsilon
    init: Literal["mixture", "noise", "projected"] = _SETTINGS.init
    rule: Literal["gaussian", "dirac"] = _SETTINGS.rule
    likelihood_scale: float = _SETTINGS.likelihood_scale  # γ_i² = scale · σ_i² · Σ α_k²
    bound: float = _SETTINGS.bound  # iterates leaving [-bound, bound] count as divergence
    predictor: Literal["none", "reverse_diffusion"] = _SETTINGS.predictor
    steps_growth: float = _SETTINGS.steps_growth  # steps at the last level / steps at the first

    @classmethod
    def from_config(cls, sigmas: list[float], config: SeparationConfig) -> LangevinSchedule:
        """The schedule over ``sigmas`` with every sampler setting taken from ``config`` by name."""
        names = [f.name for f in fields(cls) if f.name != "sigmas"]
        return cls(sigmas=list(sigmas), **config.model_dump(include=set(names)))

    def step_size(self, i: int) -> float:
        """Song & Ermon's rule: η_i = ε·σ_i²/σ_L², the step shrinking with the noise level."""
        return self.epsilon * (self.sigmas[i] / self.sigmas[-1]) ** 2

    def steps(self, i: int) -> int:
        if len(self.sigmas) == 1:
            return round(self.steps_per_level * self.steps_growth)
        return max(1, round(self.steps_per_level * self.steps_growth ** (i / (len(self.sigmas) - 1))))

    def gamma_squared(self, i: int, alphas: torch.Tensor) -> float:
        return self.likelihood_scale * self.sigmas[i] ** 2 * float((alphas**2).sum())


@dataclass
class LangevinResult:
    estimates: torch.Tensor  # [B, K, T]
    diverged: str | None = None  # why the chain was abandoned, or None
    level_estimates: list[torch.Tensor] = field(default_factory=list)  # estimates after each level (CPU)
    steps: int = 0


def project(s: torch.Tensor, mixture: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """The nearest sources that sum to the mixture: s + α·(m − Σ_k α_k s_k)/Σ_k α_k². a: [1, K, 1]."""
    return s + a * ((mixture - (a * s).sum(1)) / a.pow(2).sum()).unsqueeze(1)


def initial_sources(mixture: torch.Tensor, a: torch.Tensor, schedule: LangevinSchedule, generator) -> torch.Tensor:
    b, t = mixture.shape
    k = a.shape[1]
    if schedule.init == "mixture":
        return mixture.unsqueeze(1).expand(b, k, t).clone()
    noise = schedule.sigmas[0] * torch.randn(b, k, t, generator=generator, device=mixture.device, dtype=mixture.dtype)
    return project(noise, mixture, a) if schedule.init == "projected" else noise


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
    s = initial_sources(mixture, a, schedule, generator) if start is None else start.to(mixture).clone()
    dirac = schedule.rule == "dirac"
    result = LangevinResult(s)

    def pin_last() -> None:  # the Dirac rule: the last source is whatever the others leave of the mixture
        s[:, -1] = (mixture - (a[:, :-1] * s[:, :-1]).sum(1)) / a[0, -1]

    def move(i: int, drift: float, spread: float) -> None:
        """s ← s + drift·(posterior score at level i) + spread·z."""
        grad = score(i, s)
        noise = torch.randn(s.shape, generator=generator, device=s.device, dtype=s.dtype)
        if dirac:
            free = grad[:, :-1] - (a[:, :-1] / a[:, -1:]) * grad[:, -1:]
            s[:, :-1] += drift * free + spread * noise[:, :-1]
            pin_last()
        else:
            residual = (mixture - (a * s).sum(1)).unsqueeze(1)
            s.add_(drift * (grad + a / schedule.gamma_squared(i, alphas) * residual) + spread * noise)
        result.steps += 1

    if dirac:
        pin_last()
    for i, sigma in enumerate(schedule.sigmas):
        if i > 0 and schedule.predictor == "reverse_diffusion":
            gap = schedule.sigmas[i - 1] ** 2 - sigma**2  # variance removed going down one level
            move(i - 1, gap, math.sqrt(gap))
        eta = schedule.step_size(i)
        for _ in range(schedule.steps(i)):
            move(i, eta, math.sqrt(2 * eta))
        result.diverged = _divergence(s, schedule.bound, sigma)
        if keep_levels:
            result.level_estimates.append(s.detach().cpu().clone())
        if result.diverged:
            break
    result.estimates = s
    return result
