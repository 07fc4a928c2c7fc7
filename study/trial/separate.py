"""Source separation by annealed Langevin dynamics over per-source score functions (BASIS, Jayaram & Thickstun 2020).

For levels σ_1 > … > σ_L, with η_i = ε·σ_i²/σ_L², every source of every mixture moves at once:

    s_k ← s_k + η_i·[∇ log p_k^{σ_i}(s_k) + (α_k/γ_i²)·(m − Σ_j α_j s_j)] + √(2η_i)·z_k,

with γ_i² = σ_i²·Σ_k α_k² (the variance of a mixture of σ_i-noised sources) times ``likelihood_scale``.
The ``dirac`` rule (MSDM) instead pins the last source to (m − Σ_{j<K} α_j s_j)/α_K and moves the others
along the chain-rule gradient score_j − (α_j/α_K)·score_K. The sampler only sees score functions, so it is
tested on Gaussian priors whose posterior is known in closed form.

Sampler settings beyond BASIS, each a sweepable field of :class:`LangevinSchedule`:
- ``init="projected"``: noise at the entry σ projected onto the mixture constraint Σ_k α_k s_k = m;
  ``init="noised_prior"``: a draw of the σ-noised prior, N(0, σ_1² + v), v the sources' variance read off the
  mixture (ISDM's start); ``init="denoiser"``: each prior's denoiser D_k(x, σ) = x + σ²·score_k(x, σ) applied
  to x_k = m/α_k at the level the other sources put on it, σ_k² = v·Σ_{j≠k} α_j²/α_k², then projected;
- ``predictor="reverse_diffusion"``: before the Langevin (corrector) steps of each level after the first, one
  reverse-diffusion step from σ_{i−1} to σ_i along the posterior score (Song et al. 2021's predictor–corrector):
  s ← s + (σ_{i−1}² − σ_i²)·g + √(σ_{i−1}² − σ_i²)·z;
- ``steps_growth``: level i runs steps_per_level·growth^{i/(L−1)} steps, so more of the work happens at small σ;
- ``churn``: before a level's steps, fresh noise raises the iterate's level from σ_i to σ_i·(1 + churn);
- ``pinned_sigma="matched"`` (Dirac rule): the pinned source carries the other sources' noise,
  √(Σ_{j<K} α_j²)/α_K · σ_i, and is scored at that level instead of σ_i;
- ``rule="smoothed_map"``: mode seeking without injected noise, s ← s + η_i·[score(s + σ'z, σ') + α(m − Σα s)/γ_i²]
  with σ' log-uniform in [σ_i/spread, σ_i·spread]: for a Gaussian prior its fixed point is the posterior mean
  under the prior smoothed at σ'.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Callable

import torch

from study.config.schema import Init, PinnedSigma, Predictor, Rule, SeparationConfig

ScoreFn = Callable[..., torch.Tensor]
"""(level index i, sources s: [B, K, T][, sigma=…]) -> ∇_s Σ_k log p_k^{σ}(s_k): [B, K, T], at σ = σ_i, or at
``sigma`` (a number, or [K]: one level per source) when given; only σ-conditional priors are asked that."""


_SETTINGS = SeparationConfig()  # the sampler's defaults have one home: the separation config


@dataclass
class LangevinSchedule:
    """The noise levels, and the sampler settings of :class:`study.config.schema.SeparationConfig` (same names; a
    trial builds it with :meth:`from_config`)."""

    sigmas: list[float]  # decreasing noise levels
    steps_per_level: int = _SETTINGS.steps_per_level
    epsilon: float = _SETTINGS.epsilon
    init: Init = _SETTINGS.init
    rule: Rule = _SETTINGS.rule
    likelihood_scale: float = _SETTINGS.likelihood_scale  # γ_i² = scale · σ_i² · Σ α_k²
    bound: float = _SETTINGS.bound  # iterates leaving [-bound, bound] count as divergence
    predictor: Predictor = _SETTINGS.predictor
    steps_growth: float = _SETTINGS.steps_growth  # steps at the last level / steps at the first
    churn: float = _SETTINGS.churn
    pinned_sigma: PinnedSigma = _SETTINGS.pinned_sigma
    smoothing_spread: float = _SETTINGS.smoothing_spread

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
    moved: float = math.nan  # ‖estimates − start‖ / ‖start‖: how far the chains went from where they started
    start: torch.Tensor | None = None  # where they started



def project(s: torch.Tensor, mixture: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """The nearest sources that sum to the mixture: s + α·(m − Σ_k α_k s_k)/Σ_k α_k². a: [1, K, 1]."""
    return s + a * ((mixture - (a * s).sum(1)) / a.pow(2).sum()).unsqueeze(1)


def source_variance(mixture: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Each source's variance as the mixture tells it, for independent sources of equal variance:
    Var(m) = Σ_k α_k² v. [B, T] -> [B, 1, 1]."""
    return (mixture.pow(2).mean(-1) / a.pow(2).sum()).view(-1, 1, 1)


