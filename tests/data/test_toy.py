"""Toy oscillators follow the published protocol and are deterministic per (seed, split, index)."""

import pytest
import torch

from study.config.schema import DataConfig
from study.data import DataError, ToyOscillators


def test_shapes_range_and_mixture():
    data = ToyOscillators(DataConfig(train_size=50, normalise="peak"), "train", 1000)  # the paper's peak-A waves
    item = data[3]
    assert item["sources"].shape == (4, 1000) and item["mixture"].shape == (1000,)
    assert torch.allclose(item["mixture"], item["sources"].mean(0))
    clips = data.clips(range(50))
    assert clips.abs().max() <= 1.0
    peak = clips.abs().amax(-1)
    assert (peak >= 0.79).all() and (peak < 1.0).all()  # A ~ U[0.8, 1)


def test_rms_normalisation_makes_every_wave_rms_a():
    """The default: each source at RMS A, so a σ means the same noise relative to every waveform."""
    peak = ToyOscillators(DataConfig(train_size=50, normalise="peak"), "train", 4000).clips(range(50))
    rms = ToyOscillators(DataConfig(train_size=50), "train", 4000).clips(range(50))
    level = rms.pow(2).mean(-1).sqrt()
    assert ((level > 0.79) & (level < 1.01)).all()  # A ~ U[0.8, 1), exact up to integer-period rounding
    fixed = ToyOscillators(DataConfig(test_size=50, eval_amplitude=0.9), "test", 4000).clips(range(50))
    assert torch.allclose(fixed.pow(2).mean(-1).sqrt(), torch.tensor(0.9), rtol=0.03)
    unit_peak_rms = torch.tensor([0.5 ** 0.5, 1.0, (1 / 3) ** 0.5, (1 / 3) ** 0.5]).view(1, 4, 1)
    assert torch.allclose(rms * unit_peak_rms, peak, atol=1e-6)  # a pure rescaling of each waveform


def test_frequency_law_and_integer_period():
    data = ToyOscillators(DataConfig(train_size=2000), "train", 4000)
    freqs = data.frequencies(range(2000))
    assert freqs.min() >= 25.9 and freqs.max() <= 14_700 / 13 + 1e-9 # 26–1102 Hz, then the period is rounded
    # log-uniform: half the draws below the geometric middle of the key range
    middle = 440 * 2 ** ((32.5 - 49) / 12)
    assert abs((freqs < middle).double().mean().item() - 0.5) < 0.03
    # the waveform repeats exactly after its integer period
    clip = data.clips([7])[0]
    period = int(round(data.sample_rate / freqs[7, 0].item()))
    assert torch.equal(clip[0, :period], clip[0, period:2 * period])


def test_waveform_shapes_match_their_definitions():
    data = ToyOscillators(DataConfig(test_size=4, normalise="peak"), "test", 2000)
    clip = data.clips([0])[0]
    sin, square, saw, tri = clip
    assert set(square.unique().tolist()) == {-1.0, 1.0}
    assert abs((square > 0).float().mean().item() - 0.5) < 0.05  # 50 % duty
    d_saw = saw.diff()
    assert (d_saw > 0).float().mean() > 0.9  # rising except at the wrap
    assert abs(tri.max().item() - 1) < 0.05 and abs(tri.min().item() + 1) < 0.05
    assert abs(sin.pow(2).mean().item() - 0.5) < 0.02


def test_deterministic_and_splits_disjoint():
    a = ToyOscillators(DataConfig(train_size=20, seed=3), "train", 256).clips(range(20))
    b = ToyOscillators(DataConfig(train_size=20, seed=3), "train", 256).clips(range(20))
    assert torch.equal(a, b)
    # item i does not depend on how many items the split has
    c = ToyOscillators(DataConfig(train_size=5, seed=3), "train", 256).clips(range(5))
    assert torch.equal(a[:5], c)
    test = ToyOscillators(DataConfig(test_size=20, seed=3, eval_amplitude=None), "test", 256).clips(range(20))
    assert not any(torch.equal(x, y) for x in a for y in test)
    other_seed = ToyOscillators(DataConfig(train_size=20, seed=4), "train", 256).clips(range(20))
    assert not torch.equal(a, other_seed)


def test_training_batches_are_seeded():
    data = ToyOscillators(DataConfig(train_size=100), "train", 512)
    x = data.training_batch(torch.Generator().manual_seed(1), 8)
    y = data.training_batch(torch.Generator().manual_seed(1), 8)
    assert x.shape == (8, 4, 512) and torch.equal(x, y)


def test_bad_settings_are_named():
    with pytest.raises(DataError, match="toy.split"):
        ToyOscillators(DataConfig(), "training", 16_384)
    with pytest.raises(DataError, match="toy.sources"):
        ToyOscillators(DataConfig(sources=["sin", "noise"]), "train", 16_384)
