"""The one interface every prior implements, and that training, AUROC and Langevin call.

A prior holds K independent per-source densities p_1 … p_K over waveforms (K = 1 for a single-source
prior). Input clips are ``x: [B, K, T]``: row k of every example is scored by prior k. To score one clip
under *every* prior (cross-likelihoods, AUROC), expand it to ``[B, K, T]``.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .conditioning import as_sigma, sigma_features
from .settings import PriorSettings


SCORE_SAMPLES_PER_PASS = 16_384


class Prior(nn.Module):
    """Base class: subclasses implement :meth:`log_prob` and are built from their family's settings."""

    name: str = ""

    def __init__(self, settings: PriorSettings):
        super().__init__()
        self.settings = settings
        self.num_sources = settings.num_sources
        self.noise_conditional = getattr(settings, "noise_conditional", True)  # score priors always are
        self.cond_features = settings.cond_features

    @property
    def trained_by(self) -> str:
        """``likelihood`` or ``denoising`` (score priors): what :meth:`objective_per_sample` computes."""
        return self.settings.trained_by

    @property
    def hparams(self) -> dict:
        """The settings as keywords: self-describing checkpoints (demucs-style), rebuilt by build_prior."""
        return self.settings.as_dict()

    def log_prob(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        """Exact log-density in nats per clip. x: [B, K, T] -> [B, K].

        Noise-conditional priors need ``sigma`` (a number, [B] or [B, K]) and return log p^σ, the density
        of σ-noised audio; unconditional priors ignore it.
        """
        raise NotImplementedError

    def condition(self, x: torch.Tensor, sigma) -> torch.Tensor | None:
        """The conditioning features for ``sigma`` ([B, K·features, 1]), or None for an unconditional prior."""
        if not self.noise_conditional:
            return None
        if sigma is None:
            raise ValueError(f"{self.name} is noise-conditional: pass sigma to log_prob/score")
        return sigma_features(as_sigma(sigma, x), self.cond_features)

    def check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[1] != self.num_sources:
            raise ValueError(f"{self.name} expects clips shaped [B, {self.num_sources}, T], got {list(x.shape)}")

    def log_prob_per_sample(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        """log p divided by clip length: nats per sample, comparable across lengths. [B, K, T] -> [B, K]."""
        return self.log_prob(x, sigma) / x.shape[-1]

    def nll_per_sample(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        """Negative log-likelihood in nats per sample (the training loss before averaging). -> [B, K]."""
        return -self.log_prob_per_sample(x, sigma)

    def objective_per_sample(self, noisy: torch.Tensor, sigma, clean: torch.Tensor) -> torch.Tensor:
        """The training objective per sample of every source, to minimise: [B, K]. Likelihood priors use
        the NLL of the noisy clip; score priors (``trained_by == "denoising"``) also need the clean one."""
        return self.nll_per_sample(noisy, sigma)

    def score(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        """∇_x log p_k(x_k) for every source at once (the sources do not interact). [B, K, T] -> [B, K, T].

        On CPU the batch is split into passes of at most SCORE_SAMPLES_PER_PASS samples per source: with
        activations that fit in cache, a small WaveNet's score runs several times faster (README, Performance).
        """
        per_pass = x.shape[0] if x.is_cuda else max(1, SCORE_SAMPLES_PER_PASS // x.shape[-1])
        sigmas = as_sigma(sigma, x).split(per_pass) if sigma is not None else [None] * math.ceil(len(x) / per_pass)
        return torch.cat([self.score_pass(chunk, level) for chunk, level in zip(x.detach().split(per_pass), sigmas)])

    def score_pass(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """The score of one pass of :meth:`score`: the gradient of the exact log p, by autograd."""
        with torch.enable_grad():
            x = x.requires_grad_(True)
            return torch.autograd.grad(self.log_prob(x, sigma).sum(), x)[0]

    def initialized(self) -> bool:
        """False until data-dependent initialisation (a flow's ActNorm) has seen its first training batch."""
        return all(bool(flag) for name, flag in self.named_buffers() if name.rsplit(".", 1)[-1] == "initialized")

    def num_parameters(self, per_source: bool = False) -> int:
        total = sum(p.numel() for p in self.parameters())
        return total // self.num_sources if per_source else total
