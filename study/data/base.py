"""What every clip source provides: the mixture, the mixing weights and the one
normalisation that makes σ mean the same thing on every dataset."""
from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

# How each source's waveform is scaled before σ-noise is added. ``rms`` (the default): unit RMS over the
# source's audible part, so σ is noise relative to the source (σ = 0.077 is 22 dB SNR on every dataset).
# ``peak``: peak 1, the published protocol; σ is then absolute and means 2-4x more relative noise on real
# stems (RMS 0.27-0.34 at peak 1) than on the toy waves (0.52-0.9).
NORMALISATIONS = ("rms", "peak")
ACTIVITY_WINDOW = 1024  # samples per window when finding a stem's audible part
ACTIVITY_DB = -40.0  # windows this far below the stem's loudest window are silence, not part of its level


def normalise(signal: np.ndarray, mode: str) -> np.ndarray:
    """Remove the DC offset, then scale to unit RMS over the audible windows (``rms``) or to peak 1
    (``peak``). An all-zero stem stays zero. Measuring RMS over audible windows only keeps a part that
    plays for half a track from being boosted by the half where it rests."""
    signal = signal - signal.mean()
    if mode == "peak":
        scale = np.abs(signal).max()
    else:
        usable = len(signal) // ACTIVITY_WINDOW * ACTIVITY_WINDOW or len(signal)
        frames = signal[:usable].reshape(-1, min(ACTIVITY_WINDOW, usable)).astype(np.float64)
        power = np.mean(frames ** 2, axis=1)
        audible = power >= power.max() * 10 ** (ACTIVITY_DB / 10)
        scale = np.sqrt(power[audible].mean()) if power.max() > 0 else 0.0
    return (signal / scale).astype(np.float32) if scale > 0 else signal.astype(np.float32)


def mixing_weights(num_sources: int) -> torch.Tensor:
    """The study's mixing weights α_k = 1/K: a mixture is the mean of its sources (:func:`mix`)."""
    return torch.full((num_sources,), 1.0 / num_sources)


def mix(sources: torch.Tensor) -> torch.Tensor:
    """The study's mixture Σ_k α_k s_k with α = :func:`mixing_weights`, i.e. the mean of the sources
    (computed as the mean: the same bits as every earlier result). [..., K, T] -> [..., T]."""
    return sources.mean(dim=-2)


class ClipSource(Protocol):
    """A split of per-source clips. Training draws random crops; evaluation uses a fixed crop list."""

    sources: tuple[str, ...]
    sample_rate: int
    length: int

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """{"sources": [K, T], "mixture": [T]}: the index-th fixed (evaluation) crop."""

    def clips(self, indices) -> torch.Tensor:
        """Fixed crops, batched: [N, K, T]."""

    def training_batch(self, generator: torch.Generator, batch_size: int) -> torch.Tensor:
        """Random training crops drawn with ``generator``: [B, K, T]."""

    def with_length(self, length: int, max_eval_crops: int | None = None) -> "ClipSource":
        """The same split cut into crops of ``length``, without loading it again."""
