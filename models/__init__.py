"""Generative priors over raw audio. Plain ``nn.Module``s: nothing here knows about Ray, MLflow or devices.

    prior = build_prior("flowavenet", preset="toy", num_sources=4)
    log_p = prior.log_prob(x)          # x: [B, K, T] -> [B, K] nats per clip
    save_prior(prior, "p.pt"); prior = load_prior("p.pt")

Names are imported on first use, so that validation can read :mod:`models.catalog` (names, presets,
settings) without importing torch.
"""
from __future__ import annotations

import importlib

from .catalog import PRESETS, PRIOR_NAMES, prior_defaults, prior_setting, prior_settings, trained_by

_HOMES = {"Prior": "base", "FloWaveNet": "flowavenet", "FloWaveNetNC": "flowavenet", "ScoreNet": "scorenet",
          "WaveNet": "wavenet", "WaveNetNC": "wavenet", "select_source": "grouping", "stack_sources": "grouping",
          **{name: "registry" for name in ("PRIORS", "build_prior", "load_prior", "save_prior", "prior_checkpoint",
                                           "prior_from_checkpoint")}}


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module 'models' has no attribute {name!r}")


__all__ = ["PRESETS", "PRIOR_NAMES", "prior_defaults", "prior_setting", "prior_settings", "trained_by", *_HOMES]
