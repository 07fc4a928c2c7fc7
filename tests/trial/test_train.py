"""The training loop learns, is deterministic, resumes exactly and refuses NaN losses."""
import pytest
import torch

from models import build_prior, stack_sources
from study.config.schema import DataConfig, NoiseConfig, TrainingConfig, geometric_ladder
from study.data import ToyOscillators
from study.trial.stages import TrainingLevels
from study.trial.train import TrainingError, add_training_noise, held_out_bits, train

QUIET = dict(log=lambda line: None)


class FixedClips:
    """A clip source that always returns the same batch (for exact comparisons)."""

    def __init__(self, clips, sources):
        self.clips_, self.sources = clips, sources

    def training_batch(self, generator, batch_size):
        return self.clips_[:batch_size]


def cfg(**kw):
    base = dict(steps=200, batch_size=8, crop=512, lr=3e-3, log_every=50, checkpoint_every=1000)
    return TrainingConfig(**{**base, **kw})


@pytest.mark.parametrize("name,crop", [("wavenet", 512), ("flowavenet", 512)])
def test_tiny_prior_learns_its_source(name, crop):
    """Trained on sin only, the prior must give held-out sin clips clearly higher likelihood than square clips."""
    torch.manual_seed(0)
    prior = build_prior(name, preset="tiny")
    data = ToyOscillators(DataConfig(train_size=500, sources=["sin"]), "train", crop)
    train(prior, data, cfg(steps=300, crop=crop), **QUIET)
    sin = ToyOscillators(DataConfig(test_size=64, sources=["sin"]), "test", crop).clips(range(64))
    square = ToyOscillators(DataConfig(test_size=64, sources=["square"]), "test", crop).clips(range(64))
    bits_sin, bits_square = held_out_bits(prior, sin).item(), held_out_bits(prior, square).item()
    print(f"{name}: held-out sin {bits_sin:.3f} vs square {bits_square:.3f} bits/sample")
    assert bits_sin < bits_square - 0.5


def test_same_seed_same_weights_and_exact_resume(tmp_path):
    data = ToyOscillators(DataConfig(train_size=100), "train", 256)
    config = cfg(steps=20, crop=256, batch_size=4, log_every=10, checkpoint_every=10)

    def fresh():
        torch.manual_seed(1)
        return build_prior("wavenet", preset="tiny", num_sources=4)

    a, b = fresh(), fresh()
    train(a, data, config, **QUIET)
    train(b, data, config, **QUIET)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))

    class Interrupt(Exception):
        pass

    def stop_at_10(line):
        if line.startswith("step      10/"):
            raise Interrupt

    c = fresh()
    with pytest.raises(Interrupt):
        train(c, data, config, checkpoint=tmp_path / "ck.pt", log=stop_at_10)
    d = fresh()  # a new process would rebuild the prior from scratch, then resume
    result = train(d, data, config, checkpoint=tmp_path / "ck.pt", **QUIET)
    assert result.step == 20
    assert all(torch.allclose(p, q, atol=1e-6) for p, q in zip(a.state_dict().values(), d.state_dict().values()))


def test_grouped_training_equals_separate_training():
    torch.manual_seed(0)
    clips = ToyOscillators(DataConfig(train_size=8), "train", 256).clips(range(8))[:, :2]
    singles = [build_prior("wavenet", preset="tiny") for _ in range(2)]
    grouped = stack_sources(singles)
    config = cfg(steps=15, crop=256, batch_size=8, grad_clip=0.05)  # small clip: clipping is active
    for k, prior in enumerate(singles):
        train(prior, FixedClips(clips[:, k : k + 1], ("s",)), config, **QUIET)
    train(grouped, FixedClips(clips, ("a", "b")), config, **QUIET)
    expected = stack_sources(singles)
    for (name, p), q in zip(grouped.state_dict().items(), expected.state_dict().values()):
        assert torch.allclose(p, q, atol=1e-5), name


