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