def initial_sources(mixture: torch.Tensor, a: torch.Tensor, schedule: LangevinSchedule, generator,
                    score: ScoreFn) -> torch.Tensor:
    b, t = mixture.shape
    k = a.shape[1]
    if schedule.init == "mixture":
        return mixture.unsqueeze(1).expand(b, k, t).clone()
    if schedule.init == "denoiser":
        x = mixture.unsqueeze(1) / a  # m/α_k: s_k plus the other sources, scaled
        others = (a.pow(2).sum() - a.pow(2)) / a.pow(2)  # [1, K, 1]: Σ_{j≠k} α_j² / α_k²
        level = (source_variance(mixture, a) * others).sqrt()  # [B, K, 1]
        denoised = torch.cat([xb + lb.pow(2) * score(0, xb, sigma=lb.view(-1))  # one level per source
                              for xb, lb in zip(x.expand(b, k, t).split(1), level.split(1))])
        return project(denoised, mixture, a)
    spread = schedule.sigmas[0]
    if schedule.init == "noised_prior":
        spread = (schedule.sigmas[0] ** 2 + source_variance(mixture, a)).sqrt()
    noise = spread * torch.randn(b, k, t, generator=generator, device=mixture.device, dtype=mixture.dtype)
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
                      start: torch.Tensor | None = None, progress=None) -> LangevinResult:
    """Sample sources given mixtures. mixture: [B, T]; alphas: [K] mixing weights (m = Σ_k α_k s_k).

    ``start`` [B, K, T] replaces ``schedule.init``: started at the true sources, the chains show whether the
    priors hold the truth (a weak prior drifts away) or only global inference fails (they hold it, and the
    mixture start does not get there). ``progress(done, total, what)`` is told after each level."""
    chains = Chains(score, mixture, alphas, schedule, generator, start)
    anneal(chains, keep_levels, progress)
    return chains.finish()


def anneal(chains: "Chains", keep_levels: bool = False, progress=None) -> None:
    """Move ``chains`` down every level of their schedule (the predictor, churn and Langevin steps of each)."""
    schedule, result = chains.schedule, chains.result
    for i, sigma in enumerate(schedule.sigmas):
        if i > 0 and schedule.predictor == "reverse_diffusion":
            gap = schedule.sigmas[i - 1] ** 2 - sigma**2  # variance removed going down one level
            chains.move(i - 1, gap, math.sqrt(gap))
        if schedule.churn > 0:
            chains.churn(sigma)
        eta = schedule.step_size(i)
        for _ in range(schedule.steps(i)):
            chains.move(i, eta, math.sqrt(2 * eta))
        result.diverged = _divergence(chains.s, schedule.bound, sigma)
        if keep_levels:
            result.level_estimates.append(chains.s.detach().cpu().clone())
        if progress is not None:
            progress(i + 1, len(schedule.sigmas), f"level σ={sigma:.3g}, {result.steps} steps")
        if result.diverged:
            return


@torch.no_grad()
def gibbs_resample(score: ScoreFn, mixture: torch.Tensor, alphas: torch.Tensor, schedule: LangevinSchedule,
                   generator: torch.Generator | None, result: LangevinResult, sweeps: int) -> LangevinResult:
    """Gibbs re-separation (MSDM, Mariani et al. 2024): hold every source but a neighbouring pair (k, k+1)
    fixed and re-separate the pair under the mixture constraint: noise at the first level is added to it and
    it goes down every level of ``schedule`` again, with the same rule. Every pair in turn, ``sweeps`` times,
    from ``result``'s estimates. A pair's conditional posterior given the others is the joint posterior's, so
    the chains keep that as their target while a pair can leave a mode that moving all sources at once holds."""
    chains = Chains(score, mixture, alphas, schedule, generator, result.estimates)
    chains.start, chains.result = result.start, result
    k = alphas.numel()
    blocks = [[j, (j + 1) % k] for j in range(k)] if k > 2 else [list(range(k))]
    for _ in range(sweeps):
        for block in blocks:
            chains.block = block
            chains.s[:, block] += schedule.sigmas[0] * chains.randn()[:, block]
            if chains.dirac:
                chains.pin()
            anneal(chains)
            if result.diverged:
                return chains.finish()
    chains.block = list(range(k))
    return chains.finish()


