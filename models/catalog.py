"""The priors by name: their named sizes and settings, known without importing torch.

Validation and ``--dry-run`` ask here, so that a config mistake is answered in a fraction of a second. Every
default lives in the families' settings dataclasses (:mod:`models.settings`); the classes are built from them.
"""
from __future__ import annotations

import dataclasses

from .settings import SETTINGS

PRIOR_NAMES = tuple(SETTINGS)

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


def prior_defaults(name: str) -> dict[str, object]:
    """Every setting the prior ``name`` takes, with its default."""
    return {field.name: field.default for field in dataclasses.fields(SETTINGS[name])}


def trained_by(name: str) -> str:
    """``likelihood`` or ``denoising`` (score priors): what the prior's training objective computes."""
    return SETTINGS[name].trained_by


def prior_settings(name: str, preset: str | None = None, **hparams) -> dict:
    """The keyword arguments a prior is built with: the named preset's, overridden by ``hparams`` (the
    settings' defaults fill in the rest; see :func:`prior_defaults`)."""
    if name not in SETTINGS:
        raise ValueError(f"unknown prior {name!r}; choose one of {sorted(SETTINGS)}")
    if preset is not None and preset not in PRESETS[name]:
        raise ValueError(f"unknown preset {preset!r} for {name}; choose one of {sorted(PRESETS[name])}")
    return {**(PRESETS[name][preset] if preset is not None else {}), **hparams}


def prior_setting(name: str, preset: str | None, hparams: dict, key: str):
    """One setting of a prior as it will be built: the override, else the preset's, else the default."""
    settings = prior_settings(name, preset, **hparams)
    return settings[key] if key in settings else prior_defaults(name)[key]
