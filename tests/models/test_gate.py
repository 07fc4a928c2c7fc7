"""Without autograd the gated unit runs in place as (2σ(2a) − 1)·σ(g): only a faster way to compute the
same densities, in every family."""
import pytest
import torch

from models import build_prior
from models.layers import gated


def test_the_in_place_gate_is_tanh_times_sigmoid():
    pre = torch.randn(3, 2 * 2 * 5, 7) * 4
    expected = torch.tanh(pre.view(3, 2, 2, 5, 7)[:, :, 0]) * torch.sigmoid(pre.view(3, 2, 2, 5, 7)[:, :, 1])
    with torch.no_grad():
        got = gated(pre.clone(), groups=2)
    assert torch.allclose(got, expected.reshape(3, 10, 7), atol=1e-6)


@pytest.mark.parametrize("name", ["wavenet", "wavenet_nc", "flowavenet_nc", "scorenet"])
def test_log_p_without_autograd_equals_log_p_with_it(name):
    torch.manual_seed(0)
    prior = build_prior(name, preset="tiny", num_sources=2).eval()
    with torch.no_grad():  # away from the zero-initialised output layers, so the network matters
        for p in prior.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = (torch.rand(3, 2, 512) * 2 - 1) * 0.8
    sigma = 0.1 if prior.noise_conditional else None
    with torch.no_grad():
        fast = prior.log_prob(x, sigma)
    with torch.enable_grad():
        reference = prior.log_prob(x, sigma)
    assert (fast - reference).abs().max() < 1e-6 * reference.abs().max()
    assert not torch.equal(reference, prior.log_prob(x.flip(-1), sigma))  # the input matters