class Chains:
    """The iterates of every chain (mixture) and the update rules that move them."""

    def __init__(self, score: ScoreFn, mixture: torch.Tensor, alphas: torch.Tensor, schedule: LangevinSchedule,
                 generator: torch.Generator | None, start: torch.Tensor | None):
        self.score, self.mixture, self.alphas, self.schedule, self.generator = score, mixture, alphas, schedule, generator
        k = alphas.numel()
        self.a = a = alphas.to(mixture).view(1, k, 1)
        self.s = initial_sources(mixture, a, schedule, generator, score) if start is None else start.to(mixture).clone()
        self.dirac = schedule.rule == "dirac"
        self.block = list(range(k))  # the sources that move (Gibbs re-separation moves a pair); the rest hold
        self.result = LangevinResult(self.s)
        if self.dirac:
            self.pin()
        self.start = self.s.clone()  # where the chains begin, to tell how far they went

    def pin(self) -> None:
        """The Dirac rule: the block's last source is whatever the other sources leave of the mixture."""
        a, pinned = self.a, self.block[-1]
        others = (a * self.s).sum(1) - a[:, pinned] * self.s[:, pinned]
        self.s[:, pinned] = (self.mixture - others) / a[0, pinned]

    @staticmethod
    def rows(sources: list[int]):
        """Consecutive sources as a slice (a view, updated in place on the hot path), others as a list."""
        if not sources:
            return slice(0, 0)
        if sources == list(range(sources[0], sources[-1] + 1)):
            return slice(sources[0], sources[-1] + 1)
        return sources

    def finish(self) -> LangevinResult:
        result = self.result
        result.estimates, result.start = self.s, self.start
        result.moved = ((self.s - self.start).norm() / self.start.norm().clamp_min(1e-30)).item()
        return result

    def randn(self) -> torch.Tensor:
        return torch.randn(self.s.shape, generator=self.generator, device=self.s.device, dtype=self.s.dtype)

    def prior_score(self, i: int) -> torch.Tensor:
        if self.dirac and self.schedule.pinned_sigma == "matched":
            sigma = torch.full((self.a.shape[1],), self.schedule.sigmas[i], dtype=self.s.dtype, device=self.s.device)
            # the pinned source carries the moving ones' noise: √(Σ_free α_j²)/α_pinned times the level's σ
            free, pinned = self.block[:-1], self.block[-1]
            sigma[pinned] *= float(self.a[0, free].pow(2).sum().sqrt() / self.a[0, pinned])
            return self.score(i, self.s, sigma=sigma)
        return self.score(i, self.s)

    def likelihood(self, i: int) -> torch.Tensor:
        """The Gaussian likelihood's gradient α(m − Σ α s)/γ_i²."""
        residual = (self.mixture - (self.a * self.s).sum(1)).unsqueeze(1)
        return self.a / self.schedule.gamma_squared(i, self.alphas) * residual

    def move(self, i: int, drift: float, spread: float) -> None:
        """s ← s + drift·(posterior score at level i) + spread·z."""
        s, schedule = self.s, self.schedule
        if schedule.rule == "smoothed_map":  # no injected noise; the score at a noised copy, random level
            u = 2 * torch.rand((), generator=self.generator).item() - 1
            level = schedule.sigmas[i] * schedule.smoothing_spread**u
            s.add_(drift * (self.score(i, s + level * self.randn(), sigma=level) + self.likelihood(i)))
        elif self.dirac:  # the block's last source pinned; the chain rule moves the others
            grad, noise, pinned = self.prior_score(i), self.randn(), self.block[-1]
            a, free = self.a, self.rows(self.block[:-1])
            s[:, free] += drift * (grad[:, free] - a[:, free] / a[:, pinned:pinned + 1] * grad[:, pinned:pinned + 1]) \
                + spread * noise[:, free]
            self.pin()
        else:
            moving = self.rows(self.block)
            step = drift * (self.prior_score(i) + self.likelihood(i)) + spread * self.randn()
            s[:, moving] += step[:, moving]
        self.result.steps += 1

    def churn(self, sigma: float) -> None:
        """Raise the iterates' noise from σ to σ·(1 + churn) (the corrector steps then bring it down)."""
        moving = self.rows(self.block)
        self.s[:, moving] += sigma * math.sqrt((1 + self.schedule.churn) ** 2 - 1) * self.randn()[:, moving]
        if self.dirac:
            self.pin()
