"""Real multitrack audio: a stems folder (MUSDB18-HQ layout) or Slakh2100 (see :mod:`study.data.layouts`).

Each source of a track is decoded with soundfile (a Slakh source is the sum of its stems), reduced to mono
(left channel or channel mean), resampled with torchaudio to the target rate, made zero-mean and normalised
(``rms``: unit RMS over its audible part, the default, so σ is relative to the source; ``peak``: peak 1, the
published protocol). The result is cached as one float32 .npy per track, keyed by the content of its files (a
BLAKE2b hash of every byte, about 1 GB/s, far cheaper than decoding) and the processing settings, so repeated
trials do not decode again and a replaced file is always re-read, even one copied over with its size and time
kept (``cp -p``, ``rsync -a``).

Memory does not grow with the dataset: audio is never held in RAM. Each crop is read from the cache file at
its offset when it is needed, so a trial holds only the crops of its current batch, and the kernel's page
cache, which every trial on a node shares, serves repeated reads. (Memory-mapping the cache would read the
same way, but every page a long training run touches would count towards the process's resident memory.)
The level of every fixed crop is computed once per track and crop length and cached beside the audio, so
finding the audible evaluation crops reads no audio either.

Training draws random crops; evaluation uses fixed, non-overlapping crops. Crops where any source is quieter
than ``silence_db`` (RMS in dB relative to the source's normalised level) are skipped: a silent vocal crop
says nothing about the vocal prior.
"""
from __future__ import annotations

import copy
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from torch.utils.data import Dataset

from study.config.schema import DataConfig
from study.store.stage_store import write_local

from .base import mix, normalise
from .errors import DataError
from .content import default_cache_dir, file_digest
from .layouts import LAYOUTS, TrackFiles, source_names, track_folders

MAX_CROP_TRIES = 200
CACHE_FORMAT = 2  # bump when the processing changes, so old cache entries are not read as new ones
LEVEL_CHUNK_SAMPLES = 1 << 22  # samples per source read at a time when measuring crop levels (16 MB)
SILENT_DB = -240.0  # the level reported for an all-zero crop


def read_mono(path: Path, channel: str) -> tuple[np.ndarray, int]:
    """Decode one audio file to a float32 mono signal; every failure names the file."""
    if not path.is_file():
        raise DataError(path, "missing stem file")
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as error:  # soundfile raises LibsndfileError/RuntimeError/TypeError by format
        raise DataError(path, f"unreadable audio ({error})") from None
    if audio.shape[0] == 0:
        raise DataError(path, "empty audio (0 frames)")
    mono = audio[:, 0] if channel == "left" else audio.mean(axis=1)
    if not np.isfinite(mono).all():
        raise DataError(path, "audio contains NaN or infinite samples")
    return mono, rate


def audio_info(path: Path):
    """soundfile's header info (rate, frames); a DataError naming the file when it is unreadable."""
    try:
        return sf.info(str(path))
    except Exception as error:  # soundfile raises LibsndfileError/RuntimeError by format
        raise DataError(path, f"unreadable audio ({error})") from None


def native_rate(root, sources, layout: str = "stems") -> int:
    """The sample rate every audio file under ``root`` (all splits) shares, read from the file headers; a
    DataError naming the rates found when they disagree (then ``data.sample_rate`` must be set)."""
    if not Path(root).is_dir():
        raise DataError(root, "dataset root does not exist")
    rates: dict[int, str] = {}
    for split in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        for track in sorted(p for p in split.iterdir() if p.is_dir()):
            for path in LAYOUTS[layout](track, tuple(sources)).files():
                rates.setdefault(audio_info(path).samplerate, str(path))
    if not rates:
        raise DataError(root, f"no tracks under <split>/<track>/ in the {layout!r} layout")
    if len(rates) > 1:
        found = ", ".join(f"{rate} Hz (e.g. {path})" for rate, path in sorted(rates.items()))
        raise DataError(root, f"stems have different sample rates: {found}; set data.sample_rate to resample "
                              "them all to one")
    return next(iter(rates))


class CachedTrack:
    """One decoded track in the cache: a C-ordered float32 [K, N] .npy, read a crop at a time."""

    def __init__(self, path: Path):
        self.path = path
        with open(path, "rb") as file:
            version = np.lib.format.read_magic(file)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(file)
            self.offset = file.tell()
        if len(shape) != 2 or fortran or dtype != np.float32:
            raise ValueError(f"{path}: not a [sources, samples] float32 array")
        if path.stat().st_size != self.offset + 4 * shape[0] * shape[1]:
            raise ValueError(f"{path}: truncated")
        self.shape = tuple(shape)

    def read(self, start: int = 0, length: int | None = None) -> np.ndarray:
        """Samples ``[start, start + length)`` of every source: [K, length] (the whole track by default)."""
        k, n = self.shape
        length = n - start if length is None else length
        return np.stack([np.fromfile(self.path, np.float32, count=length, offset=self.offset + 4 * (row * n + start))
                         for row in range(k)])

    def crop(self, start: int, length: int) -> torch.Tensor:
        return torch.from_numpy(self.read(start, length))


