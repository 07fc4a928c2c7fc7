"""Real stems in the MUSDB18-HQ layout: ``<root>/<split>/<track>/<source>.wav``.

Each stem is read with soundfile, reduced to mono (left channel or channel mean), resampled with torchaudio
to the target rate, made zero-mean and peak-normalised per track and stem (science.md §3). The decoded,
resampled audio is cached as .npy keyed by the content of the stem files (a BLAKE2b hash of every byte, which
reads at about 1 GB/s, far faster than decoding) and the processing settings, so repeated trials do not
decode again and a replaced file is always re-read, even one copied over with its size and time kept
(``cp -p``, ``rsync -a``). Training draws random crops; evaluation uses fixed,
non-overlapping crops. Crops where any source is quieter than ``silence_db`` (RMS, dB re full scale) are
skipped: a silent vocal crop says nothing about the vocal prior.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from torch.utils.data import Dataset

from study.store import write_local

from .base import DataError, mix

MUSDB_SOURCES = ("drums", "bass", "other", "vocals")
CHANNEL_MODES = ("left", "mean")
MAX_CROP_TRIES = 200


def default_cache_dir() -> Path:
    return Path(os.environ.get("PRIOR_STUDY_CACHE", "~/.cache/prior-study")).expanduser() / "stems"


def read_mono(path: Path, channel: str) -> tuple[np.ndarray, int]:
    """Decode one WAV to a float32 mono signal; every failure names the file."""
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


def normalise(signal: np.ndarray) -> np.ndarray:
    """Remove the DC offset and scale to peak 1 (an all-zero stem stays zero)."""
    signal = signal - signal.mean()
    peak = np.abs(signal).max()
    return signal / peak if peak > 0 else signal


def native_rate(root, sources) -> int:
    """The sample rate every stem file under ``root`` (all splits) shares, read from the file headers; a
    DataError naming the rates found when they disagree (then ``data.sample_rate`` must be set)."""
    if not Path(root).is_dir():
        raise DataError(root, "dataset root does not exist")
    rates: dict[int, str] = {}
    for source in sources:
        for path in sorted(Path(root).glob(f"*/*/{source}.wav")):
            try:
                rates.setdefault(sf.info(str(path)).samplerate, str(path))
            except Exception as error:  # soundfile raises LibsndfileError/RuntimeError by format
                raise DataError(path, f"unreadable audio ({error})") from None
    if not rates:
        raise DataError(root, f"no stem files {[f'{s}.wav' for s in sources]} under <split>/<track>/")
    if len(rates) > 1:
        found = ", ".join(f"{rate} Hz (e.g. {path})" for rate, path in sorted(rates.items()))
        raise DataError(root, f"stems have different sample rates: {found}; set data.sample_rate to resample "
                              "them all to one")
    return next(iter(rates))


class StemsDataset(Dataset):
    """One split of a stems folder.

    Args:
        root: dataset root holding ``<split>/<track>/<source>.wav``.
        split: sub-folder, e.g. ``train`` or ``test``.
        sources: stem names in prior order (MUSDB default drums, bass, other, vocals).
        sample_rate: target rate (paper 14 700 Hz).
        length: crop length T.
        channel: ``left`` (paper) or ``mean``.
        silence_db: skip crops where any source's RMS is below this level (dBFS); None keeps every crop.
        cache_dir: where decoded audio is cached (default ``$PRIOR_STUDY_CACHE`` or ~/.cache/prior-study).
        max_eval_crops: cap on fixed evaluation crops (spread evenly over the usable ones).
    """

    def __init__(self, root, split: str = "train", sources=MUSDB_SOURCES, sample_rate: int = 14_700,
                 length: int = 16384, channel: str = "left", silence_db: float | None = -40.0,
                 cache_dir=None, max_eval_crops: int | None = None):
        if channel not in CHANNEL_MODES:
            raise DataError("stems.channel", f"must be one of {CHANNEL_MODES}, got {channel!r}")
        self.root, self.split = Path(root), split
        self.sources, self.sample_rate, self.length = tuple(sources), sample_rate, length
        self.channel, self.silence_db = channel, silence_db
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        if not self.root.is_dir():
            raise DataError(self.root, "dataset root does not exist")
        split_dir = self.root / split
        if not split_dir.is_dir():
            raise DataError(split_dir, f"split folder {split!r} does not exist")
        track_dirs = sorted(p for p in split_dir.iterdir() if p.is_dir())
        if not track_dirs:
            raise DataError(split_dir, "no track folders")
        self.track_names = [p.name for p in track_dirs]
        self.tracks = [torch.from_numpy(self._load_track(p)) for p in track_dirs]  # each [K, N]
        self.crops = self._evaluation_crops(max_eval_crops)
        # training crops: tracks long enough, each drawn in proportion to its length (uniform over audio)
        self._train_tracks = [t for t, audio in enumerate(self.tracks) if audio.shape[1] >= length]
        self._train_weights = torch.tensor([float(self.tracks[t].shape[1]) for t in self._train_tracks])
        if not self.crops:
            raise DataError(split_dir, f"no usable {length}-sample crops (tracks too short or all below "
                                       f"the silence threshold {silence_db} dB)")

    # --- loading -------------------------------------------------------------------------------------
    def _cache_key(self, track_dir: Path) -> str:
        contents = []
        for source in self.sources:
            path = track_dir / f"{source}.wav"
            if not path.is_file():
                raise DataError(path, "missing stem file")
            with open(path, "rb") as file:
                contents.append(hashlib.file_digest(file, "blake2b").hexdigest())
        blob = json.dumps([contents, self.sample_rate, self.channel])
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def _load_track(self, track_dir: Path) -> np.ndarray:
        cached = self.cache_dir / f"{self._cache_key(track_dir)}.npy"
        if cached.is_file():
            try:
                return np.load(cached, allow_pickle=False)
            except (OSError, ValueError):
                pass  # a damaged cache entry is rebuilt below
        stems, rates = [], {}
        for source in self.sources:
            path = track_dir / f"{source}.wav"
            signal, rate = read_mono(path, self.channel)
            stems.append(signal)
            rates[path.name] = rate
        if len(set(rates.values())) > 1:
            raise DataError(track_dir, f"stems have different sample rates: {rates}")
        lengths = {f"{s}.wav": len(x) for s, x in zip(self.sources, stems)}
        if len(set(lengths.values())) > 1:
            raise DataError(track_dir, f"stems have different lengths (frames): {lengths}")
        audio = torch.from_numpy(np.stack(stems))
        rate = next(iter(rates.values()))
        if rate != self.sample_rate:
            audio = AF.resample(audio, rate, self.sample_rate)
        audio = np.stack([normalise(s) for s in audio.numpy()]).astype(np.float32)
        buffer = io.BytesIO()
        np.save(buffer, audio)
        write_local(cached, buffer.getvalue())  # atomic: concurrent trials never read a half-written file
        return audio

    # --- crops ---------------------------------------------------------------------------------------
    def _silent_sources(self, crop: torch.Tensor) -> list[str]:
        if self.silence_db is None:
            return []
        level = 20 * torch.log10(crop.pow(2).mean(-1).sqrt().clamp_min(1e-12))
        return [source for source, db in zip(self.sources, level.tolist()) if db < self.silence_db]

    def _evaluation_crops(self, limit: int | None) -> list[tuple[int, int]]:
        """The fixed, non-overlapping crops with every source audible. Also counts what the silence policy
        dropped: ``self.crops_total`` candidates and ``self.silent_crops[source]`` skipped because of each
        source (a crop silent in two sources counts for both)."""
        crops, self.crops_total = [], 0
        self.silent_crops = dict.fromkeys(self.sources, 0)
        for t, audio in enumerate(self.tracks):
            for start in range(0, audio.shape[1] - self.length + 1, self.length):
                self.crops_total += 1
                silent = self._silent_sources(audio[:, start:start + self.length])
                for source in silent:
                    self.silent_crops[source] += 1
                if not silent:
                    crops.append((t, start))
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
        return torch.stack([self.tracks[t][:, s:s + self.length] for t, s in (self.crops[i] for i in indices)])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sources = self.clips([index])[0]
        return {"sources": sources, "mixture": mix(sources)}

    def training_batch(self, generator: torch.Generator, batch_size: int) -> torch.Tensor:
        batch = []
        for _ in range(MAX_CROP_TRIES * batch_size):
            pick = int(torch.multinomial(self._train_weights, 1, generator=generator))
            track = self.tracks[self._train_tracks[pick]]
            start = int(torch.randint(0, track.shape[1] - self.length + 1, (1,), generator=generator))
            crop = track[:, start:start + self.length]
            if not self._silent_sources(crop):
                batch.append(crop)
                if len(batch) == batch_size:
                    return torch.stack(batch)
        raise DataError(self.root / self.split, "could not draw audible training crops; lower silence_db")
