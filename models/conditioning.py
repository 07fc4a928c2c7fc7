"""Noise-level conditioning: an embedding of log σ that noise-conditional priors add inside every layer.

A σ-conditional prior models the σ-smoothed source distribution p_k^σ = p_k * N(0, σ²) for every σ at
once: log_prob(x, σ) is exact for each σ (the conditioning only changes which density is evaluated,
never the change of variables or the normalisation).
"""
from __future__ import annotations

import math

import torch

CLEAN_SIGMA = 1e-4  # σ = 0 (clean) is embedded as this level


def as_sigma(sigma, x: torch.Tensor) -> torch.Tensor:
    """σ given as a number, [B] or [B, K] -> [B, K] on x's device and dtype (x: [B, K, T])."""
    b, k = x.shape[:2]
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if sigma.dim() == 0:
        return sigma.expand(b, k)
    if sigma.dim() == 1:
        return sigma.view(b, 1).expand(b, k)
    if sigma.shape != (b, k):
        raise ValueError(f"sigma must be a number, [B] or [B, K]={[b, k]}, got {list(sigma.shape)}")
    return sigma


def sigma_features(sigma: torch.Tensor, features: int) -> torch.Tensor:
    """Fourier features of log σ per source: [B, K] -> [B, K·features, 1] (group-major, like the convs)."""
    u = torch.log(sigma.clamp_min(CLEAN_SIGMA)) / math.log(1 / CLEAN_SIGMA)  # ≈ [-1, 0] for σ in [1e-4, 1]
    pairs = (features - 1) // 2
    freqs = math.pi * torch.arange(1, pairs + 1, dtype=sigma.dtype, device=sigma.device)
    angles = u.unsqueeze(-1) * freqs
    feats = torch.cat([u.unsqueeze(-1), torch.sin(angles), torch.cos(angles)], dim=-1)
    if feats.shape[-1] < features:
        feats = torch.cat([feats, torch.ones_like(u).unsqueeze(-1)], dim=-1)
    b, k = sigma.shape
    return feats.reshape(b, k * features, 1)
