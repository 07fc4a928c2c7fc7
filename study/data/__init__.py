"""Clip sources for the study: toy oscillators (generated) and multitrack folders (MUSDB18-HQ or Slakh2100).

Names are imported on first use, so that validation can read :mod:`study.data.layouts` and
:mod:`study.data.content` without importing torch.
"""
from __future__ import annotations

import importlib

_HOMES = {**{name: "base" for name in ("NORMALISATIONS", "ClipSource", "mix", "mixing_weights", "normalise")},
          "DataError": "errors", "MUSDB_SOURCES": "layouts", "SLAKH_SOURCES": "layouts", "TOY_SOURCES": "layouts",
          "source_names": "layouts", "StemsDataset": "stems", "TOY_SAMPLE_RATE": "toy", "ToyOscillators": "toy",
          "build_clips": "build"}


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module 'study.data' has no attribute {name!r}")


__all__ = list(_HOMES)
