"""Toy oscillators of the published study (Frank & Ilse 2020), generated on the fly.

Four sources (sin, square, saw, triangle) at 14 700 Hz. Each item draws, per source, a piano key
κ ~ {0.1, 0.2, …, 64.9} (f = 440·2^((κ−49)/12), 26–1102 Hz, log-uniform), an integer period P = round(sr/f),
an integer phase in [0, P) and an amplitude A ~ U[0.8, 1) (or a fixed A for evaluation). With the default
``normalise="rms"`` each waveform is scaled to RMS A (the sine's peak is then 1.41·A), so σ is relative to the
source as on stems; ``normalise="peak"`` gives the paper's peak-A waves. An item's
parameters depend only on (seed, split, index), so train, validation and test draw from disjoint random
streams and any item can be regenerated without the others.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch.utils.data import Dataset

from study.config.schema import DataConfig

from .base import mix
from .errors import DataError
from .layouts import TOY_SOURCES, source_names

TOY_SAMPLE_RATE = 14_700
ITEM_LENGTH = 48_000  # samples per generated item (paper); training crops start anywhere in it
SPLIT_CODES = {"train": 0, "valid": 1, "test": 2}
# RMS of each unit-peak waveform over a period (of the continuous wave; integer periods differ by < 1 %)
UNIT_PEAK_RMS = {"sin": math.sqrt(0.5), "square": 1.0, "saw": math.sqrt(1 / 3), "triangle": math.sqrt(1 / 3)}


def oscillate(kind: str, u: torch.Tensor) -> torch.Tensor:
    """Waveform value in [-1, 1] at phase fraction u ∈ [0, 1)."""
    if kind == "sin":
        return torch.sin(2 * math.pi * u)
    if kind == "square":  # 50 % duty cycle
        return torch.where(u < 0.5, 1.0, -1.0)
    if kind == "saw":  # rising
        return 2 * u - 1
    if kind == "triangle":  # symmetric
        return 1 - 4 * (u - 0.5).abs()
    raise DataError("toy.sources", f"unknown oscillator {kind!r}; choose from {TOY_SOURCES}")


class ToyOscillators(Dataset):
    """One split of toy items; each index is one item of ``ITEM_LENGTH`` samples (or ``length`` if longer),
    cropped to ``length``.

    Args:
        cfg: the data section (:class:`study.config.schema.DataConfig`): its seed, sources, normalisation,
            and the split's size and amplitude (``train_size``/``train_amplitude`` for ``train``, the test
            ones otherwise; an amplitude of None draws A ~ U[0.8, 1) per source and item).
        split: ``train``, ``valid`` or ``test``; with the seed and index it fixes every item.
        length: crop length T returned (paper: 16 384 flow / 3 075 WaveNet training, 4 000 evaluation).
    """

    def __init__(self, cfg: DataConfig, split: str, length: int):
        if split not in SPLIT_CODES:
            raise DataError("toy.split", f"unknown split {split!r}; choose from {sorted(SPLIT_CODES)}")
        train = split == "train"
        self.split, self.length, self.seed = split, length, cfg.seed
        self.size = cfg.train_size if train else cfg.test_size
        self.amplitude = cfg.train_amplitude if train else cfg.eval_amplitude
        self.item_length = max(ITEM_LENGTH, length)
        self.sources, self.normalise = source_names(cfg), cfg.normalise
        self.sample_rate = TOY_SAMPLE_RATE
        for kind in self.sources:
            oscillate(kind, torch.zeros(1))  # fail early on an unknown name
        self._scales = torch.tensor([1 / UNIT_PEAK_RMS[kind] if self.normalise == "rms" else 1.0
                                     for kind in self.sources])
        self._periods, self._phases, self._amplitudes = self._draw_parameters()

    def _draw_parameters(self):
        k = len(self.sources)
        periods = np.empty((self.size, k), dtype=np.int64)
        phases = np.empty((self.size, k), dtype=np.int64)
        amplitudes = np.empty((self.size, k), dtype=np.float32)
        for index in range(self.size):
            rng = np.random.default_rng([self.seed, SPLIT_CODES[self.split], index])
            keys = rng.integers(1, 650, size=k) / 10.0
            periods[index] = np.rint(self.sample_rate / (440.0 * 2.0 ** ((keys - 49.0) / 12.0)))
            phases[index] = rng.integers(0, periods[index])
            amplitudes[index] = rng.uniform(0.8, 1.0, size=k)
        if self.amplitude is not None:
            amplitudes[:] = self.amplitude
        return torch.from_numpy(periods), torch.from_numpy(phases), torch.from_numpy(amplitudes)

    def __len__(self) -> int:
        return self.size

    def frequencies(self, indices) -> torch.Tensor:
        """Exact frequencies in Hz (after period rounding) of items ``indices``: [N, K]."""
        return self.sample_rate / self._periods[torch.as_tensor(indices)].double()

    def clips(self, indices, offsets=None) -> torch.Tensor:
        """Items ``indices`` cropped at ``offsets`` (default 0): [N, K, T], vectorised over items and sources."""
        indices = torch.as_tensor(indices, dtype=torch.long)
        offsets = torch.zeros_like(indices) if offsets is None else torch.as_tensor(offsets, dtype=torch.long)
        period = self._periods[indices].unsqueeze(-1)  # [N, K, 1]
        n = torch.arange(self.length).view(1, 1, -1) + offsets.view(-1, 1, 1) + self._phases[indices].unsqueeze(-1)
        u = (n % period).float() / period.float()  # integer arithmetic: the phase is exact
        waves = torch.stack([oscillate(kind, u[:, j]) for j, kind in enumerate(self.sources)], dim=1)
        return waves * (self._amplitudes[indices] * self._scales).unsqueeze(-1)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sources = self.clips([index])[0]
        return {"sources": sources, "mixture": mix(sources)}

    def training_batch(self, generator: torch.Generator, batch_size: int) -> torch.Tensor:
        indices = torch.randint(0, self.size, (batch_size,), generator=generator)
        offsets = torch.randint(0, self.item_length - self.length + 1, (batch_size,), generator=generator)
        return self.clips(indices, offsets)

    def with_length(self, length: int, max_eval_crops: int | None = None) -> "ToyOscillators":
        """The same items cropped to ``length`` (items are generated, so nothing is loaded again)."""
        other = copy.copy(self)  # items depend on (seed, split, index) only: nothing is drawn again
        other.length, other.item_length = length, max(self.item_length, length)
        return other
