"""Out-of-distribution scores that correct raw likelihood for input complexity (Serrà et al. 2020).

Raw log p favours simple clips (silence, low frequencies) under every prior: the likelihood paradox. After
Serrà et al. (2020), the complexity-corrected score is a likelihood ratio against a generic lossless
coder: score_k(x) = log p_k(x) − log p_FLAC(x), where log p_FLAC(x) = −L(x)·ln 2 − T·ln Δ is the density
that the FLAC code length L(x) (bits, 16-bit PCM, encoded with soundfile) implies for a clip of T samples
on the quantisation grid Δ = 2/2¹⁶. A clip scores high when the prior explains it better than a compressor,
which simple clips no longer do for free.

The background score (after Ren et al. 2019) is the same kind of ratio against a *background prior*: one
prior of the same architecture trained on the clips of all sources pooled, which captures what is generic
to the data (level, spectral slope) but not what tells the sources apart.
"""
from __future__ import annotations

import io
import math

import numpy as np
import soundfile as sf
import torch

PCM_STEP = 2.0 / 2**16  # the 16-bit quantisation step over [-1, 1]


def flac_bits(clip: np.ndarray, sample_rate: int) -> int:
    """FLAC code length in bits of one mono clip (clipped to [-1, 1], 16-bit PCM), container included."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(clip, -1.0, 1.0).astype(np.float32), sample_rate, format="FLAC", subtype="PCM_16")
    return 8 * buffer.getbuffer().nbytes


def flac_log_density(clips: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """log p_FLAC per sample (nats) of every clip. clips: [N, K, T] -> [N, K]."""
    n, k, t = clips.shape
    flat = clips.reshape(n * k, t).double().numpy()
    bits = torch.tensor([flac_bits(clip, sample_rate) for clip in flat], dtype=torch.float64)
    return (-(bits * math.log(2)) / t - math.log(PCM_STEP)).view(n, k).float()


def likelihood_ratio(loglik: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """log p_k(x) − log p_ref(x) per sample. loglik: [N, K_prior, K_source]; reference: [N, K_source]."""
    return loglik - reference.unsqueeze(1)


class PooledSources:
    """A clip source whose one "source" draws each training clip from a random source of ``data``."""

    sources = ("pooled",)

    def __init__(self, data):
        self.data = data

    def training_batch(self, generator: torch.Generator, batch_size: int) -> torch.Tensor:
        clips = self.data.training_batch(generator, batch_size)  # [B, K, T]
        pick = torch.randint(clips.shape[1], (batch_size,), generator=generator)
        return clips[torch.arange(batch_size), pick].unsqueeze(1)
