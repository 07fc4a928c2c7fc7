"""FloWaveNet (Kim et al. 2019), unconditional, as a prior over raw waveforms.

Per block: squeeze ×2 (time -> channels), then ``flows`` × [ActNorm -> affine coupling -> channel swap].
After every ``split_every``-th block (except the last), half of the channels leave the flow and are scored
by a learned Gaussian conditioned on the other half (multi-scale architecture of Glow/RealNVP).

The log-density is exact: log p(x) = Σ log N(latents) + log|det ∂z/∂x|, with the log-determinant weighted 1
(the published code dropped it from the reported likelihood and weighted it 1/4 in training).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .base import Prior
from .layers import WaveNetStack
from .settings import FloWaveNetNCSettings, FloWaveNetSettings

LOG_2PI = math.log(2 * math.pi)


def gaussian_log_prob(z: torch.Tensor, mean: torch.Tensor, log_sd: torch.Tensor) -> torch.Tensor:
    """Σ over channels and time of log N(z; mean, exp(log_sd)²). [B, K, C, T] -> [B, K]."""
    return (-0.5 * ((z - mean) * torch.exp(-log_sd)) ** 2 - log_sd - 0.5 * LOG_2PI).sum((2, 3))


def zero_conv(c_in: int, c_out: int, groups: int) -> nn.Conv1d:
    """A grouped 1×1 convolution that starts at zero (conditioning starts as "no effect")."""
    conv = nn.Conv1d(c_in, c_out, 1, groups=groups)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def squeeze(x: torch.Tensor) -> torch.Tensor:
    """[B, K, C, T] -> [B, K, 2C, T/2]: pairs of neighbouring samples become channels (volume preserving)."""
    b, k, c, t = x.shape
    return x.view(b, k, c, t // 2, 2).transpose(3, 4).reshape(b, k, 2 * c, t // 2)


def unsqueeze(x: torch.Tensor) -> torch.Tensor:
    b, k, c, t = x.shape
    return x.view(b, k, c // 2, 2, t).transpose(3, 4).reshape(b, k, c // 2, 2 * t)


def swap_halves(x: torch.Tensor) -> torch.Tensor:
    """Exchange the two channel halves of every source, so the next coupling transforms the other half."""
    a, b = x.chunk(2, dim=2)
    return torch.cat([b, a], dim=2)


class ActNorm(nn.Module):
    """Per-channel affine y = (x + loc)·exp(log_scale), initialised from the first training batch to give
    zero mean and unit variance per channel (Glow)."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(groups * channels))
        self.log_scale = nn.Parameter(torch.zeros(groups * channels))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def _initialize(self, x: torch.Tensor) -> None:
        flat = x.transpose(0, 2).reshape(x.shape[2], x.shape[1], -1)  # [C, K, B*T]
        mean = flat.mean(-1).t().reshape(-1)
        std = flat.std(-1, unbiased=False).t().reshape(-1)
        self.loc.copy_(-mean)
        self.log_scale.copy_(-torch.log(std + 1e-6))
        self.initialized.fill_(True)

    def _view(self, p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return p.view(1, x.shape[1], x.shape[2], 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training and not self.initialized:
            self._initialize(x)
        y = (x + self._view(self.loc, x)) * torch.exp(self._view(self.log_scale, x))
        logdet = x.shape[3] * self.log_scale.view(x.shape[1], x.shape[2]).sum(1)
        return y, logdet.expand(x.shape[0], -1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * torch.exp(-self._view(self.log_scale, y)) - self._view(self.loc, y)


class AffineCoupling(nn.Module):
    """x = (a, b) -> (a, b·exp(log_s(a)) + t(a)) with (log_s, t) from a non-causal WaveNet over a."""

    # log_s is squashed to ±MAX_LOG_SCALE by a tanh (still a bijection, exact log-det) for stable training.
    MAX_LOG_SCALE = 3.0

    def __init__(self, channels: int, shape, groups: int, cond_channels: int = 0):
        super().__init__()
        self.net = WaveNetStack(channels // 2, channels, shape, groups, causal=False, zero_init_out=True,
                                cond_channels=cond_channels)

    def _scale_shift(self, a: torch.Tensor, cond) -> tuple[torch.Tensor, torch.Tensor]:
        b, k, c, t = a.shape
        raw_log_s, shift = self.net(a.reshape(b, k * c, t), cond).view(b, k, 2 * c, t).chunk(2, dim=2)
        return self.MAX_LOG_SCALE * torch.tanh(raw_log_s / self.MAX_LOG_SCALE), shift

    def forward(self, x: torch.Tensor, cond=None) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = x.chunk(2, dim=2)
        log_s, shift = self._scale_shift(a, cond)
        return torch.cat([a, b * torch.exp(log_s) + shift], dim=2), log_s.sum((2, 3))

    def inverse(self, y: torch.Tensor, cond=None) -> torch.Tensor:
        a, b = y.chunk(2, dim=2)
        log_s, shift = self._scale_shift(a, cond)
        return torch.cat([a, (b - shift) * torch.exp(-log_s)], dim=2)


class SplitPrior(nn.Module):
    """Learned Gaussian for the channels that leave the flow, conditioned on the channels that stay."""

    def __init__(self, channels: int, groups: int, cond_channels: int = 0):
        super().__init__()
        self.conv = nn.Conv1d(groups * channels // 2, groups * channels, 3, padding=1, groups=groups)
        self.cond = zero_conv(groups * cond_channels, groups * channels, groups) if cond_channels else None
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, kept: torch.Tensor, cond=None) -> tuple[torch.Tensor, torch.Tensor]:
        b, k, c, t = kept.shape
        params = self.conv(kept.reshape(b, k * c, t))
        if self.cond is not None:
            params = params + self.cond(cond)  # σ-dependent offsets, broadcast over time
        params = params.to(kept.dtype)  # a bf16-autocast conv's output: the density is evaluated in float32
        mean, log_sd = params.view(b, k, 2 * c, t).chunk(2, dim=2)
        return mean, log_sd


class TopPrior(nn.Module):
    """Learned Gaussian of the latents that reach the top, per channel; shifted by σ when conditional."""

    def __init__(self, channels: int, groups: int, cond_channels: int = 0):
        super().__init__()
        self.mean = nn.Parameter(torch.zeros(groups * channels))
        self.log_sd = nn.Parameter(torch.zeros(groups * channels))
        self.cond = zero_conv(groups * cond_channels, groups * 2 * channels, groups) if cond_channels else None

    def forward(self, shape, cond=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log_sd) broadcastable to latents of ``shape`` = [B, K, C, T]."""
        b, k, c, _ = shape
        mean, log_sd = self.mean.view(1, k, c, 1), self.log_sd.view(1, k, c, 1)
        if self.cond is not None:
            d_mean, d_log_sd = self.cond(cond).to(mean.dtype).view(b, k, 2 * c, 1).chunk(2, dim=2)
            mean, log_sd = mean + d_mean, log_sd + d_log_sd
        return mean, log_sd


class FloWaveNet(Prior):
    """Normalising-flow prior built from :class:`models.settings.FloWaveNetSettings`. Input length must be
    divisible by 2**blocks."""

    name = "flowavenet"

    def __init__(self, settings: FloWaveNetSettings = FloWaveNetSettings()):
        super().__init__(settings)
        k, channels = settings.num_sources, 1
        e = settings.cond_features if settings.noise_conditional else 0
        self.blocks = nn.ModuleList()
        self.split_priors = nn.ModuleDict()
        for index in range(settings.blocks):
            channels *= 2
            self.blocks.append(nn.ModuleList(
                nn.ModuleList([ActNorm(channels, k), AffineCoupling(channels, settings, k, e)])
                for _ in range(settings.flows)))
            if (index + 1) % settings.split_every == 0 and index < settings.blocks - 1:
                self.split_priors[str(index)] = SplitPrior(channels, k, e)
                channels //= 2
        self.top = TopPrior(channels, k, e)
        self.length_multiple = 2**settings.blocks

    def _check_length(self, t: int) -> None:
        if t % self.length_multiple:
            raise ValueError(f"FloWaveNet with {len(self.blocks)} blocks needs a clip length divisible by "
                             f"{self.length_multiple}, got {t}")

    def encode(self, x: torch.Tensor, sigma=None) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """x: [B, K, T] -> (latents [B, K, C_i, T_i] in split order, log|det J| [B, K], Σ log p(latents) [B, K])."""
        self.check_input(x)
        self._check_length(x.shape[-1])
        cond = self.condition(x, sigma)
        h = x.unsqueeze(2)
        logdet = x.new_zeros(x.shape[:2])
        log_pz = x.new_zeros(x.shape[:2])
        latents = []
        for index, block in enumerate(self.blocks):
            h = squeeze(h)
            for actnorm, coupling in block:
                h, ld_norm = actnorm(h)
                h, ld_coupling = coupling(h, cond)
                h = swap_halves(h)
                logdet = logdet + ld_norm + ld_coupling
            if str(index) in self.split_priors:
                h, z = h.chunk(2, dim=2)
                log_pz = log_pz + gaussian_log_prob(z, *self.split_priors[str(index)](h, cond))
                latents.append(z)
        log_pz = log_pz + gaussian_log_prob(h, *self.top(h.shape, cond))
        latents.append(h)
        return latents, logdet, log_pz

    def log_prob(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        _, logdet, log_pz = self.encode(x, sigma)
        return log_pz + logdet

    def decode(self, top: torch.Tensor, split_latent, cond=None) -> torch.Tensor:
        """Run the flow backwards from the top latent. ``split_latent(index, kept)`` returns the latent that
        left at split ``index`` (given the channels that stayed). Returns x: [B, K, T]."""
        h = top
        for index in reversed(range(len(self.blocks))):
            if str(index) in self.split_priors:
                h = torch.cat([h, split_latent(index, h)], dim=2)
            for actnorm, coupling in reversed(self.blocks[index]):
                h = actnorm.inverse(coupling.inverse(swap_halves(h), cond))
            h = unsqueeze(h)
        return h.squeeze(2)

    def inverse(self, latents: list[torch.Tensor], sigma=None) -> torch.Tensor:
        """Exact inverse of :meth:`encode`'s latents."""
        splits = dict(zip(sorted(map(int, self.split_priors)), latents[:-1]))
        cond = self.condition(latents[-1].new_empty(latents[-1].shape[:2]), sigma)
        return self.decode(latents[-1], lambda index, kept: splits[index], cond)

    @torch.no_grad()
    def sample(self, n: int, length: int, temperature: float = 1.0, sigma=None) -> torch.Tensor:
        """Draw n clips of ``length`` samples from every source prior: [n, K, length]."""
        self._check_length(length)
        channels = self.top.mean.numel() // self.num_sources
        shape = (n, self.num_sources, channels, length // self.length_multiple)
        cond = self.condition(self.top.mean.new_empty(shape[:2]), sigma)
        mean, log_sd = self.top(shape, cond)
        top = mean + temperature * torch.exp(log_sd) * torch.randn(shape, device=mean.device)

        def split_latent(index: int, kept: torch.Tensor) -> torch.Tensor:
            mean, log_sd = self.split_priors[str(index)](kept, cond)
            return mean + temperature * torch.exp(log_sd) * torch.randn_like(mean)

        return self.decode(top, split_latent, cond)


class FloWaveNetNC(FloWaveNet):
    """σ-conditional FloWaveNet: log_prob(x, σ) is the exact density of σ-noised audio at every σ."""

    name = "flowavenet_nc"

    def __init__(self, settings: FloWaveNetNCSettings = FloWaveNetNCSettings()):
        super().__init__(settings)
