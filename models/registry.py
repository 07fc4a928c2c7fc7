"""Building, saving and loading priors by registry name (the torch half of :mod:`models.catalog`)."""
from __future__ import annotations

from pathlib import Path

import torch

from .base import Prior
from .catalog import prior_settings
from .flowavenet import FloWaveNet, FloWaveNetNC
from .scorenet import ScoreNet
from .settings import SETTINGS
from .wavenet import WaveNet, WaveNetNC

PRIORS: dict[str, type[Prior]] = {"flowavenet": FloWaveNet, "wavenet": WaveNet,
                                  "flowavenet_nc": FloWaveNetNC, "wavenet_nc": WaveNetNC, "scorenet": ScoreNet}


def build_prior(name: str, preset: str | None = None, **hparams) -> Prior:
    """Build a prior by registry name, optionally starting from a named preset; ``hparams`` override it."""
    return PRIORS[name](SETTINGS[name].of(**prior_settings(name, preset, **hparams)))


def prior_checkpoint(prior: Prior) -> dict:
    """A self-describing, weights-only-loadable record of a prior: registry name, kwargs and weights."""
    return {"name": prior.name, "hparams": dict(prior.hparams), "state_dict": prior.state_dict()}


def prior_from_checkpoint(record: dict) -> Prior:
    prior = build_prior(record["name"], **record["hparams"])
    prior.load_state_dict(record["state_dict"])
    return prior


def save_prior(prior: Prior, path: str | Path) -> None:
    torch.save(prior_checkpoint(prior), path)


def load_prior(path: str | Path) -> Prior:
    """Rebuild a prior saved by :func:`save_prior` (or a training checkpoint) without any config file."""
    record = torch.load(path, map_location="cpu", weights_only=True)
    return prior_from_checkpoint(record.get("prior", record))
