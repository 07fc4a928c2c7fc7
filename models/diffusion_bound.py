"""The variational bound on log p of a variance-exploding diffusion, given only its score function.

A score prior models the σ-smoothed density p^σ for σ in [σ_min, σ_max]. For a clip x seen at level σ_0,
noise is added along z_t = x + √t·ε, t ∈ [0, T], T = σ_max² − σ_0² (variance time; the level of z_t is
σ = √(σ_0² + t)), and the continuous-time bound of Song, Durkan, Murray & Ermon (2021), with the
denoising target ∇ log q(z_t | x) = −ε/√t, reads

    log p^{σ_0}(x) ≥ E log π(z_T) − ½ ∫_0^T E[ ‖s(z_t, σ)‖² + 2 ε·s(z_t, σ)/√t ] dt

(the two divergent ‖ε‖²/t terms of the score-matching form cancel exactly). With the exact score and
π = p^{σ_max} the bound is an equality. For the Gaussian reference r(z, σ) = −z/(σ² + σ_data²) with
π = N(0, σ_max² + σ_data²) it is exactly log N(x; 0, σ_0² + σ_data²), so the bound is computed as that
closed form plus the integral of the *difference* between the prior's integrand and the reference's at the
same noise: a control variate that removes most of the Monte-Carlo error (a prior whose score is the
reference's scores exactly the closed form). The integral is a Gauss–Legendre quadrature in log t with fixed
noise per node and antithetic pairs ±ε (the 1/√t term then stays bounded as t → 0). The noise comes from a
caller-seeded generator, so every prior scoring one clip sees the same ε.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable

import numpy as np
import torch

SMALLEST_TIME = 1e-4  # the quadrature starts at t = SMALLEST_TIME·σ_0² (the integrand is finite at t → 0)


@lru_cache(maxsize=8)
def legendre(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes and weights on [-1, 1]."""
    return np.polynomial.legendre.leggauss(nodes)


def reference_score(z: torch.Tensor, sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """The score of N(0, σ_data²) smoothed at σ: −z/(σ² + σ_data²). sigma: [B, K] (or broadcastable)."""
    return -z / (sigma.unsqueeze(-1) ** 2 + sigma_data**2)


def gaussian_log_prob(x: torch.Tensor, variance: torch.Tensor) -> torch.Tensor:
    """log N(x; 0, variance) summed over time: x [B, K, T], variance [B, K] -> [B, K] (float64)."""
    t = x.shape[-1]
    return -0.5 * t * torch.log(2 * math.pi * variance) - x.double().pow(2).sum(-1) / (2 * variance)


def variational_bound(score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor,
                      sigma0: torch.Tensor, sigma_max: float, sigma_data: float, nodes: int,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Lower bound on log p^{σ_0}(x) in nats per clip, with π = N(0, σ_max² + σ_data²).

    score(z, σ) -> ∇ log p^σ(z) for z: [B, K, T] and σ: [B, K]. x: [B, K, T]; sigma0: [B, K], each clip's level
    (clamped to σ_max). Costs 2·``nodes`` score evaluations. Returns [B, K] (float64).
    """
    sigma0 = sigma0.double().clamp(max=sigma_max)
    closed_form = gaussian_log_prob(x, sigma0**2 + sigma_data**2)
    span = sigma_max**2 - sigma0**2  # T per clip
    if not (span > 0).any():
        return closed_form
    lo = torch.log(SMALLEST_TIME * sigma0.clamp_min(1e-12) ** 2)
    hi = torch.log(span.clamp_min(1e-300))
    lo = torch.minimum(lo, hi)
    u, w = legendre(nodes)
    integral = torch.zeros_like(closed_form)
    first = None
    for node, weight in zip(u.tolist(), w.tolist()):  # nodes ascend, so the first is nearest t_lo
        t = torch.exp(lo + (hi - lo) * (node + 1) / 2)  # [B, K]
        level = torch.sqrt(sigma0**2 + t).to(x.dtype)
        eps = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        root = torch.sqrt(t).to(x.dtype).unsqueeze(-1)
        value = 0
        for sign in (1.0, -1.0):
            z = x + sign * root * eps
            prior, reference = score(z, level).double(), reference_score(z, level, sigma_data).double()
            value = value + 0.5 * (prior.pow(2) - reference.pow(2)).sum(-1) \
                + sign * (eps.double() * (prior - reference)).sum(-1) / torch.sqrt(t)
        integral += weight * (hi - lo) / 2 * value * t  # dt = t·d(log t)
        if first is None:
            first = value
    integral += first * torch.exp(lo)  # ∫_0^{t_lo}, with the integrand at its first node
    return torch.where(span > 0, closed_form - 0.5 * integral, closed_form)