def test_nan_loss_stops_with_a_clear_error():
    clips = torch.zeros(4, 2, 256)
    clips[1, 1, 7] = float("nan")
    prior = build_prior("wavenet", preset="tiny", num_sources=2)
    with pytest.raises(TrainingError, match=r"non-finite training loss at step 0 for source\(s\) \['b'\]"):
        train(prior, FixedClips(clips, ("a", "b")), cfg(steps=5, crop=256, batch_size=4), **QUIET)


def test_training_noise_modes():
    x = torch.zeros(2000, 1, 64)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    fixed = add_training_noise(x, 0.5, NoiseConfig(), g())
    assert abs(fixed.std().item() - 0.5) < 0.01
    uniform = add_training_noise(x, 0.5, NoiseConfig(mode="uniform"), g())
    per_crop = uniform.std(-1)
    assert per_crop.min() < 0.1 and per_crop.max() > 0.4  # σ·u with u ~ U(0, 1) per crop
    clipped = add_training_noise(x + 0.9, 0.5, NoiseConfig(clip=True), g())
    assert clipped.max() == 1.0 and clipped.min() >= -1.0
    assert torch.equal(add_training_noise(x, 0.0, NoiseConfig(), g()), x)


def test_noise_conditional_training_learns_to_use_sigma():
    """Trained over the ladder, the σ-conditional prior explains σ-noised clips better when told the right σ."""
    from study.trial.train import draw_sigmas

    torch.manual_seed(0)
    prior = build_prior("wavenet_nc", preset="tiny")
    config = cfg(steps=250, crop=512)
    data = ToyOscillators(DataConfig(train_size=300, sources=["sin"]), "train", 512)
    train(prior, data, config, TrainingLevels(0.36, tuple(geometric_ladder())), **QUIET)
    clean = ToyOscillators(DataConfig(test_size=32, sources=["sin"]), "test", 512).clips(range(32))
    noisy = clean + 0.2 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(3))
    prior.eval()
    with torch.no_grad():
        matched = prior.log_prob_per_sample(noisy, 0.2).mean().item()
        mismatched = prior.log_prob_per_sample(noisy, 0.01).mean().item()
    print(f"noisy σ=0.2 clips: told 0.2 -> {matched:.3f}, told 0.01 -> {mismatched:.3f} nats/sample")
    assert matched > mismatched + 0.1
    sigmas = draw_sigmas(0.1, NoiseConfig(), [1.0, 0.359, 0.129, 0.046, 0.01], (500, 2),
                         torch.Generator().manual_seed(0))
    assert torch.allclose(sigmas.unique(), torch.tensor([0.01, 0.046]))  # only ladder levels ≤ σ
    uniform = draw_sigmas(0.1, NoiseConfig(levels="loguniform"), [1.0, 0.01], (500, 2),
                          torch.Generator().manual_seed(0))
    assert uniform.min() >= 0.01 and uniform.max() <= 0.1 and len(uniform.unique()) > 100


def test_hybrid_objective_adds_the_classification_cross_entropy():
    from study.trial.evaluate import cross_log_likelihood
    from study.trial.train import training_loss

    torch.manual_seed(0)
    prior = build_prior("wavenet", preset="tiny", num_sources=3)
    x = torch.rand(4, 3, 128) * 2 - 1
    plain, nll = training_loss(prior, x, None, cfg())
    hybrid, nll_h = training_loss(prior, x, None, cfg(hybrid_lambda=0.5))
    loglik = cross_log_likelihood(prior, x)
    assert loglik.shape == (4, 3, 3)
    assert torch.allclose(-loglik.diagonal(dim1=1, dim2=2).mean(0), nll, atol=1e-5)
    # cross-entropy of "clip j comes from source j" with the priors' log-likelihoods as logits
    ce = -(loglik.log_softmax(dim=1).diagonal(dim1=1, dim2=2)).mean(0).sum()
    assert torch.allclose(hybrid, plain + 0.5 * ce, atol=1e-4)
    train(prior, FixedClips(x, ("a", "b", "c")), cfg(steps=3, crop=128, batch_size=4, hybrid_lambda=1.0), **QUIET)
