"""Stems folders: processing, caching, crops and a clear error for every kind of bad input."""
import numpy as np
import pytest
import soundfile as sf
import torch

from study.config.schema import DataConfig
from study.data import DataError, StemsDataset

SOURCES = ("drums", "bass", "vocals")


def write_track(folder, rate=44_100, seconds=1.0, sources=SOURCES, silent=(), stereo=True, lengths=None):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(sum(map(ord, str(folder))))  # every track its own content
    for i, source in enumerate(sources):
        n = (lengths or {}).get(source, int(rate * seconds))
        t = np.arange(n) / rate
        left = 0.3 + 0.5 * np.sin(2 * np.pi * (110 * (i + 1)) * t) + 0.01 * rng.standard_normal(n)
        if source in silent:
            left = np.zeros(n)
        data = np.stack([left, -left], 1) if stereo else left
        sf.write(folder / f"{source}.wav", data.astype(np.float32), rate, subtype="FLOAT")


@pytest.fixture
def root(tmp_path):
    for split, tracks in {"train": 2, "test": 1}.items():
        for t in range(tracks):
            write_track(tmp_path / "data" / split / f"track{t}")
    return tmp_path / "data"


def dataset(root, tmp_path, split="train", max_eval_crops=None, **data):
    cfg = DataConfig(kind="stems", root=root, sources=list(SOURCES), sample_rate=14_700,
                     cache_dir=data.pop("cache_dir", tmp_path / "cache"), **data)
    return StemsDataset(cfg, split, 2048, max_eval_crops)


def audio(data, track=0) -> torch.Tensor:
    """A whole decoded track, read from the cache: [K, N]."""
    return torch.from_numpy(data.tracks[track].read())


