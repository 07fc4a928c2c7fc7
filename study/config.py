"""Validated configuration of a trial (pydantic). Every section forbids unknown keys, so a typo is an error
that names its field path instead of a silently ignored setting."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models import PRESETS, PRIORS


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class DataConfig(Section):
    """Where clips come from. ``toy`` generates oscillators; ``stems`` reads ``root/<split>/<track>/<source>.wav``."""

    kind: Literal["toy", "stems"] = "toy"
    sources: list[str] | None = None  # default: the kind's standard sources
    seed: int = 0
    # toy
    train_size: int = Field(5000, ge=1)
    test_size: int = Field(1500, ge=1)
    train_amplitude: float | None = None  # None: A ~ U[0.8, 1) per clip (paper)
    eval_amplitude: float | None = 1.0  # paper evaluated at A = 1
    # stems
    root: Path | None = None
    train_split: str = "train"
    test_split: str = "test"
    sample_rate: int = Field(14_700, ge=1000)
    channel: Literal["left", "mean"] = "left"
    silence_db: float | None = -40.0
    cache_dir: Path | None = None

    @model_validator(mode="after")
    def _stems_need_root(self):
        if self.kind == "stems" and self.root is None:
            raise ValueError("data.root is required when data.kind is 'stems'")
        return self


class PriorConfig(Section):
    """Which prior and how big: a registry name, an optional named preset, and keyword overrides."""

    name: str = "flowavenet"
    preset: str | None = "small"
    hparams: dict[str, int | float | str | bool] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known(self):
        if self.name not in PRIORS:
            raise ValueError(f"unknown prior {self.name!r}; choose one of {sorted(PRIORS)}")
        if self.preset is not None and self.preset not in PRESETS[self.name]:
            raise ValueError(f"unknown preset {self.preset!r} for {self.name}; choose one of {sorted(PRESETS[self.name])}")
        return self


class NoiseConfig(Section):
    """Training noise: x + σ·ε (``fixed``) or x + σ·u·ε with u ~ U(0, 1) per crop (``uniform``, the paper's)."""

    sigma: float = Field(0.0, ge=0)
    mode: Literal["fixed", "uniform"] = "fixed"
    clip: bool = False  # clip the noisy clip to [-1, 1] (the paper did)


class TrainingConfig(Section):
    steps: int = Field(1000, ge=0)
    batch_size: int = Field(8, ge=1)
    crop: int = Field(4096, ge=16)
    lr: float = Field(1e-3, gt=0)
    lr_decay: float = Field(0.6, gt=0, le=1)
    milestones: list[float] = Field(default_factory=lambda: [0.5, 0.6, 0.7, 0.8, 0.9])  # fractions of steps
    grad_clip: float | None = Field(1.0, gt=0)  # per-source gradient-norm clipping
    noise: NoiseConfig = Field(default_factory=NoiseConfig)
    seed: int = 0
    log_every: int = Field(100, ge=1)
    checkpoint_every: int = Field(500, ge=1)

    @model_validator(mode="after")
    def _milestones_are_fractions(self):
        if any(not 0 < m < 1 for m in self.milestones):
            raise ValueError("training.milestones are fractions of the steps, each in (0, 1)")
        return self
