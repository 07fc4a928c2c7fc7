"""Clip sources for the study: toy oscillators (generated) and multitrack folders (MUSDB18-HQ or Slakh2100)."""
from .base import NORMALISATIONS, ClipSource, DataError, mix, mixing_weights, normalise
from .layouts import MUSDB_SOURCES, SLAKH_SOURCES
from .stems import StemsDataset
from .toy import TOY_SAMPLE_RATE, TOY_SOURCES, ToyOscillators

__all__ = ["ClipSource", "DataError", "mix", "mixing_weights", "normalise", "NORMALISATIONS", "MUSDB_SOURCES", "SLAKH_SOURCES",
           "StemsDataset", "TOY_SAMPLE_RATE", "TOY_SOURCES", "ToyOscillators"]
from .build import build_clips, source_names  # noqa: E402

__all__ += ["build_clips", "source_names"]
