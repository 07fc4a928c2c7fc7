"""Turn a :class:`study.config.schema.DataConfig` into clip sources."""
from __future__ import annotations

from .layouts import source_names
from .stems import StemsDataset, native_rate
from .toy import ToyOscillators


def build_clips(cfg, split: str, length: int, max_eval_crops: int | None = None):
    """A clip source for ``split`` ("train" or "test") with crops of ``length`` samples. Another crop length
    of the same split is ``clips.with_length(...)``, which loads nothing again."""
    train = split == "train"
    if cfg.kind == "toy":
        return ToyOscillators(split, cfg.train_size if train else cfg.test_size, length, cfg.seed,
                              cfg.train_amplitude if train else cfg.eval_amplitude,
                              item_length=max(48_000, length), sources=source_names(cfg), normalise=cfg.normalise)
    rate = cfg.sample_rate or native_rate(cfg.root, source_names(cfg), cfg.kind)
    return StemsDataset(cfg.root, cfg.train_split if train else cfg.test_split, source_names(cfg), rate,
                        length, cfg.channel, cfg.silence_db, cfg.cache_dir, max_eval_crops, layout=cfg.kind,
                        normalise=cfg.normalise)
