"""Autoregressive WaveNet prior with an exact, normalised density over the waveform value.

log p(x) = Σ_t log p(x_t | x_<t). Causality is structural: the input is shifted right by one sample and
every convolution pads on the left only, so the prediction for position t never sees x_t or later samples
(the published model's first convolution saw the very sample it predicted).

Output heads (``head``):
- ``logistic`` (default): a mixture of ``mixtures`` logistics, a continuous density differentiable in x, as
  Langevin dynamics need. ``support="real"`` normalises over the real line (noisy, unclipped audio and
  Langevin iterates may leave [-1, 1]); ``support="unit"`` truncates and renormalises it to [-1, 1].
- ``mulaw``: the paper's 256-way categorical over μ-law bins (torchaudio's μ-law transform), turned into a
  density on [-1, 1] by dividing each bin's probability by the bin's width in x, so both heads report nats
  of the same kind. Its gradient in x is zero almost everywhere (useless for Langevin; kept for comparison).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
import torchaudio.functional as AF

from .base import Prior
from .layers import WaveNetStack
from .settings import WaveNetNCSettings, WaveNetSettings

HEADS = ("logistic", "mulaw")
SUPPORTS = ("real", "unit")


class WaveNet(Prior):
    """Causal WaveNet prior, built from :class:`models.settings.WaveNetSettings`."""

    name = "wavenet"

    def __init__(self, settings: WaveNetSettings = WaveNetSettings()):
        super().__init__(settings)
        if settings.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {settings.head!r}")
        if settings.support not in SUPPORTS:
            raise ValueError(f"support must be one of {SUPPORTS}, got {settings.support!r}")
        self.head, self.mixtures, self.support = settings.head, settings.mixtures, settings.support
        self.min_log_scale = settings.min_log_scale
        self.bins = settings.quantization_channels
        out = 3 * settings.mixtures if settings.head == "logistic" else self.bins
        self.net = WaveNetStack(1, out, settings, settings.num_sources, causal=True,
                                cond_channels=self.cond_features if self.noise_conditional else 0)
        if settings.head == "mulaw":
            # Bin edges in x: μ-law decoding of the half-integer bin boundaries, clipped to [-1, 1].
            edges = AF.mu_law_decoding(torch.arange(self.bins + 1) - 0.5, self.bins)
            self.register_buffer("log_bin_width", torch.log(edges.clamp(-1, 1).diff()), persistent=False)

    @property
    def receptive_field(self) -> int:
        return self.net.receptive_field

    def predict(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        """Distribution parameters for every position from strictly earlier samples.

        x: [B, K, T] -> [B, K, P, T], P = 3·mixtures (logit, mean, log-scale) or the number of μ-law bins.
        """
        self.check_input(x)
        shifted = F.pad(x, (1, -1))  # position t sees x_{<t} only
        out = self.net(shifted, self.condition(x, sigma))
        return out.view(x.shape[0], self.num_sources, -1, x.shape[-1])

    def log_prob_per_position(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        """log p(x_t | x_<t) in nats. [B, K, T] -> [B, K, T]."""
        params = self.predict(x, sigma)
        if self.head == "mulaw":
            return self._mulaw_log_density(params, x)
        return self._logistic_log_density(params, x)

    def log_prob(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        return self.log_prob_per_position(x, sigma).sum(-1)

    def _logistic_components(self, params: torch.Tensor):
        logits, means, log_scales = params.chunk(3, dim=2)
        return F.log_softmax(logits, dim=2), means, log_scales.clamp(min=self.min_log_scale)

    def _logistic_log_density(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        log_weights, means, log_scales = self._logistic_components(params)
        u = (x.unsqueeze(2) - means) * torch.exp(-log_scales)
        # log pdf of a logistic: -u - log s - 2·softplus(-u)
        log_pdf = -u - log_scales - 2 * F.softplus(-u)
        log_density = torch.logsumexp(log_weights + log_pdf, dim=2)
        if self.support == "unit":
            mass = torch.sigmoid((1 - means) * torch.exp(-log_scales)) - torch.sigmoid((-1 - means) * torch.exp(-log_scales))
            log_density = log_density - torch.logsumexp(log_weights + torch.log(mass.clamp_min(1e-30)), dim=2)
        return log_density

    def _mulaw_log_density(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        bins = self.quantize(x)
        log_probs = F.log_softmax(logits, dim=2).gather(2, bins.unsqueeze(2)).squeeze(2)
        return log_probs - self.log_bin_width[bins]

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """μ-law bin index of every sample (inputs outside [-1, 1] fall into the edge bins)."""
        return AF.mu_law_encoding(x.clamp(-1, 1), self.bins).long()

    def bin_log_probs(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        """μ-law head only: log-probabilities of every bin at every position. -> [B, K, bins, T]."""
        if self.head != "mulaw":
            raise ValueError("bin_log_probs is defined for the mulaw head only")
        return F.log_softmax(self.predict(x, sigma), dim=2)


class WaveNetNC(WaveNet):
    """σ-conditional WaveNet: log_prob(x, σ) is the exact density of σ-noised audio at every σ."""

    name = "wavenet_nc"

    def __init__(self, settings: WaveNetNCSettings = WaveNetNCSettings()):
        super().__init__(settings)
