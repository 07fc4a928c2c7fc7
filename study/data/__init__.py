"""Clip sources for the study: toy oscillators (generated) and stems folders (MUSDB18-HQ layout)."""
from .base import ClipSource, DataError, mix
from .stems import MUSDB_SOURCES, StemsDataset
from .toy import TOY_SAMPLE_RATE, TOY_SOURCES, ToyOscillators

__all__ = ["ClipSource", "DataError", "mix", "MUSDB_SOURCES", "StemsDataset", "TOY_SAMPLE_RATE", "TOY_SOURCES",
           "ToyOscillators"]
from .build import build_clips, source_names  # noqa: E402

__all__ += ["build_clips", "source_names"]
