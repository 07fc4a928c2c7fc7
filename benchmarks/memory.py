"""Peak memory of one trial on a large stems folder against a small one: it must not grow with the dataset.

Writes two synthetic stems folders (four sources of random notes with rests, 8 kHz, 10-minute tracks, 90 %
of tracks for training), by default of 1 and 10 hours, and runs the same small ``python -m study.trial``
on each as a subprocess, twice: first with an empty decoding cache (every track is decoded, hashed and
cached) and then with the cache built. The peak resident memory of each run is read from ``wait4``. Trials
train, evaluate and separate as usual; only the data differs.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

RATE = 8000
TRACK_MINUTES = 10
NOTE_SECONDS = 0.25
SOURCES = ("one", "two", "three", "four")

TRIAL = {
    "name": "memory",
    "data": {"kind": "stems", "sources": list(SOURCES)},
    "prior": {"name": "wavenet", "preset": "tiny"},
    "training": {"steps": 200, "batch_size": 8, "crop": 4096, "log_every": 1000},
    "schedule": {"kind": "scratch", "sigma": 0.0},
    "evaluation": {"clips": 64, "crop": 4096, "noise_levels": [0.01]},
    "separation": {"mixtures": 2, "length": 4096, "steps_per_level": 5, "audio_examples": 0},
    "threads": 2,
}


def note_track(rng: np.random.Generator, samples: int, low_hz: float) -> np.ndarray:
    """Random notes of a quarter second, each with its own pitch and decay; about one in six is a rest."""
    note = int(RATE * NOTE_SECONDS)
    notes = samples // note
    t = np.arange(note, dtype=np.float32) / RATE
    pitch = (low_hz * 2 ** rng.uniform(0, 2, (notes, 1))).astype(np.float32)
    decay = rng.uniform(2, 12, (notes, 1)).astype(np.float32)
    level = (rng.uniform(0.2, 0.9, (notes, 1)) * (rng.uniform(size=(notes, 1)) > 1 / 6)).astype(np.float32)
    waves = level * np.exp(-decay * t) * np.sin(2 * np.pi * pitch * t)
    return np.pad(waves.reshape(-1), (0, samples - notes * note))


def write_stems(root: Path, hours: float, seed: int = 0) -> None:
    tracks = max(2, round(hours * 60 / TRACK_MINUTES))
    samples = int(TRACK_MINUTES * 60 * RATE)
    test = max(1, tracks // 10)
    rng = np.random.default_rng(seed)
    for index in range(tracks):
        folder = root / ("test" if index < test else "train") / f"track{index:04d}"
        folder.mkdir(parents=True)
        for k, source in enumerate(SOURCES):
            sf.write(folder / f"{source}.wav", note_track(rng, samples, 55.0 * 2 ** k), RATE, subtype="PCM_16")


def peak_rss_of_trial(config: Path, out: Path, cache: Path) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of one ``python -m study.trial`` subprocess."""
    env = {**os.environ, "PRIOR_STUDY_CACHE": str(cache)}
    t0 = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "study.trial", str(config), "--out", str(out)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"trial on {config} failed: {process.stderr.read()[-2000:]}")
    return usage.ru_maxrss / 1024, wall  # ru_maxrss is in KiB on Linux


def bench_memory(hours=(1.0, 10.0)) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="memory-bench-") as tmp:
        for h in hours:
            root = Path(tmp) / f"stems-{h:g}h"
            t0 = time.perf_counter()
            write_stems(root, h)
            written = time.perf_counter() - t0
            config = Path(tmp) / f"trial-{h:g}h.yaml"
            config.write_text(yaml.safe_dump({**TRIAL, "data": {**TRIAL["data"], "root": str(root)}}))
            cache = Path(tmp) / f"cache-{h:g}h"
            for run in ("empty cache", "cache built"):
                rss, wall = peak_rss_of_trial(config, Path(tmp) / f"out-{h:g}h-{run.split()[1]}", cache)
                rows.append({"dataset hours": h, "tracks": len(list(root.glob("*/*"))), "run": run,
                             "peak RSS MB": round(rss), "trial seconds": round(wall, 1),
                             "decoded audio GB": round(4 * len(SOURCES) * h * 3600 * RATE / 1e9, 2),
                             "write seconds": round(written, 1)})
    return rows


if __name__ == "__main__":
    for row in bench_memory():
        print(row)