def levels_db(audio: np.ndarray) -> np.ndarray:
    """RMS level in dB over the last axis (float64 power; an all-zero signal reads SILENT_DB)."""
    power = np.mean(audio.astype(np.float64) ** 2, axis=-1)
    return np.maximum(10 * np.log10(np.maximum(power, 1e-30)), SILENT_DB)


def crop_levels_db(track: CachedTrack, length: int) -> np.ndarray:
    """RMS level in dB of every source in each non-overlapping crop of ``length``: [crops, K]. The track is
    read in chunks of whole crops, so this needs only a chunk of memory whatever the track's length."""
    k, n = track.shape
    crops = n // length
    per_chunk = max(1, LEVEL_CHUNK_SAMPLES // length)
    levels = np.empty((crops, k), np.float32)
    for first in range(0, crops, per_chunk):
        count = min(per_chunk, crops - first)
        levels[first:first + count] = levels_db(track.read(first * length, count * length).reshape(k, count, length)).T
    return levels


def save_npy(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array)
    write_local(path, buffer.getvalue())  # atomic: concurrent trials never read a half-written file


def load_npy(path: Path) -> np.ndarray | None:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None  # absent or damaged: the caller rebuilds it


class StemsDataset(Dataset):
    """One split of a multitrack folder, cut into crops of ``length``.

    Args:
        cfg: the data section (:class:`study.config.schema.DataConfig`): ``root`` holding
            ``<split>/<track>/…`` in the layout of ``kind`` (``stems``: MUSDB18-HQ, ``slakh``: Slakh2100), the
            sources in prior order, ``sample_rate`` (None: the files' own), ``channel`` (``left`` as in the
            paper, or ``mean``), ``silence_db`` (skip crops where any source's RMS is below it; None keeps
            every crop), ``normalise`` and ``cache_dir`` (default ``$PRIOR_STUDY_CACHE`` or
            ~/.cache/prior-study) for decoded audio.
        split: sub-folder, e.g. ``train`` or ``test``.
        length: crop length T.
        max_eval_crops: cap on fixed evaluation crops (spread evenly over the usable ones).
    """

    def __init__(self, cfg: DataConfig, split: str, length: int, max_eval_crops: int | None = None):
        if cfg.kind not in LAYOUTS:
            raise DataError("data.kind", f"unknown layout {cfg.kind!r}; choose one of {sorted(LAYOUTS)}")
        self.root, self.split, self.layout = Path(cfg.root), split, cfg.kind
        self.sources = source_names(cfg)
        self.sample_rate = cfg.sample_rate or native_rate(self.root, self.sources, cfg.kind)
        self.channel, self.silence_db, self.normalise = cfg.channel, cfg.silence_db, cfg.normalise
        self.cache_dir = Path(cfg.cache_dir) if cfg.cache_dir is not None else default_cache_dir()
        if not self.root.is_dir():
            raise DataError(self.root, "dataset root does not exist")
        folders = track_folders(self.root, split)
        self.track_names = [p.name for p in folders]
        self.tracks = [self._load_track(LAYOUTS[cfg.kind](p, self.sources)) for p in folders]
        self._cut(length, max_eval_crops)

    def with_length(self, length: int, max_eval_crops: int | None = None) -> "StemsDataset":
        """The same split's tracks, cut into crops of ``length``: nothing is decoded or hashed again."""
        other = copy.copy(self)
        other._cut(length, max_eval_crops)
        return other

    def _cut(self, length: int, max_eval_crops: int | None) -> None:
        self.length = length
        self.crops = self._evaluation_crops(max_eval_crops)
        # training crops: tracks long enough, each drawn in proportion to its length (uniform over audio)
        self._train_tracks = [t for t, track in enumerate(self.tracks) if track.shape[1] >= length]
        self._train_weights = torch.tensor([float(self.tracks[t].shape[1]) for t in self._train_tracks])
        if not self.crops:
            raise DataError(self.root / self.split, f"no usable {length}-sample crops (tracks too short or all "
                                                    f"below the silence threshold {self.silence_db} dB)")

    # --- loading -------------------------------------------------------------------------------------
    def _cache_key(self, files: TrackFiles) -> str:
        contents = {}
        for source, paths in files.sources.items():
            contents[source] = [file_digest(path, self.cache_dir) for path in paths]
        silent_length = [] if any(files.sources.values()) else [audio_info(files.length_reference).frames]
        blob = json.dumps([CACHE_FORMAT, self.layout, contents, silent_length, self.sample_rate, self.channel,
                           self.normalise])
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def _load_track(self, files: TrackFiles) -> CachedTrack:
        cached = self.cache_dir / f"{self._cache_key(files)}.npy"
        if cached.is_file():
            try:
                return CachedTrack(cached)
            except (OSError, ValueError):
                pass  # a damaged cache entry is rebuilt below
        save_npy(cached, self._decode(files))
        return CachedTrack(cached)

    def _decode(self, files: TrackFiles) -> np.ndarray:
        """The track's sources, each the sum of its files, resampled and normalised: [K, N] float32."""
        decoded = {path: read_mono(path, self.channel) for paths in files.sources.values() for path in paths}
        if not decoded:  # no file of any chosen source: all silent, at the track's length and rate
            info = audio_info(files.length_reference)
            decoded[files.length_reference] = (np.zeros(info.frames, np.float32), info.samplerate)
        rates = {path.name: rate for path, (_, rate) in decoded.items()}
        if len(set(rates.values())) > 1:
            raise DataError(files.folder, f"stems have different sample rates: {rates}")
        lengths = {path.name: len(signal) for path, (signal, _) in decoded.items()}
        if len(set(lengths.values())) > 1:
            raise DataError(files.folder, f"stems have different lengths (frames): {lengths}")
        frames, rate = next(iter(lengths.values())), next(iter(rates.values()))
        stems = [sum((decoded[path][0] for path in files.sources[source]), np.zeros(frames, np.float32))
                 for source in self.sources]
        audio = torch.from_numpy(np.stack(stems))
        if rate != self.sample_rate:
            audio = AF.resample(audio, rate, self.sample_rate)
        return np.stack([normalise(s, self.normalise) for s in audio.numpy()])

    def _levels(self, t: int) -> np.ndarray:
        """Cached :func:`crop_levels_db` of track ``t`` at the current crop length."""
        track = self.tracks[t]
        path = self.cache_dir / "levels" / f"{track.path.stem}-{self.length}.npy"
        levels = load_npy(path)
        if levels is None or levels.shape != (track.shape[1] // self.length, track.shape[0]):
            levels = crop_levels_db(track, self.length)
            save_npy(path, levels)
        return levels

    # --- crops ---------------------------------------------------------------------------------------
    def _silent_sources(self, crop: torch.Tensor) -> list[str]:
        if self.silence_db is None:
            return []
        return [source for source, db in zip(self.sources, levels_db(crop.numpy()).tolist()) if db < self.silence_db]

    def _evaluation_crops(self, limit: int | None) -> list[tuple[int, int]]:
        """The fixed, non-overlapping crops with every source audible. Also counts what the silence policy
        dropped: ``self.crops_total`` candidates and ``self.silent_crops[source]`` skipped because of each
        source (a crop silent in two sources counts for both)."""
        crops, self.crops_total = [], 0
        self.silent_crops = dict.fromkeys(self.sources, 0)
        for t in range(len(self.tracks)):
            levels = self._levels(t)
            silent = levels < self.silence_db if self.silence_db is not None else np.zeros(levels.shape, bool)
            self.crops_total += len(levels)
            for source, count in zip(self.sources, silent.sum(0).tolist()):
                self.silent_crops[source] += count
            crops += [(t, int(i) * self.length) for i in np.flatnonzero(~silent.any(1))]
        self.crops_skipped = self.crops_total - len(crops)
        if limit is not None and len(crops) > limit:
            crops = [crops[i] for i in np.linspace(0, len(crops) - 1, limit).round().astype(int)]
        return crops

    def dropped(self) -> str:
        """One line on what the silence policy skipped in this split."""
        share = self.crops_skipped / max(self.crops_total, 1)
        by_source = ", ".join(f"{s} {n}" for s, n in self.silent_crops.items() if n) or "none"
        return (f"{self.split}: {self.crops_skipped} of {self.crops_total} crops of {self.length} samples skipped "
                f"as silent below {self.silence_db} dB ({share:.1%}; silent source: {by_source})")

    def __len__(self) -> int:
        return len(self.crops)

    def clips(self, indices) -> torch.Tensor:
        return torch.stack([self.tracks[t].crop(s, self.length) for t, s in (self.crops[i] for i in indices)])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sources = self.clips([index])[0]
        return {"sources": sources, "mixture": mix(sources)}

    def training_batch(self, generator: torch.Generator, batch_size: int) -> torch.Tensor:
        batch = []
        for _ in range(MAX_CROP_TRIES * batch_size):
            pick = int(torch.multinomial(self._train_weights, 1, generator=generator))
            track = self.tracks[self._train_tracks[pick]]
            start = int(torch.randint(0, track.shape[1] - self.length + 1, (1,), generator=generator))
            crop = track.crop(start, self.length)
            if not self._silent_sources(crop):
                batch.append(crop)
                if len(batch) == batch_size:
                    return torch.stack(batch)
        raise DataError(self.root / self.split, "could not draw audible training crops; lower silence_db")
