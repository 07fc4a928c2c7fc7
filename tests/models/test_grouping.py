"""A grouped K-source prior is exactly K independent single-source priors."""
import pytest
import torch

from models import build_prior, load_prior, save_prior, select_source, stack_sources


@pytest.mark.parametrize("name", ["flowavenet", "wavenet"])
def test_grouped_equals_separate_priors(name):
    torch.manual_seed(0)
    singles = [build_prior(name, preset="tiny").train() for _ in range(3)]
    x = torch.randn(4, 3, 64) * 0.5
    for k, prior in enumerate(singles):  # data-dependent init happens per source on its own data
        prior.log_prob(x[:, k : k + 1])
    grouped = stack_sources(singles).eval()
    separate = torch.cat([p.eval().log_prob(x[:, k : k + 1]) for k, p in enumerate(singles)], dim=1)
    assert torch.allclose(grouped.log_prob(x), separate, atol=1e-5)
    # and back: selecting source k returns exactly prior k
    for k in range(3):
        assert torch.allclose(select_source(grouped, k).log_prob(x[:, k : k + 1]), separate[:, k : k + 1], atol=1e-5)


@pytest.mark.parametrize("name", ["flowavenet", "wavenet"])
def test_sources_do_not_interact(name):
    torch.manual_seed(0)
    prior = build_prior(name, preset="tiny", num_sources=2).train()
    x = torch.randn(2, 2, 32)
    prior.log_prob(x)
    prior.eval()
    y = x.clone()
    y[:, 1] = torch.randn(2, 32)
    assert torch.equal(prior.log_prob(x)[:, 0], prior.log_prob(y)[:, 0])


def test_checkpoint_round_trip_needs_no_config(tmp_path):
    prior = build_prior("wavenet", preset="tiny", num_sources=2, head="mulaw")
    save_prior(prior, tmp_path / "p.pt")
    again = load_prior(tmp_path / "p.pt")
    x = torch.rand(1, 2, 32) * 2 - 1
    assert again.hparams == prior.hparams and torch.equal(again.log_prob(x), prior.log_prob(x))


@pytest.mark.parametrize("name", ["flowavenet", "wavenet"])
def test_score_in_passes_equals_one_pass(name, monkeypatch):
    import models.base

    torch.manual_seed(0)
    prior = build_prior(name, preset="tiny", num_sources=2).eval()
    x = torch.rand(5, 2, 64) * 2 - 1
    chunked = prior.score(x)  # 5 clips of 64 samples fit one pass; force several:
    monkeypatch.setattr(models.base, "SCORE_SAMPLES_PER_PASS", 128)
    assert torch.allclose(prior.score(x), chunked, atol=1e-6)
    # and the score is the gradient of log p: compare with a finite difference
    eps = 1e-3
    bump = torch.zeros_like(x)
    bump[2, 1, 30] = eps
    numeric = (prior.log_prob(x + bump) - prior.log_prob(x - bump))[2, 1] / (2 * eps)
    assert abs(numeric.item() - chunked[2, 1, 30].item()) < 2e-2 * max(1.0, abs(numeric.item()))
