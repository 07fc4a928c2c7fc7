"""FloWaveNet is an exact flow: invertible, and its log-det equals the Jacobian's."""
import pytest
import torch

from models import build_prior


def randomised(prior, seed=0):
    """Replace the zero-initialised output layers and ActNorm so the flow is far from the identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in prior.named_parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
        for name, b in prior.named_buffers():
            if name.endswith("initialized"):
                b.fill_(True)
    return prior


@pytest.fixture
def tiny_flow():
    torch.manual_seed(0)
    return randomised(build_prior("flowavenet", blocks=3, flows=2, layers=2, width=4, num_sources=2).double())


def test_inverse_of_forward_is_identity(tiny_flow):
    x = torch.randn(3, 2, 64, dtype=torch.float64)
    latents, _, _ = tiny_flow.encode(x)
    assert torch.allclose(tiny_flow.inverse(latents), x, atol=1e-10)


def test_logdet_equals_brute_force_jacobian(tiny_flow):
    x = torch.randn(1, 2, 16, dtype=torch.float64)

    def flat_latents(v):
        latents, _, _ = tiny_flow.encode(v.view(1, 2, 16))
        # latents of one source, concatenated: the flow maps each source's 16 samples to 16 numbers
        return torch.cat([z[0, k].reshape(-1) for k in range(2) for z in latents])

    jac = torch.autograd.functional.jacobian(flat_latents, x.reshape(-1))
    assert jac.shape == (32, 32)
    _, logdet, _ = tiny_flow.encode(x)
    # sources do not interact: the Jacobian is block diagonal and each block is one source's log-det
    for k in range(2):
        block = jac[16 * k:16 * (k + 1), 16 * k:16 * (k + 1)]
        assert torch.allclose(torch.linalg.slogdet(block).logabsdet, logdet[0, k], atol=1e-9)
    assert torch.count_nonzero(jac[:16, 16:]) == 0 and torch.count_nonzero(jac[16:, :16]) == 0


def test_log_prob_integrates_the_latent_density_and_logdet(tiny_flow):
    x = torch.randn(2, 2, 32, dtype=torch.float64)
    latents, logdet, log_pz = tiny_flow.encode(x)
    assert torch.allclose(tiny_flow.log_prob(x), log_pz + logdet)
    assert logdet.abs().min() > 1e-3  # the log-det is really there


def test_actnorm_initialises_to_zero_mean_unit_variance():
    torch.manual_seed(0)
    prior = build_prior("flowavenet", blocks=1, flows=1, layers=2, width=4, num_sources=2).train()
    x = torch.randn(8, 2, 256) * torch.tensor([0.2, 3.0]).view(1, 2, 1) + torch.tensor([0.5, -1.0]).view(1, 2, 1)
    actnorm = prior.blocks[0][0][0]
    seen = {}
    actnorm.register_forward_hook(lambda m, i, o: seen.update(y=o[0]))
    prior.log_prob(x)
    y = seen["y"]  # [B, K, C, T]
    assert torch.allclose(y.mean((0, 3)), torch.zeros(2, 2), atol=1e-5)
    assert torch.allclose(y.std((0, 3), unbiased=False), torch.ones(2, 2), atol=1e-4)
    assert bool(actnorm.initialized)


def test_sample_has_requested_shape_and_is_finite():
    prior = build_prior("flowavenet", preset="tiny", num_sources=3).eval()
    samples = prior.sample(2, 64)
    assert samples.shape == (2, 3, 64) and torch.isfinite(samples).all()


def test_length_not_divisible_is_a_clear_error():
    prior = build_prior("flowavenet", preset="tiny")
    with pytest.raises(ValueError, match="divisible by 4"):
        prior.log_prob(torch.zeros(1, 1, 30))
