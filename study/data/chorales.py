"""Real four-part music without a download: Bach chorales from music21's bundled corpus, each voice rendered
by its own synthesised instrument, written in the stems layout.

    python -m study.data.chorales --out data/chorales [--pieces 60] [--sample-rate 16000] [--seed 0]

gives ``<out>/<split>/<piece>/{soprano,alto,tenor,bass}.wav`` (one track per chorale, split into train and
test by piece) and ``<out>/chorales.json`` (what was rendered, and how). The study reads it with
``data: {kind: stems, root: <out>, sources: [soprano, alto, tenor, bass]}``.

The four voices are four different instruments, not one timbre at four pitches. Each has its own harmonic
spectrum, attack and decay, vibrato or none, and noise:

- soprano, a flute: a strong fundamental, weak upper partials, breath noise, delayed vibrato;
- alto, a clarinet: mostly odd harmonics, a quick attack and a flat sustain, no vibrato;
- tenor, a bowed string: every harmonic (sawtooth-like) shaped by two body resonances, a slow bow attack,
  wider vibrato;
- bass, a plucked string: stiff-string (slightly sharp) partials that each decay, higher ones faster.

Every note also varies a little in level and tuning, as played notes do. Everything is drawn from ``--seed``,
so the same command gives the same files.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .layouts import CHORALE_VOICES
TEST_FRACTION = 0.15
TEMPO_BPM = (60.0, 80.0)  # chorale tempi, drawn per piece
LEVEL_SPREAD_DB = 1.0  # per-note level variation (standard deviation)
TUNING_SPREAD_CENTS = 4.0  # per-note tuning variation (standard deviation)


@dataclass(frozen=True)
class Instrument:
    """An additive-synthesis instrument: partial amplitudes, envelope, vibrato and noise."""

    name: str
    partials: tuple[float, ...]  # amplitude of harmonic k = 1, 2, …
    attack: float  # seconds to full level
    release: float  # seconds of fade after the note ends
    decay: float  # seconds: exponential decay time of the fundamental (0: sustained)
    vibrato_hz: float
    vibrato_depth: float  # relative frequency deviation
    vibrato_delay: float  # seconds before vibrato sets in
    noise: float  # breath/bow noise level relative to the tone
    stiffness: float = 0.0  # inharmonicity B: partial k sits at k·f0·√(1 + B·k²)
    resonances: tuple[tuple[float, float], ...] = ()  # (centre Hz, gain) body formants


def _flute() -> Instrument:
    return Instrument("flute", (1.0, 0.35, 0.12, 0.05, 0.02, 0.01), attack=0.06, release=0.08, decay=0.0,
                      vibrato_hz=5.0, vibrato_depth=0.004, vibrato_delay=0.15, noise=0.04)


def _clarinet() -> Instrument:
    odd_heavy = tuple((1.0 / k if k % 2 else 0.06 / k) for k in range(1, 16))
    return Instrument("clarinet", odd_heavy, attack=0.025, release=0.05, decay=0.0, vibrato_hz=0.0,
                      vibrato_depth=0.0, vibrato_delay=0.0, noise=0.01)


def _bowed_string() -> Instrument:
    return Instrument("bowed string", tuple(1.0 / k for k in range(1, 21)), attack=0.09, release=0.12, decay=0.0,
                      vibrato_hz=5.6, vibrato_depth=0.007, vibrato_delay=0.1, noise=0.02,
                      resonances=((300.0, 3.5), (1200.0, 2.5)))


def _plucked_string() -> Instrument:
    return Instrument("plucked string", tuple(1.0 / k ** 2 for k in range(1, 13)), attack=0.004, release=0.06,
                      decay=0.7, vibrato_hz=0.0, vibrato_depth=0.0, vibrato_delay=0.0, noise=0.0, stiffness=4e-4)


INSTRUMENTS = {"soprano": _flute(), "alto": _clarinet(), "tenor": _bowed_string(), "bass": _plucked_string()}


@dataclass
class Note:
    start: float  # seconds
    duration: float  # seconds
    midi: float


def render_note(note: Note, instrument: Instrument, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """One note of ``instrument`` (including its release tail), with small random level and tuning."""
    length = int((note.duration + instrument.release) * sample_rate)
    t = np.arange(length) / sample_rate
    cents = rng.normal(0.0, TUNING_SPREAD_CENTS)
    f0 = 440.0 * 2 ** ((note.midi - 69 + cents / 100) / 12)
    vibrato = instrument.vibrato_depth * np.clip((t - instrument.vibrato_delay) / 0.2, 0, 1) * \
        np.sin(2 * np.pi * instrument.vibrato_hz * t + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * np.cumsum(f0 * (1 + vibrato)) / sample_rate
    tone = np.zeros(length)
    for k, amplitude in enumerate(instrument.partials, start=1):
        ratio = k * np.sqrt(1 + instrument.stiffness * k * k)
        if ratio * f0 >= 0.45 * sample_rate:
            break
        gain = amplitude * _resonance_gain(ratio * f0, instrument.resonances)
        if instrument.decay:  # higher partials of a plucked string die away faster
            gain = gain * np.exp(-t * k ** 0.7 / instrument.decay)
        tone += gain * np.sin(ratio * phase + rng.uniform(0, 2 * np.pi))
    if instrument.noise:
        tone += instrument.noise * np.abs(tone).max() * _coloured_noise(length, rng)
    envelope = np.minimum(1.0, t / instrument.attack)
    held = int(note.duration * sample_rate)
    envelope[held:] *= np.exp(-(t[held:] - note.duration) / (instrument.release / 4))
    level = 10 ** (rng.normal(0.0, LEVEL_SPREAD_DB) / 20)
    return level * envelope * tone


def _resonance_gain(frequency: float, resonances) -> float:
    gain = 1.0
    for centre, boost in resonances:
        gain *= 1 + (boost - 1) / (1 + ((frequency - centre) / (0.35 * centre)) ** 2)
    return gain


def _coloured_noise(length: int, rng: np.random.Generator) -> np.ndarray:
    """Noise smoothed by a short moving average: breath and bow noise sit below the top of the spectrum."""
    white = rng.standard_normal(length + 7)
    return np.convolve(white, np.ones(8) / 8, mode="valid")[:length]


def corpus_chorales() -> list[str]:
    """The chorales of music21's bundled corpus, by BWV number (it ships in the wheel: no download)."""
    from music21 import corpus

    return list(corpus.chorales.Iterator(numberingSystem="bwv", returnType="filename"))


