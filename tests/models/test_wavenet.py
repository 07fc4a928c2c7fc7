"""WaveNet is causal and its heads are normalised densities."""
import pytest
import torch

from models import build_prior


@pytest.mark.parametrize("head", ["logistic", "mulaw"])
def test_causal_perturbing_x_t_changes_nothing_at_or_before_t(head):
    torch.manual_seed(0)
    prior = build_prior("wavenet", stacks=2, layers=4, width=8, head=head, num_sources=2).eval()
    x = torch.rand(2, 2, 100) * 2 - 1
    t = 57
    y = x.clone()
    y[:, :, t] = -x[:, :, t] + 0.3
    params_x, params_y = prior.predict(x), prior.predict(y)
    assert torch.equal(params_x[..., : t + 1], params_y[..., : t + 1])  # predictions for positions <= t
    assert not torch.allclose(params_x[..., t + 1], params_y[..., t + 1])  # and t+1 does see x_t
    lp_x, lp_y = prior.log_prob_per_position(x), prior.log_prob_per_position(y)
    assert torch.equal(lp_x[..., :t], lp_y[..., :t])


@pytest.mark.parametrize("support,lo,hi", [("real", -60.0, 60.0), ("unit", -1.0, 1.0)])
def test_logistic_density_integrates_to_one(support, lo, hi):
    torch.manual_seed(1)
    prior = build_prior("wavenet", stacks=1, layers=3, width=8, mixtures=4, support=support, num_sources=1).eval()
    context = torch.rand(1, 1, 20) * 2 - 1
    params = prior.predict(context)[..., -1:]  # one position's distribution: [1, 1, P, 1]
    grid = torch.linspace(lo, hi, 400_001, dtype=torch.float64)
    log_density = prior._logistic_log_density(params.double().expand(-1, -1, -1, grid.numel()),
                                              grid.view(1, 1, -1))
    integral = torch.trapezoid(log_density.exp().squeeze(), grid)
    assert abs(integral.item() - 1.0) < 1e-3


def test_mulaw_bins_sum_to_one_and_density_integrates_to_one():
    torch.manual_seed(2)
    prior = build_prior("wavenet", stacks=1, layers=3, width=8, head="mulaw", num_sources=1).eval()
    x = torch.rand(1, 1, 30) * 2 - 1
    probs = prior.bin_log_probs(x).exp()
    assert torch.allclose(probs.sum(2), torch.ones(1, 1, 30), atol=1e-5)
    # density = P(bin)/width is piecewise constant: Σ density·width over bins = 1 at every position
    widths = prior.log_bin_width.exp()
    assert abs(widths.sum().item() - 2.0) < 1e-5
    # check the reported density on a fine grid integrates to 1 at one position
    grid = torch.linspace(-1, 1, 200_001)
    params = prior.predict(x)[..., -1:].expand(-1, -1, -1, grid.numel())
    density = prior._mulaw_log_density(params, grid.view(1, 1, -1)).exp().squeeze()
    assert abs(torch.trapezoid(density, grid).item() - 1.0) < 2e-3


def test_logistic_score_is_nonzero_and_finite():
    prior = build_prior("wavenet", preset="tiny", num_sources=2)
    x = torch.rand(2, 2, 64) * 2 - 1
    score = prior.score(x)
    assert score.shape == x.shape and torch.isfinite(score).all() and score.abs().sum() > 0


def test_unknown_head_is_rejected():
    with pytest.raises(ValueError, match="head must be one of"):
        build_prior("wavenet", head="softmax")
