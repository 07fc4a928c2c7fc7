"""The separator trained by the priors: its loss moves estimates along the posterior score (closed form for
Gaussian priors), its outputs hold the mixture, and no clean source reaches its training."""
import math

import torch

from study.config.schema import SeparatorConfig
from study.data import mix, mixing_weights
from study.trial.amortised import Teacher, annealed_sigma, prior_loss, separate, train_by_priors, build_separator

VARIANCES = torch.tensor([0.5, 0.1, 0.02])
ALPHAS = mixing_weights(3)


def gaussian_teacher(sigmas=(1.0, 0.5)):
    """Zero-mean Gaussian priors N(0, c_k) smoothed at each level: exact scores and log-densities."""
    def score(i, x, sigma=None):
        level = sigmas[i] if sigma is None else sigma
        return -x / (VARIANCES.view(1, -1, 1) + level**2)

    def log_prob(i, x, sigma=None):
        var = (VARIANCES + (sigmas[i] if sigma is None else sigma) ** 2).view(1, -1, 1)
        return (-0.5 * x.pow(2) / var - 0.5 * torch.log(2 * math.pi * var)).sum(-1)

    return Teacher(score, log_prob, list(sigmas), conditional=True)


def test_the_loss_gradient_is_minus_sigma_squared_times_the_posterior_score():
    torch.manual_seed(0)
    estimates = torch.randn(4, 3, 32, requires_grad=True)
    mixtures, sigma = torch.randn(4, 32), 0.3
    score = gaussian_teacher().score_at(estimates.detach(), sigma)
    for likelihood in ("dirac", "gaussian"):
        estimates.grad = None
        prior_loss(estimates, mixtures, ALPHAS, score, sigma, likelihood).backward()
        posterior = score.clone()
        if likelihood == "gaussian":  # + α(m − Σ α ŝ)/γ², γ² = σ²·Σα²
            residual = mixtures - (ALPHAS.view(1, -1, 1) * estimates.detach()).sum(1)
            posterior += ALPHAS.view(1, -1, 1) * residual.unsqueeze(1) / (sigma**2 * ALPHAS.pow(2).sum())
        expected = -sigma**2 * posterior / (4 * 32)  # the loss is a mean over mixtures and samples
        assert torch.allclose(estimates.grad, expected, atol=1e-6), likelihood


def test_dirac_estimates_sum_to_the_mixture_and_sigma_anneals_geometrically():
    model = build_separator(3).eval()
    mixtures = torch.randn(2, 256)
    with torch.no_grad():
        estimates = separate(model, mixtures, ALPHAS, "dirac")
    assert torch.allclose((ALPHAS.view(1, -1, 1) * estimates).sum(1), mixtures, atol=1e-5)
    assert annealed_sigma(0, 11, 1.0, 0.01) == 1.0 and math.isclose(annealed_sigma(10, 11, 1.0, 0.01), 0.01)
    assert math.isclose(annealed_sigma(5, 11, 1.0, 0.01), 0.1)


class Mixtures:
    """Training crops whose sources differ by ``shift`` in a way that cancels in every mixture."""

    def __init__(self, shift: float):
        self.shift = shift

    def training_batch(self, generator, batch_size):
        sources = torch.randn(batch_size, 3, 128, generator=generator)
        offset = self.shift * torch.randn(batch_size, 1, 128, generator=generator)
        return sources + offset * torch.tensor([1.0, -1.0, 0.0]).view(1, 3, 1)  # Σ α s unchanged


def test_no_clean_source_reaches_its_training_and_the_priors_choose_the_kept_weights():
    """Two datasets with the same mixtures and different sources train identical separators; the kept step is
    the one whose estimates the priors found most likely on the selection mixtures."""
    cfg = SeparatorConfig(steps=6, batch_size=2, crop=128, select_every=2, select_mixtures=2, sigma_low=0.5)
    a, b = (Mixtures(0.0), Mixtures(5.0))
    assert torch.allclose(mix(a.training_batch(torch.Generator().manual_seed(1), 2)),
                          mix(b.training_batch(torch.Generator().manual_seed(1), 2)), atol=1e-5)
    first, record = train_by_priors(gaussian_teacher(), a, cfg, ALPHAS, torch.device("cpu"), lambda line: None)
    second, _ = train_by_priors(gaussian_teacher(), b, cfg, ALPHAS, torch.device("cpu"), lambda line: None)
    for p, q in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.allclose(p, q, atol=1e-4)
    assert [entry["step"] for entry in record.trace] == [2, 4, 6]
    best = max(record.trace, key=lambda entry: entry["selection_logp"])
    assert record.selected_step == best["step"]
