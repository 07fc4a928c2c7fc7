"""σ-conditional priors stay exact at every σ, and σ really changes the density."""
import pytest
import torch

from models import build_prior, stack_sources

from .test_flowavenet import randomised

SIGMAS = [0.0, 0.01, 0.129, 1.0]


@pytest.fixture
def flow_nc():
    torch.manual_seed(0)
    return randomised(build_prior("flowavenet_nc", blocks=2, flows=2, layers=2, width=4, num_sources=2,
                                  cond_features=5).double())


@pytest.mark.parametrize("sigma", SIGMAS)
def test_flow_round_trip_and_jacobian_at_every_sigma(flow_nc, sigma):
    x = torch.randn(1, 2, 16, dtype=torch.float64)
    latents, logdet, _ = flow_nc.encode(x, sigma)
    assert torch.allclose(flow_nc.inverse(latents, sigma), x, atol=1e-10)

    def flat(v):
        zs, _, _ = flow_nc.encode(v.view(1, 2, 16), sigma)
        return torch.cat([z[0, k].reshape(-1) for k in range(2) for z in zs])

    jac = torch.autograd.functional.jacobian(flat, x.reshape(-1))
    for k in range(2):
        block = jac[16 * k:16 * (k + 1), 16 * k:16 * (k + 1)]
        assert torch.allclose(torch.linalg.slogdet(block).logabsdet, logdet[0, k], atol=1e-9)


def test_sigma_changes_the_density_and_is_required(flow_nc):
    x = torch.randn(3, 2, 16, dtype=torch.float64)
    values = [flow_nc.log_prob(x, s) for s in SIGMAS]
    assert all(not torch.allclose(a, b) for a, b in zip(values, values[1:]))
    with pytest.raises(ValueError, match="noise-conditional: pass sigma"):
        flow_nc.log_prob(x)
    # per-source σ: changing source 1's σ leaves source 0's density alone
    a = flow_nc.log_prob(x, torch.tensor([[0.1, 0.1]] * 3, dtype=torch.float64))
    b = flow_nc.log_prob(x, torch.tensor([[0.1, 0.5]] * 3, dtype=torch.float64))
    assert torch.equal(a[:, 0], b[:, 0]) and not torch.allclose(a[:, 1], b[:, 1])


@pytest.mark.parametrize("sigma", SIGMAS)
def test_wavenet_causal_and_normalised_at_every_sigma(sigma):
    torch.manual_seed(1)
    prior = randomised(build_prior("wavenet_nc", stacks=1, layers=4, width=8, mixtures=3, num_sources=2))
    prior.eval()
    x = torch.rand(2, 2, 60) * 2 - 1
    y = x.clone()
    y[:, :, 33] += 0.5
    assert torch.equal(prior.predict(x, sigma)[..., :34], prior.predict(y, sigma)[..., :34])
    params = prior.predict(x, sigma)[..., -1:].double()
    grid = torch.linspace(-60, 60, 400_001, dtype=torch.float64)
    density = prior._logistic_log_density(params.expand(-1, -1, -1, grid.numel()), grid.view(1, 1, -1)).exp()
    assert torch.allclose(torch.trapezoid(density, grid), torch.ones(2, 2, dtype=torch.float64), atol=1e-3)


@pytest.mark.parametrize("name", ["flowavenet_nc", "wavenet_nc"])
def test_grouped_nc_equals_separate_and_scores_with_sigma(name):
    torch.manual_seed(0)
    singles = [randomised(build_prior(name, preset="tiny"), seed=k) for k in range(2)]
    grouped = stack_sources(singles).eval()
    x = torch.randn(3, 2, 64) * 0.3
    sigma = torch.tensor([0.05, 0.2, 0.7])
    separate = torch.cat([p.eval().log_prob(x[:, k:k + 1], sigma) for k, p in enumerate(singles)], dim=1)
    assert torch.allclose(grouped.log_prob(x, sigma), separate, atol=1e-4)
    score = grouped.score(x, sigma)
    assert score.shape == x.shape and torch.isfinite(score).all()
