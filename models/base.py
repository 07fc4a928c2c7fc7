"""The one interface every prior implements, and that training, AUROC and Langevin call.

A prior holds K independent per-source densities p_1 … p_K over waveforms (K = 1 for a single-source
prior). Input clips are ``x: [B, K, T]``: row k of every example is scored by prior k. To score one clip
under *every* prior (cross-likelihoods, AUROC), expand it to ``[B, K, T]``.
"""
from __future__ import annotations

import math

import torch
from torch import nn


SCORE_SAMPLES_PER_PASS = 16_384


class Prior(nn.Module):
    """Base class: subclasses implement :meth:`log_prob` and store their constructor kwargs in ``hparams``."""

    name: str = ""

    def __init__(self, num_sources: int, **hparams):
        super().__init__()
        self.num_sources = num_sources
        # Self-describing checkpoints (demucs-style): rebuild with build_prior(name, **hparams).
        self.hparams = {"num_sources": num_sources, **hparams}

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log-density in nats per clip. x: [B, K, T] -> [B, K]."""
        raise NotImplementedError

    def check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[1] != self.num_sources:
            raise ValueError(f"{self.name} expects clips shaped [B, {self.num_sources}, T], got {list(x.shape)}")

    def log_prob_per_sample(self, x: torch.Tensor) -> torch.Tensor:
        """log p divided by clip length: nats per sample, comparable across lengths. [B, K, T] -> [B, K]."""
        return self.log_prob(x) / x.shape[-1]

    def nll_per_sample(self, x: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood in nats per sample (the training loss before averaging). -> [B, K]."""
        return -self.log_prob_per_sample(x)

    def bits_per_sample(self, x: torch.Tensor) -> torch.Tensor:
        """-log2 p(x) / T. -> [B, K]."""
        return self.nll_per_sample(x) / math.log(2.0)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """∇_x log p_k(x_k) for every source at once (the sources do not interact). [B, K, T] -> [B, K, T].

        On CPU the batch is split into passes of at most SCORE_SAMPLES_PER_PASS samples per source: with
        activations that fit in cache, a small WaveNet's score runs 6× faster (8 × 14 704 samples, 2 cores).
        """
        per_pass = x.shape[0] if x.is_cuda else max(1, SCORE_SAMPLES_PER_PASS // x.shape[-1])
        grads = []
        with torch.enable_grad():
            for chunk in x.detach().split(per_pass):
                chunk = chunk.requires_grad_(True)
                grads.append(torch.autograd.grad(self.log_prob(chunk).sum(), chunk)[0])
        return torch.cat(grads)

    def num_parameters(self, per_source: bool = False) -> int:
        total = sum(p.numel() for p in self.parameters())
        return total // self.num_sources if per_source else total
