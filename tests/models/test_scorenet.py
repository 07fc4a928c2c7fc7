"""The score-based prior: its variational bound on Gaussian data where log p is known in closed form, its
parametrisation, grouping, and denoising score-matching training."""
import math

import pytest
import torch

from models import build_prior, select_source, stack_sources
from models.diffusion_bound import variational_bound
from study.config.schema import DataConfig, TrainingConfig, geometric_ladder
from study.data.toy import ToyOscillators
from study.trial.stages import TrainingLevels
from study.trial.train import train

T = 4096


def gaussian_bound_target(x, v, sigma0, sigma_max, sigma_data):
    """What the bound equals for the exact score of N(0, v): log p^{σ0}(x) minus the terminal mismatch
    E log p^{σmax}(z_T) − E log π(z_T), z_T = x + √(σmax² − σ0²)·ε, π = N(0, σmax² + σd²)."""
    span = sigma_max**2 - sigma0**2
    log_p = torch.distributions.Normal(0.0, math.sqrt(v + sigma0**2)).log_prob(x.double()).sum(-1)

    def expected_log_normal(variance):
        return (-0.5 * math.log(2 * math.pi * variance) - (x.double() ** 2 + span) / (2 * variance)).sum(-1)

    return log_p + expected_log_normal(sigma_max**2 + sigma_data**2) - expected_log_normal(v + sigma_max**2)


@pytest.mark.parametrize("sigma0", [0.01, 0.3])
def test_bound_of_the_exact_gaussian_score_is_the_closed_form(sigma0):
    torch.manual_seed(0)
    v = 0.5
    x = math.sqrt(v + sigma0**2) * torch.randn(16, 1, T)
    exact = lambda z, sigma: -z / (v + sigma.unsqueeze(-1) ** 2)  # noqa: E731
    bound = variational_bound(exact, x, torch.full((16, 1), sigma0), 1.0, 1.0, 12, torch.Generator().manual_seed(1))
    error = (bound - gaussian_bound_target(x, v, sigma0, 1.0, 1.0)) / T  # nats per sample
    assert error.mean().abs() < 0.003 and error.abs().max() < 0.015, error
    # with a matched terminal (σ_data² = v) the bound is log p^{σ0}(x) itself
    matched = variational_bound(exact, x, torch.full((16, 1), sigma0), 1.0, math.sqrt(v), 12,
                                torch.Generator().manual_seed(1))
    log_p = torch.distributions.Normal(0.0, math.sqrt(v + sigma0**2)).log_prob(x.double()).sum(-1)
    assert ((matched - log_p) / T).mean().abs() < 0.003
    # a wrong score (variance 0.4 instead of 0.5) is a lower bound, visibly below
    wrong = lambda z, sigma: -z / (0.8 * v + sigma.unsqueeze(-1) ** 2)  # noqa: E731
    low = variational_bound(wrong, x, torch.full((16, 1), sigma0), 1.0, 1.0, 12, torch.Generator().manual_seed(1))
    assert ((low - bound) / T).mean() < -0.005


def test_untrained_scorenet_is_the_gaussian_reference_exactly():
    """The output layer starts at zero, so the score is −x/(σ² + σ_d²) and the bound is log N(x; 0, σ² + σ_d²)."""
    prior = build_prior("scorenet", "tiny", num_sources=2).eval()
    x = torch.randn(3, 2, 512)
    with torch.no_grad():
        assert torch.allclose(prior.score(x, 0.2), -x / (0.04 + 1.0), atol=1e-6)
        for sigma in (0.0, 0.2):
            level = max(sigma, prior.sigma_min)
            closed = torch.distributions.Normal(0.0, math.sqrt(level**2 + 1)).log_prob(x.double()).sum(-1)
            assert torch.allclose(prior.log_prob(x, sigma).double(), closed, rtol=1e-5)


def trained_tiny(steps=40):
    torch.manual_seed(0)
    prior = build_prior("scorenet", "tiny", num_sources=4)
    cfg = TrainingConfig(steps=steps, batch_size=4, crop=256, lr=3e-3, log_every=steps, noise={"levels": "loguniform"})
    lines = []
    ladder = geometric_ladder()  # a clean stage of a score prior trains at the ladder's floor (study.trial.stages)
    data = ToyOscillators(DataConfig(train_size=64), "train", 256)
    train(prior, data, cfg, TrainingLevels(min(ladder), tuple(ladder)), device=torch.device("cpu"),
          log=lines.append)
    return prior.eval(), lines


def test_score_matching_trains_and_sources_can_be_cut_and_stacked():
    prior, lines = trained_tiny()
    assert "denoising loss" in lines[-1]
    x = ToyOscillators(DataConfig(test_size=4, eval_amplitude=None), "test", 256).clips(range(2))
    with torch.no_grad():
        score = prior.score(x, 0.1)
        assert not torch.allclose(score, -x / 1.01, atol=1e-3)  # it learnt something
        parts = [select_source(prior, k) for k in range(4)]
        for k, part in enumerate(parts):
            assert torch.allclose(part.score(x[:, k:k + 1], 0.1), score[:, k:k + 1], atol=1e-5)
        assert torch.allclose(stack_sources(parts).log_prob(x, 0.1), prior.log_prob(x, 0.1), rtol=1e-5)
        # the bound's noise is fixed: the same clip scores the same twice
        assert torch.equal(prior.log_prob(x, 0.1), prior.log_prob(x, 0.1))


def test_score_sees_only_its_receptive_field():
    prior = build_prior("scorenet", None, num_sources=1, layers=3, width=8)
    torch.nn.init.normal_(prior.net.out.weight)  # leave the zero start, so the network matters
    x = torch.randn(1, 1, 200, requires_grad=True)
    prior.score_pass(x, 0.1)[0, 0, 100].backward()  # score() detaches its input
    reach = (prior.receptive_field - 1) // 2
    touched = x.grad[0, 0].nonzero().flatten()
    assert touched.min() >= 100 - reach and touched.max() <= 100 + reach and touched.numel() > 1
