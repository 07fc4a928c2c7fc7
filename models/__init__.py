"""Generative priors over raw audio. Plain ``nn.Module``s: nothing here knows about Ray, MLflow or devices.

    prior = build_prior("flowavenet", preset="toy", num_sources=4)
    log_p = prior.log_prob(x)          # x: [B, K, T] -> [B, K] nats per clip
    save_prior(prior, "p.pt"); prior = load_prior("p.pt")
"""
from __future__ import annotations

import inspect
from pathlib import Path

import torch

from .base import Prior
from .flowavenet import FloWaveNet, FloWaveNetNC
from .scorenet import ScoreNet
from .grouping import select_source, stack_sources
from .wavenet import WaveNet, WaveNetNC

PRIORS: dict[str, type[Prior]] = {"flowavenet": FloWaveNet, "wavenet": WaveNet,
                                  "flowavenet_nc": FloWaveNetNC, "wavenet_nc": WaveNetNC, "scorenet": ScoreNet}

# Named sizes. "toy"/"musdb" follow the published study (Frank & Ilse 2020); "small"/"tiny" are for CPU work.
PRESETS: dict[str, dict[str, dict]] = {
    "flowavenet": {
        "toy": dict(blocks=4, flows=6, layers=10, width=32),
        "musdb": dict(blocks=8, flows=6, layers=10, width=48),
        "small": dict(blocks=4, flows=4, layers=6, width=24),
        "tiny": dict(blocks=2, flows=2, layers=3, width=8),
    },
    "wavenet": {
        "toy": dict(stacks=3, layers=10, width=64, kernel_size=2),
        "musdb": dict(stacks=3, layers=10, width=64, kernel_size=2),
        "small": dict(stacks=2, layers=8, width=32, kernel_size=2),
        "tiny": dict(stacks=1, layers=4, width=8, kernel_size=2),
    },
    "scorenet": {  # DiffWave-like non-causal stacks; receptive field 2 047 samples for 10 layers
        "toy": dict(stacks=2, layers=10, width=64),
        "musdb": dict(stacks=3, layers=10, width=64),
        "small": dict(stacks=1, layers=10, width=32),
        "tiny": dict(stacks=1, layers=3, width=8),
    },
}


PRESETS["flowavenet_nc"] = PRESETS["flowavenet"]  # σ-conditional variants come in the same sizes
PRESETS["wavenet_nc"] = PRESETS["wavenet"]


def prior_parameters(name: str) -> dict[str, inspect.Parameter]:
    """The keyword parameters the prior ``name`` accepts, following ``**kwargs`` up to the parent classes
    (a σ-conditional variant passes them on to its base architecture)."""
    parameters: dict[str, inspect.Parameter] = {}
    for cls in PRIORS[name].__mro__:
        if "__init__" not in vars(cls):
            continue
        own = inspect.signature(cls.__init__).parameters
        for key, parameter in own.items():
            if key != "self" and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
                parameters.setdefault(key, parameter)
        if not any(p.kind == p.VAR_KEYWORD for p in own.values()):
            break
    return parameters


def prior_settings(name: str, preset: str | None = None, **hparams) -> dict:
    """The keyword arguments a prior is built with: the named preset's, overridden by ``hparams`` (the
    constructor's own defaults fill in the rest; see :func:`prior_parameters`)."""
    if name not in PRIORS:
        raise ValueError(f"unknown prior {name!r}; choose one of {sorted(PRIORS)}")
    if preset is not None and preset not in PRESETS[name]:
        raise ValueError(f"unknown preset {preset!r} for {name}; choose one of {sorted(PRESETS[name])}")
    return {**(PRESETS[name][preset] if preset is not None else {}), **hparams}


def prior_setting(name: str, preset: str | None, hparams: dict, key: str):
    """One setting of a prior as it will be built: the override, else the preset's, else the default."""
    settings = prior_settings(name, preset, **hparams)
    return settings[key] if key in settings else prior_parameters(name)[key].default


def build_prior(name: str, preset: str | None = None, **hparams) -> Prior:
    """Build a prior by registry name, optionally starting from a named preset; ``hparams`` override it."""
    return PRIORS[name](**prior_settings(name, preset, **hparams))


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


__all__ = ["PRIORS", "PRESETS", "Prior", "prior_parameters", "prior_setting", "prior_settings", "FloWaveNet", "FloWaveNetNC", "ScoreNet", "WaveNet", "WaveNetNC", "build_prior", "load_prior", "save_prior",
           "prior_checkpoint", "prior_from_checkpoint", "select_source", "stack_sources"]
