"""Score-based prior: a noise-conditional network trained by denoising score matching (NCSN/EDM-style).

The network is DiffWave's: a non-causal dilated gated WaveNet stack (kernel 3) with the noise level added
inside every layer, grouped per source like the other priors. It is preconditioned as in EDM (Karras et
al. 2022): the denoiser D(x, σ) = c_skip·x + c_out·F(c_in·x, log σ), with c_skip = σ_d²/(σ² + σ_d²),
c_out = σ·σ_d/√(σ² + σ_d²) and c_in = 1/√(σ² + σ_d²), and the score is (D − x)/σ². An untrained network
(F = 0, the output layer starts at zero) is therefore the exact score of N(0, σ_d²) smoothed at σ.

- ``score(x, σ)`` is one forward pass (no autograd), which makes Langevin steps cheap;
- ``objective_per_sample`` is denoising score matching, ‖σ·s(x + σε, σ) + ε‖²/T, with σ drawn log-uniform
  (or from the ladder) by the training loop: the σ² weighting that makes it the likelihood-weighted loss;
- ``log_prob(x, σ)`` is the diffusion variational *lower bound* on log p^σ(x) (:mod:`models.diffusion_bound`),
  not an exact density: the frontier reports it where the other families report exact log p.
"""
from __future__ import annotations


import torch

from .base import Prior
from .conditioning import CLEAN_SIGMA, as_sigma
from .diffusion_bound import variational_bound
from .layers import WaveNetStack
from .settings import ScoreNetSettings

BOUND_SEED = 20201  # noise of the bound's quadrature: the same for every prior, clip and call


class ScoreNet(Prior):
    """Noise-conditional score network per source, built from :class:`models.settings.ScoreNetSettings`;
    its bound integrates from a clip's σ (at least ``sigma_min``) to ``sigma_max``."""

    name = "scorenet"

    def __init__(self, settings: ScoreNetSettings = ScoreNetSettings()):
        super().__init__(settings)
        if not 0 < settings.sigma_min < settings.sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {settings.sigma_min} and {settings.sigma_max}")
        self.sigma_min, self.sigma_max, self.sigma_data = settings.sigma_min, settings.sigma_max, settings.sigma_data
        self.bound_nodes = settings.bound_nodes
        self.net = WaveNetStack(1, 1, settings, settings.num_sources, causal=False, zero_init_out=True,
                                cond_channels=settings.cond_features)

    @property
    def receptive_field(self) -> int:
        return self.net.receptive_field

    def level(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """σ as [B, K, 1], floored (σ = 0 is not a level a score exists at)."""
        return as_sigma(sigma, x).clamp_min(CLEAN_SIGMA).unsqueeze(-1)

    def denoise(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """D(x, σ): the network's estimate of the clean clip. x: [B, K, T], σ a number, [B] or [B, K]."""
        self.check_input(x)
        level = self.level(x, sigma)
        total = level**2 + self.sigma_data**2
        c_skip, c_out, c_in = self.sigma_data**2 / total, level * self.sigma_data / total.sqrt(), total.rsqrt()
        return c_skip * x + c_out * self.net(c_in * x, self.condition(x, level.squeeze(-1)))

    def score_pass(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """∇_x log p^σ(x) = (D(x, σ) − x)/σ²: one forward pass, no autograd. [B, K, T] -> [B, K, T]."""
        if sigma is None:
            raise ValueError("scorenet needs the noise level sigma for its score")
        return ((self.denoise(x, sigma) - x) / self.level(x, sigma) ** 2).to(x.dtype)

    def objective_per_sample(self, noisy: torch.Tensor, sigma, clean: torch.Tensor) -> torch.Tensor:
        """Denoising score matching per sample, ‖σ·s(x̃, σ) + ε‖²/T = ‖D(x̃, σ) − x‖²/(σ²T). -> [B, K]."""
        level = as_sigma(sigma, noisy).unsqueeze(-1)
        return ((self.denoise(noisy, sigma).float() - clean) / level).pow(2).mean(-1)

    def log_prob(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        """Variational lower bound on log p^σ(x) in nats per clip (σ = None or 0: at sigma_min). -> [B, K]."""
        level = as_sigma(0.0 if sigma is None else sigma, x).clamp_min(self.sigma_min)
        generator = torch.Generator(device=x.device).manual_seed(BOUND_SEED)
        bound = variational_bound(self.score, x, level, self.sigma_max, self.sigma_data, self.bound_nodes, generator)
        return bound.to(torch.float32)
