"""Rendered chorales: the stems layout, determinism, four distinct instruments, and a tiny trial on them."""
import json

import numpy as np
import pytest
import soundfile as sf

from study.data.chorales import CHORALE_VOICES, INSTRUMENTS, Note, build, main, render_note

RATE = 8000


@pytest.fixture(scope="module")
def chorales(tmp_path_factory):
    out = tmp_path_factory.mktemp("chorales")
    build(out, pieces=3, sample_rate=RATE, seed=0, log=lambda line: None)
    return out


def test_layout_split_by_piece_and_manifest(chorales):
    manifest = json.loads((chorales / "chorales.json").read_text())
    splits = {info["split"] for info in manifest["pieces"].values()}
    assert splits == {"train", "test"} and len(manifest["pieces"]) == 3
    for split in ("train", "test"):
        for track in (chorales / split).iterdir():
            lengths = {sf.info(track / f"{voice}.wav").frames for voice in CHORALE_VOICES}
            assert len(lengths) == 1 and sf.info(track / "bass.wav").samplerate == RATE  # one length per piece
    train = {p.name for p in (chorales / "train").iterdir()}
    assert not train & {p.name for p in (chorales / "test").iterdir()}  # a piece is in one split only


def test_same_seed_same_audio_other_seed_other_audio(chorales, tmp_path):
    piece = next((chorales / "train").iterdir()).name
    build(tmp_path / "again", pieces=3, sample_rate=RATE, seed=0, log=lambda line: None)
    again = tmp_path / "again" / "train" / piece / "alto.wav"
    assert again.read_bytes() == (chorales / "train" / piece / "alto.wav").read_bytes()
    build(tmp_path / "other", pieces=3, sample_rate=RATE, seed=1, log=lambda line: None)
    others = [p.name for p in (tmp_path / "other" / "train").iterdir()]
    assert piece not in others or (tmp_path / "other" / "train" / piece / "alto.wav").read_bytes() != again.read_bytes()


def harmonic_profile(audio: np.ndarray, f0: float, rate: int) -> np.ndarray:
    """Levels of harmonics 1–8 in dB relative to the fundamental: the spectral shape that makes a timbre."""
    magnitude, freqs = np.abs(np.fft.rfft(audio)), np.fft.rfftfreq(len(audio), 1 / rate)
    peaks = np.array([magnitude[(freqs > 0.97 * k * f0) & (freqs < 1.03 * k * f0)].max() for k in range(1, 9)])
    return 20 * np.log10(peaks / peaks[0] + 1e-9)


def test_the_four_voices_are_four_instruments():
    """The same note played by each voice's instrument: harmonic spectra at least 6 dB apart (RMS over the
    first 8 harmonics) for every pair, so four timbres rather than one at four pitches; only the plucked bass
    decays while held."""
    rate, midi = 16_000, 57.0
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    profiles, sustain = {}, {}
    for voice in CHORALE_VOICES:
        audio = render_note(Note(0.0, 1.0, midi), INSTRUMENTS[voice], rate, np.random.default_rng(0))[:rate]
        profiles[voice] = harmonic_profile(audio, f0, rate)
        quarters = np.sqrt((audio.reshape(4, -1) ** 2).mean(1))
        sustain[voice] = quarters[3] / quarters[1]
    for i, a in enumerate(CHORALE_VOICES):
        for b in CHORALE_VOICES[i + 1:]:
            assert np.sqrt(np.mean((profiles[a] - profiles[b]) ** 2)) > 6, (a, b, profiles[a], profiles[b])
    assert sustain["bass"] < 0.7 and all(sustain[v] > 0.9 for v in ("soprano", "alto", "tenor")), sustain


def test_cli_rejects_too_few_pieces(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "x"), "--pieces", "1"]) == 2
    assert "--pieces must be at least 2" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_a_tiny_trial_runs_on_rendered_chorales(chorales, tmp_path):
    from study.config.schema import TrialConfig
    from study.trial.run import run_trial

    cfg = TrialConfig.model_validate({
        "data": {"kind": "stems", "root": str(chorales), "sources": list(CHORALE_VOICES), "sample_rate": RATE,
                 "cache_dir": str(tmp_path / "cache")},
        "prior": {"name": "wavenet", "preset": "tiny"},
        "training": {"steps": 10, "batch_size": 4, "crop": 1024, "log_every": 1000},
        "schedule": {"kind": "scratch", "sigma": 0.0},
        "evaluation": {"clips": 4, "crop": 1024, "noise_levels": [0.01]},
        "separation": {"mixtures": 1, "length": 512, "steps_per_level": 3, "audio_examples": 0, "listen_seconds": 0},
        "threads": 2,
    })
    metrics = run_trial(cfg, tmp_path / "trial", log=lambda line: None)
    assert 0.0 <= metrics["auroc"] <= 1.0 and set(f"auroc/{voice}" for voice in CHORALE_VOICES) <= set(metrics)
    assert "si_sdr" in metrics or metrics.get("separation_diverged") == 1.0
    assert {"silent_crops_share/train", "silent_crops_share/test", "silent_crops/test/bass"} <= set(metrics)