def test_processing_resamples_normalises_and_crops(root, tmp_path):
    data = dataset(root, tmp_path)
    assert data.tracks[0].shape == (3, 14_700)  # 1 s at 44.1 kHz -> 14 700 samples
    assert torch.allclose(audio(data).mean(-1), torch.zeros(3), atol=1e-5)
    assert torch.allclose(audio(data).pow(2).mean(-1).sqrt(), torch.ones(3), atol=1e-3)  # unit RMS (rms default)
    peak = dataset(root, tmp_path, normalise="peak")
    assert torch.allclose(audio(peak).abs().amax(-1), torch.ones(3))
    assert len(data) == 2 * (14_700 // 2048)  # fixed, non-overlapping evaluation crops
    item = data[0]
    assert item["sources"].shape == (3, 2048) and torch.allclose(item["mixture"], item["sources"].mean(0))
    batch = data.training_batch(torch.Generator().manual_seed(0), 5)
    assert batch.shape == (5, 3, 2048)
    assert torch.equal(batch, data.training_batch(torch.Generator().manual_seed(0), 5))


def test_left_versus_mean_channel(root, tmp_path):
    left = dataset(root, tmp_path, channel="left")
    mean = dataset(root, tmp_path, channel="mean", silence_db=None)  # right = -left: the mean is silent
    assert audio(left).abs().max() > 1.0  # a unit-RMS sine-like stem peaks near √2
    assert audio(mean).abs().max() == 0.0


def test_cache_is_reused_and_invalidated(root, tmp_path):
    first = dataset(root, tmp_path)
    cached = sorted((tmp_path / "cache").glob("*.npy"))
    assert len(cached) == 2
    np.save(cached[0], np.full((3, 14_700), 0.25, dtype=np.float32))  # tamper: a cache hit must show it
    second = dataset(root, tmp_path)
    assert any(torch.all(audio(second, t) == 0.25) for t in range(2))
    write_track(root / "train" / "track0", seconds=2.0)  # a changed file gets a new key
    third = dataset(root, tmp_path)
    assert third.tracks[0].shape[1] == 29_400 and not torch.all(audio(third) == 0.25)
    assert first.tracks[1].shape == third.tracks[1].shape


def test_cache_is_keyed_by_content_not_by_size_and_time(root, tmp_path):
    """A same-size replacement that keeps the old modification time (cp -p, rsync -a) is still re-read."""
    import os

    stem = root / "train" / "track0" / "bass.wav"
    before = audio(dataset(root, tmp_path))
    status = stem.stat()
    samples, rate = sf.read(stem, dtype="float32")
    sf.write(stem, -samples, rate, subtype="FLOAT")  # same format and length: same size
    os.utime(stem, ns=(status.st_atime_ns, status.st_mtime_ns))
    assert stem.stat().st_size == status.st_size and stem.stat().st_mtime_ns == status.st_mtime_ns
    after = audio(dataset(root, tmp_path))
    assert torch.allclose(after[1], -before[1], atol=1e-6) and torch.equal(after[0], before[0])


def test_silence_policy_skips_silent_crops(tmp_path):
    write_track(tmp_path / "d" / "train" / "loud")
    write_track(tmp_path / "d" / "train" / "quiet", silent=("vocals",))
    data = dataset(tmp_path / "d", tmp_path)
    assert {data.track_names[t] for t, _ in data.crops} == {"loud"}
    assert len(dataset(tmp_path / "d", tmp_path, silence_db=None)) == 2 * len(data)


@pytest.mark.parametrize("problem,breaker,message", [
    ("missing root", lambda d: d / "nowhere", "dataset root does not exist"),
    ("missing split", lambda d: (d / "x").mkdir() or d / "x", "split folder 'train' does not exist"),
])
def test_missing_folders(tmp_path, problem, breaker, message):
    with pytest.raises(DataError, match=message):
        StemsDataset(DataConfig(kind="stems", root=breaker(tmp_path), sources=list(SOURCES), sample_rate=14_700,
                                cache_dir=tmp_path / "c"),
                     "train", 16_384)


def test_missing_stem_names_the_file(tmp_path):
    write_track(tmp_path / "d" / "train" / "t0", sources=("drums", "bass"))
    with pytest.raises(DataError, match=r"t0/vocals.wav: missing stem file"):
        dataset(tmp_path / "d", tmp_path)


def test_corrupt_and_empty_audio_name_the_file(tmp_path):
    write_track(tmp_path / "d" / "train" / "t0")
    (tmp_path / "d" / "train" / "t0" / "bass.wav").write_bytes(b"RIFF not really a wav")
    with pytest.raises(DataError, match=r"t0/bass.wav: unreadable audio"):
        dataset(tmp_path / "d", tmp_path)
    sf.write(tmp_path / "d" / "train" / "t0" / "bass.wav", np.zeros((0, 2), np.float32), 44_100)
    with pytest.raises(DataError, match=r"t0/bass.wav: empty audio"):
        dataset(tmp_path / "d", tmp_path)


def test_mismatched_stems_are_rejected(tmp_path):
    write_track(tmp_path / "a" / "train" / "t0", lengths={"bass": 40_000})
    with pytest.raises(DataError, match=r"t0: stems have different lengths"):
        dataset(tmp_path / "a", tmp_path)
    write_track(tmp_path / "b" / "train" / "t0")
    sf.write(tmp_path / "b" / "train" / "t0" / "vocals.wav", np.zeros(22_050, np.float32), 22_050)
    with pytest.raises(DataError, match=r"t0: stems have different sample rates"):
        dataset(tmp_path / "b", tmp_path)


def test_split_without_usable_crops(tmp_path):
    write_track(tmp_path / "d" / "train" / "short", seconds=0.1)
    with pytest.raises(DataError, match="no usable 2048-sample crops"):
        dataset(tmp_path / "d", tmp_path)


def test_silent_crops_are_counted_per_source_and_said(tmp_path):
    write_track(tmp_path / "d" / "train" / "loud")
    write_track(tmp_path / "d" / "train" / "quiet", silent=("vocals",))
    data = dataset(tmp_path / "d", tmp_path)
    per_track = 14_700 // 2048
    assert (data.crops_total, data.crops_skipped) == (2 * per_track, per_track)
    assert data.silent_crops == {"drums": 0, "bass": 0, "vocals": per_track}
    assert data.dropped() == (f"train: {per_track} of {2 * per_track} crops of 2048 samples skipped as silent "
                              f"below -40.0 dB (50.0%; silent source: vocals {per_track})")


def test_sample_rate_defaults_to_the_files_own_and_disagreement_is_an_error(tmp_path):
    from study.config.schema import DataConfig
    from study.data import build_clips

    write_track(tmp_path / "d" / "train" / "a", rate=16_000)
    write_track(tmp_path / "d" / "test" / "b", rate=16_000)
    cfg = DataConfig(kind="stems", root=tmp_path / "d", sources=list(SOURCES), cache_dir=tmp_path / "cache")
    assert build_clips(cfg, "train", 2048).sample_rate == 16_000  # not resampled to 14 700
    write_track(tmp_path / "d" / "test" / "b", rate=22_050)
    with pytest.raises(DataError, match=r"different sample rates: 16000 Hz .*22050 Hz .*set data.sample_rate"):
        build_clips(cfg, "train", 2048)
    explicit = cfg.model_copy(update={"sample_rate": 8000})
    assert build_clips(explicit, "test", 1024).sample_rate == 8000  # an explicit rate resamples everything


def test_missing_data_names_each_missing_path_before_any_audio_is_read(root, tmp_path):
    """What a sweep asks before Ray starts (:func:`missing_data`): file names and sizes only."""
    from study.config.schema import DataConfig
    from study.data.layouts import missing_data

    def problem(path, **kw):
        return missing_data(DataConfig(kind="stems", root=path, sources=list(SOURCES), **kw))

    assert problem(root) is None
    assert problem(tmp_path / "nowhere") == f"{tmp_path / 'nowhere'}: dataset root does not exist"
    assert "split folder 'valid' does not exist" in problem(root, test_split="valid")
    (root / "test" / "track0" / "vocals.wav").unlink()
    assert problem(root) == f"{root / 'test' / 'track0' / 'vocals.wav'}: missing"
    (root / "test" / "track0" / "vocals.wav").write_bytes(b"")
    assert problem(root) == f"{root / 'test' / 'track0' / 'vocals.wav'}: empty file"
    chorales = missing_data(DataConfig(kind="stems", root=tmp_path / "ch", sources=["soprano", "alto", "tenor", "bass"]))
    assert chorales.endswith(f"render it with: python -m study.data.chorales --out {tmp_path / 'ch'}")
    assert missing_data(DataConfig(kind="toy")) is None