def chorale_notes(piece: str, tempo_bpm: float) -> dict[str, list[Note]] | None:
    """The notes of each SATB voice of a corpus chorale, ties merged, timed at ``tempo_bpm``; None when the
    chorale does not have exactly those four voices (some add instrumental parts)."""
    from music21 import corpus

    parts = {part.id.lower(): part for part in corpus.parse(piece).parts}
    if sorted(parts) != sorted(CHORALE_VOICES):
        return None
    seconds_per_quarter = 60.0 / tempo_bpm
    voices = {}
    for voice in CHORALE_VOICES:
        part = parts[voice].stripTies()
        voices[voice] = [Note(float(n.offset) * seconds_per_quarter, float(n.quarterLength) * seconds_per_quarter,
                              float(n.pitch.midi))
                         for n in part.flatten().notes if n.isNote and n.quarterLength > 0]
    return voices


def render_piece(piece: str, sample_rate: int, seed: int) -> tuple[dict[str, np.ndarray], float] | None:
    """The four stems of one chorale (equal lengths) and the tempo it was played at; None if not SATB."""
    rng = np.random.default_rng([seed, *map(ord, piece)])
    tempo = float(rng.uniform(*TEMPO_BPM))
    notes = chorale_notes(piece, tempo)
    if notes is None:
        return None
    end = max(n.start + n.duration for voice in notes.values() for n in voice)
    length = int((end + 0.5) * sample_rate)
    stems = {}
    for voice in CHORALE_VOICES:
        audio = np.zeros(length)
        for note in notes[voice]:
            rendered = render_note(note, INSTRUMENTS[voice], sample_rate, rng)
            start = int(note.start * sample_rate)
            stop = min(length, start + len(rendered))
            audio[start:stop] += rendered[: stop - start]
        stems[voice] = (0.9 * audio / max(np.abs(audio).max(), 1e-9)).astype(np.float32)
    return stems, tempo


def build(out: Path, pieces: int, sample_rate: int, seed: int, log=print) -> dict:
    """Render ``pieces`` chorales into ``out`` (train/test by piece). Returns the manifest it writes."""
    available = corpus_chorales()
    order = [available[i] for i in np.random.default_rng(seed).permutation(len(available))]
    tests = max(1, round(TEST_FRACTION * pieces))
    manifest = {"seed": seed, "sample_rate": sample_rate, "voices": list(CHORALE_VOICES),
                "instruments": {voice: asdict(instrument) for voice, instrument in INSTRUMENTS.items()},
                "pieces": {}}
    seconds = {"train": 0.0, "test": 0.0}
    index = 0
    for piece in order:  # in a seeded order, skipping chorales that are not plain SATB
        if index == pieces:
            break
        rendered = render_piece(piece, sample_rate, seed)
        if rendered is None:
            continue
        stems, tempo = rendered
        split = "test" if index < tests else "train"
        index += 1
        folder = out / split / piece.replace("/", "_")
        folder.mkdir(parents=True, exist_ok=True)
        for voice, audio in stems.items():
            sf.write(folder / f"{voice}.wav", audio, sample_rate, subtype="PCM_16")
        duration = len(next(iter(stems.values()))) / sample_rate
        seconds[split] += duration
        manifest["pieces"][piece] = {"split": split, "tempo_bpm": round(tempo, 2), "seconds": round(duration, 2)}
        log(f"{index:>4}/{pieces} {piece:<14} {split:<5} {duration:6.1f} s at {tempo:.0f} bpm")
    if index < pieces:
        raise ValueError(f"--pieces {pieces}: the corpus has only {index} four-part chorales")
    manifest["minutes_per_source"] = {split: round(s / 60, 2) for split, s in seconds.items()}
    (out / "chorales.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Render Bach chorales (music21 corpus) as four-instrument stems.")
    parser.add_argument("--out", type=Path, required=True, help="folder to write <split>/<piece>/<voice>.wav into")
    parser.add_argument("--pieces", type=int, default=60, help="chorales to render (60 ≈ 44 min per source for training, 7 for test)")
    parser.add_argument("--sample-rate", type=int, default=16_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.pieces < 2 or args.sample_rate < 4000:
        print("error: --pieces must be at least 2 (one for each split) and --sample-rate at least 4000",
              file=sys.stderr)
        return 2
    try:
        manifest = build(args.out, args.pieces, args.sample_rate, args.seed)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    minutes = manifest["minutes_per_source"]
    print(f"wrote {args.out}: {minutes['train']:.1f} min per source for training, {minutes['test']:.1f} for test")
    return 0


if __name__ == "__main__":
    sys.exit(main())
