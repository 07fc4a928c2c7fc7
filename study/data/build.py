"""Turn a :class:`study.config.schema.DataConfig` into clip sources."""
from __future__ import annotations

from .stems import StemsDataset
from .toy import ToyOscillators


def build_clips(cfg, split: str, length: int, max_eval_crops: int | None = None):
    """A clip source for ``split`` ("train" or "test") with crops of ``length`` samples. Another crop length
    of the same split is ``clips.with_length(...)``, which loads nothing again."""
    if cfg.kind == "toy":
        return ToyOscillators(cfg, split, length)
    return StemsDataset(cfg, cfg.train_split if split == "train" else cfg.test_split, length, max_eval_crops)
