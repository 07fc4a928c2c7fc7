"""Slakh2100 layout: sources summed from each instrument class's rendered stems, silence where a track lacks
one, and every bad input named. The folder is written by the test, FLAC through soundfile."""
import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from study.config.schema import DataConfig
from study.data import SLAKH_SOURCES, DataError, StemsDataset, build_clips, normalise

RATE = 8000
SECONDS = 2.0

# (inst_class, is_drum, audio_rendered, frequency Hz); a stem not rendered has a loud file that must be ignored
FULL_BAND = {
    "S00": ("Bass", False, True, 55.0),
    "S01": ("Drums", True, True, 0.0),  # noise bursts
    "S02": ("Guitar", False, True, 196.0),
    "S03": ("Guitar", False, True, 247.0),  # a second guitar: summed with S02
    "S04": ("Piano", False, False, 440.0),  # not rendered
    "S05": ("Piano", False, True, 523.0),
    "S06": ("Strings", False, True, 330.0),  # a class no source asks for
}
NO_PIANO = {stem: info for stem, info in FULL_BAND.items() if info[0] != "Piano"}


def stem_audio(frequency: float, seed: int) -> np.ndarray:
    n = int(RATE * SECONDS)
    rng = np.random.default_rng(seed)
    if frequency == 0.0:  # drums: decaying noise bursts every 0.25 s
        envelope = np.exp(-(np.arange(n) % (RATE // 4)) / (0.03 * RATE))
        return (0.5 * envelope * rng.standard_normal(n)).astype(np.float32)
    t = np.arange(n) / RATE
    return (0.2 * np.sin(2 * np.pi * frequency * t) + 0.001 * rng.standard_normal(n)).astype(np.float32)


def write_slakh_track(folder, stems):
    (folder / "stems").mkdir(parents=True)
    metadata = {"UUID": folder.name, "audio_dir": "stems", "stems": {}}
    for i, (stem, (inst_class, is_drum, rendered, frequency)) in enumerate(stems.items()):
        metadata["stems"][stem] = {"inst_class": inst_class, "is_drum": is_drum, "audio_rendered": rendered,
                                   "program_num": 0 if is_drum else 8 * i, "midi_program_name": inst_class}
        stereo = np.stack([stem_audio(frequency, i), np.zeros(int(RATE * SECONDS), np.float32)], 1)
        sf.write(folder / "stems" / f"{stem}.flac", stereo if rendered else 10 * stereo, RATE, subtype="PCM_24")
    (folder / "metadata.yaml").write_text(yaml.safe_dump(metadata))


@pytest.fixture
def slakh(tmp_path):
    root = tmp_path / "slakh"
    write_slakh_track(root / "train" / "Track00001", FULL_BAND)
    write_slakh_track(root / "train" / "Track00002", NO_PIANO)
    write_slakh_track(root / "test" / "Track00003", FULL_BAND)
    return root


def dataset(root, tmp_path, split="train", max_eval_crops=None, **data):
    cfg = DataConfig(kind="slakh", root=root, sources=list(SLAKH_SOURCES), sample_rate=RATE,
                     cache_dir=tmp_path / "cache", **data)
    return StemsDataset(cfg, split, 1024, max_eval_crops)


def left(path) -> np.ndarray:
    return sf.read(path, dtype="float32", always_2d=True)[0][:, 0]


def test_sources_are_the_sums_of_their_classes_rendered_stems(slakh, tmp_path):
    data = dataset(slakh, tmp_path, silence_db=None)
    track = torch.from_numpy(data.tracks[0].read())  # Track00001, [bass, drums, guitar, piano]
    stems = slakh / "train" / "Track00001" / "stems"
    expected = {
        "bass": left(stems / "S00.flac"),
        "drums": left(stems / "S01.flac"),  # chosen by is_drum
        "guitar": left(stems / "S02.flac") + left(stems / "S03.flac"),
        "piano": left(stems / "S05.flac"),  # S04 was not rendered: its (loud) file is ignored
    }
    for k, source in enumerate(SLAKH_SOURCES):
        assert torch.allclose(track[k], torch.from_numpy(normalise(expected[source], "rms")), atol=1e-5), source


def test_a_track_without_a_class_is_silent_there_and_the_policy_says_so(slakh, tmp_path):
    data = dataset(slakh, tmp_path)
    no_piano = data.track_names.index("Track00002")
    assert torch.count_nonzero(torch.from_numpy(data.tracks[no_piano].read())[3]) == 0
    per_track = int(RATE * SECONDS) // 1024
    assert data.silent_crops["piano"] == per_track and data.crops_skipped == per_track
    assert {t for t, _ in data.crops} == {data.track_names.index("Track00001")}
    assert "silent source: piano 15" in data.dropped()
    batch = data.training_batch(torch.Generator().manual_seed(0), 4)  # drawn only where every source plays
    assert (batch.pow(2).mean(-1) > 1e-4).all()


def test_build_clips_reads_slakh_with_its_default_sources_and_native_rate(slakh, tmp_path):
    cfg = DataConfig(kind="slakh", root=slakh, cache_dir=tmp_path / "cache")
    test = build_clips(cfg, "test", 1024, max_eval_crops=4)
    assert test.sources == SLAKH_SOURCES and test.sample_rate == RATE and len(test) == 4
    separation = test.with_length(2048, max_eval_crops=2)  # same tracks, other crops, nothing decoded again
    assert separation.tracks is test.tracks and separation.clips(range(2)).shape == (2, 4, 2048)


@pytest.mark.parametrize("breaker,message", [
    (lambda t: (t / "metadata.yaml").unlink(), r"Track00001/metadata.yaml: missing Slakh metadata file"),
    (lambda t: (t / "metadata.yaml").write_text("stems: [unclosed"), r"Track00001/metadata.yaml: not valid YAML"),
    (lambda t: (t / "metadata.yaml").write_text("UUID: x\n"), r"metadata.yaml: no 'stems' mapping"),
    (lambda t: (t / "stems" / "S02.flac").unlink(), r"stems/S02.flac: missing stem file \(metadata.yaml says S02"),
    (lambda t: (t / "stems" / "S05.flac").write_bytes(b"fLaC broken"), r"stems/S05.flac: unreadable audio"),
])
def test_bad_slakh_input_names_the_file(slakh, tmp_path, breaker, message):
    breaker(slakh / "train" / "Track00001")
    with pytest.raises(DataError, match=message):
        dataset(slakh, tmp_path)
