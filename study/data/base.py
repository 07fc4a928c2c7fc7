"""What every clip source provides, and the error raised for bad audio input."""
from __future__ import annotations

from typing import Protocol

import torch


class DataError(ValueError):
    """Bad input data. The message always names the offending path (or setting) and the problem."""

    def __init__(self, where, problem: str):
        super().__init__(f"{where}: {problem}")
        self.where, self.problem = str(where), problem

    def __reduce__(self):  # rebuilt from both arguments when Ray sends it from a worker to the driver
        return type(self), (self.where, self.problem)


def mix(sources: torch.Tensor) -> torch.Tensor:
    """The study's mixture: the mean of the sources (α_k = 1/K). [..., K, T] -> [..., T]."""
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
